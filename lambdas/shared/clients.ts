/**
 * Every SDK client of rekey in one import, for tests and tools. Lambdas import the single-client
 * modules under clients/ instead, so each bundle holds only the clients it uses; the instances are
 * the same either way, so `mockClient(iam)` in a test mocks what the handler uses.
 */
export { cloudTrail } from './clients/cloudtrail.ts';
export { dynamodb } from './clients/dynamodb.ts';
export { eventBridge } from './clients/event-bridge.ts';
export { iam } from './clients/iam.ts';
export { secretsManager } from './clients/secrets-manager.ts';
export { securityHub } from './clients/security-hub.ts';
export { sfn } from './clients/sfn.ts';
export { sns } from './clients/sns.ts';
export { stsClientFor } from './clients/sts.ts';
