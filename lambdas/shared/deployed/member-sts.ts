/**
 * The opt-in bundle of the member-role STS client (lambdas/shared/member-account.ts): the real
 * client and command. The main bundle imports only its type, so it needs no facade.
 */
export { AssumeRoleCommand, memberSts } from '../clients/member-sts.ts';
