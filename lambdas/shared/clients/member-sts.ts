import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { clientConfig } from './config.ts';
import { bindToInvocations } from './invocation.ts';

export { AssumeRoleCommand };

/**
 * The STS client that assumes member roles (lambdas/shared/member-account.ts), signing with the
 * Lambda's own role. Only a run that names a member account loads it (lambdas/shared/opt-in.ts):
 * a single-account deployment never parses it. Module scope, for `mockClient()`.
 */
export const memberSts = new STSClient(clientConfig('sts'));
bindToInvocations(memberSts, 'sts');
