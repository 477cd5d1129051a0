/**
 * Settings shared by rekey's SDK clients. Region and endpoint come from the SDK's default chain
 * (AWS_REGION, AWS_ENDPOINT_URL, ...), which is how the local runner points them at an emulator;
 * credentials too, except inside a local invocation context (invocation.ts), where they are those
 * of the invoked Lambda's emulated role. One client per file, so that a Lambda bundles (and
 * constructs at cold start) only the clients it uses.
 */
import { invocationCredentials } from './invocation.ts';

/**
 * Connection and request time limits of every rekey client. The SDK's defaults are none: a
 * connection that hangs (a half-open socket, a stalled endpoint) would hold a step until its
 * Lambda times out (2 minutes) and the run would fail, instead of failing in seconds with a
 * TimeoutError that the SDK retries on a fresh connection. IAM, STS, Secrets Manager, DynamoDB,
 * SNS and EventBridge answer rekey's calls in well under a second; 10 s of waiting is a dead
 * request. `throwOnRequestTimeout`: without it the SDK only logs a warning when the limit passes.
 * Read when a client is built: tests that inject hung connections shorten the limits before the
 * handler modules are first imported.
 */
export const HTTP_TIMEOUTS = {
  connectionTimeout: 3_000,
  requestTimeout: 10_000,
  throwOnRequestTimeout: true,
};

/** Standard retry mode with a few more attempts: IAM throttles at low request rates. */
export const CLIENT_CONFIG = {
  maxAttempts: 5,
  requestHandler: HTTP_TIMEOUTS,
  credentials: invocationCredentials,
};
