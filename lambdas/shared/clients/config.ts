/**
 * Settings shared by rekey's SDK clients. Region, credentials and endpoint come from the SDK's
 * default chain (AWS_REGION, AWS_ENDPOINT_URL, ...), which is how the local runner points them at
 * an emulator. One client per file, so that a Lambda bundles (and constructs at cold start) only
 * the clients it uses.
 */
/** Standard retry mode with a few more attempts: IAM throttles at low request rates. */
export const CLIENT_CONFIG = { maxAttempts: 5 } as const;
