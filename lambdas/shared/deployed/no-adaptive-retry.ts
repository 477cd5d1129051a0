/**
 * The deployed bundles' stand-in for the SDK's `adaptive` retry mode (`AdaptiveRetryStrategy` in
 * @smithy/core's retry module, with the client-side rate limiter it builds;
 * infra/constructs/deployed-bundle.mjs swaps the file). rekey's clients use the standard mode
 * (lambdas/shared/clients/config.ts); should a client be built in adaptive mode (AWS_RETRY_MODE),
 * it fails by name at its first call.
 */
export class AdaptiveRetryStrategy {
  constructor() {
    throw new Error(
      "rekey: the Lambda bundles leave out the SDK's adaptive retry mode; use the standard one (AWS_RETRY_MODE)",
    );
  }
}
