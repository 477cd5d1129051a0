/**
 * The audit's SDK clients that lambdas/shared/clients.ts does not have yet (Step Functions,
 * Security Hub): module-scope singletons like the others, exported so unit tests can
 * `mockClient()` them. They belong in clients.ts; they live here until its owner moves them.
 */
import { SecurityHubClient } from '@aws-sdk/client-securityhub';
import { SFNClient } from '@aws-sdk/client-sfn';

/** Standard retry mode with a few more attempts, as in clients.ts. */
const common = { maxAttempts: 5 } as const;

export const sfn = new SFNClient(common);
export const securityHub = new SecurityHubClient(common);
