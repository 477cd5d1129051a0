/**
 * Settings shared by rekey's SDK clients. Region and endpoint come from the SDK's default chain
 * (AWS_REGION, AWS_ENDPOINT_URL, ...), which is how the local runner points them at an emulator;
 * credentials too, except inside a local invocation context (invocation.ts), where they are those
 * of the invoked Lambda's emulated role. One client per file, so that a Lambda bundles (and
 * constructs at cold start) only the clients it uses.
 *
 * These limits also bound how long a step can run: each step's Lambda timeout is derived from
 * them (worstCaseCallMs, and the call counts in contract/functions.ts), so that a Lambda is
 * never killed half-way through its calls, its compensation included.
 */
import { credentialsFor, invocationCredentials, type ServicePrefix } from './invocation.ts';

/**
 * Connection and request time limits of every rekey client. The SDK's defaults are none: a
 * connection that hangs (a half-open socket, a stalled endpoint) would hold a step until its
 * Lambda times out and the run would fail, instead of failing in seconds with a TimeoutError
 * that the SDK and the state machine retry on a fresh connection. IAM, STS, Secrets Manager,
 * DynamoDB, SNS and EventBridge answer rekey's calls in well under a second and connect in
 * milliseconds; 4 s of waiting is a dead request, 2 s without a connection a dead endpoint. `throwOnRequestTimeout`: without it the SDK only logs a warning when the limit
 * passes. Read when a client is built: tests that inject hung connections shorten the limits
 * before the handler modules are first imported.
 */
export const HTTP_TIMEOUTS = {
  connectionTimeout: 2_000,
  requestTimeout: 4_000,
  throwOnRequestTimeout: true,
};

/**
 * Standard retry mode with two attempts: one SDK retry absorbs a dropped connection or a single
 * throttle without re-running the step. Every error the SDK retries for the steps' calls
 * (throttling, 5xx, TimeoutError) is also retried by the state machine's Retry, with a longer
 * backoff, on a step that is idempotent: more SDK attempts would multiply each call's worst case,
 * and with it the Lambda timeouts. The bound that sets the number: the cleanup after an aborted
 * execution first waits out the longest step (the create step's 26 calls) and must still finish
 * inside Lambda's 900 s; with three attempts (31 s a call) that wait alone would be 816 s.
 * (Five attempts with the former 3-s and 10-s limits made the create step worth over 2,000 s.)
 */
export const CLIENT_CONFIG = {
  maxAttempts: 2,
  requestHandler: HTTP_TIMEOUTS,
  credentials: invocationCredentials,
};

/** CLIENT_CONFIG for the client of `service`, signing in a member account where it acts there (account-context.ts). */
export function clientConfig(service: ServicePrefix) {
  return { ...CLIENT_CONFIG, credentials: credentialsFor(service) };
}

/**
 * The longest wait the SDK's standard retry strategy puts before a retry (@smithy/core retry):
 * `min(base * 2^i, cap)` before retry i (0-based), the base being 1 s after a throttle (50 ms
 * otherwise), plus up to 5 s more when the response carries a Retry-After hint. A unit test pins
 * these to the installed SDK.
 */
export const SDK_RETRY_BACKOFF = { throttlingBaseMs: 1_000, capMs: 20_000, retryAfterSlackMs: 5_000 };

/**
 * The longest one call can take with these settings: every attempt uses up its connection and
 * request limits (counted one after the other, although the handler starts both clocks
 * together, so the bound holds whichever way it counts), and every retry waits its longest
 * backoff. `attempts: 1` bounds the per-call STS client (clients/sts.ts), which does not retry.
 */
export function worstCaseCallMs(
  attempts: number = CLIENT_CONFIG.maxAttempts,
  limits: { connectionTimeout: number; requestTimeout: number } = HTTP_TIMEOUTS,
): number {
  let backoff = 0;
  for (let retry = 0; retry < attempts - 1; retry++) {
    backoff +=
      Math.min(SDK_RETRY_BACKOFF.throttlingBaseMs * 2 ** retry, SDK_RETRY_BACKOFF.capMs) +
      SDK_RETRY_BACKOFF.retryAfterSlackMs;
  }
  return attempts * (limits.connectionTimeout + limits.requestTimeout) + backoff;
}
