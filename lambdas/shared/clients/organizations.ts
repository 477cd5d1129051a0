import { OrganizationsClient } from '@aws-sdk/client-organizations';
import { clientConfig } from './config.ts';
import { bindToInvocations } from './invocation.ts';

export { memberAccountRefusal } from '../organization-membership.ts';

/**
 * The Organizations client with which the plan checks a member account a request names
 * (lambdas/shared/organization-membership.ts), signing with the plan's own role in the hub. Only
 * a request that names a member account loads it (lambdas/shared/opt-in.ts), together with that
 * check: a single-account deployment never parses either. Module scope, for `mockClient()`.
 */
export const organizations = new OrganizationsClient(clientConfig('organizations'));
bindToInvocations(organizations, 'organizations');
