/**
 * The opt-in bundle of the plan's account check (lambdas/shared/organization-membership.ts): the
 * real Organizations client and the check itself. The main bundle imports only their types, so it
 * needs no facade.
 */
export { memberAccountRefusal, organizations } from '../clients/organizations.ts';
