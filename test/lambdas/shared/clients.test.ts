/**
 * The clients' time limits, against a real socket that accepts requests and never answers: every
 * client of rekey (the module singletons and the per-call STS client) must give up with a
 * TimeoutError, which the SDK and the state machine retry, instead of waiting until the Lambda dies.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetUserCommand } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { MAXIMUM_RETRY_DELAY, Retry, StandardRetryStrategy } from '@smithy/core/retry';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  CLIENT_CONFIG,
  HTTP_TIMEOUTS,
  SDK_RETRY_BACKOFF,
  worstCaseCallMs,
} from '../../../lambdas/shared/clients/config.ts';

let server: Server;
let received = 0;
const saved = { ...process.env };

beforeAll(async () => {
  server = createServer(() => {
    received++; // and never answer
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  Object.assign(process.env, {
    AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'AKIAHANGINGTEST00001',
    AWS_SECRET_ACCESS_KEY: 'not-a-secret',
  });
  // The limits are read when a client is built: shorten them before the clients module loads.
  HTTP_TIMEOUTS.requestTimeout = 150;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
  Object.assign(process.env, saved);
});

describe('client time limits', () => {
  it('the shared clients give up on a request that never gets an answer, after their retries', async () => {
    const { iam } = await import('../../../lambdas/shared/clients.ts');
    received = 0;

    const error = await iam.send(new GetUserCommand({ UserName: 'alice' })).catch((e: unknown) => e);

    expect((error as Error).name).toBe('TimeoutError');
    // maxAttempts: every attempt reached the server and timed out.
    expect(received).toBe(CLIENT_CONFIG.maxAttempts);
  });

  it('the per-call STS client gives up after its one attempt', async () => {
    const { stsClientFor } = await import('../../../lambdas/shared/clients.ts');
    received = 0;
    const sts = stsClientFor({ accessKeyId: 'AKIAHANGINGTEST00002', secretAccessKey: 'not-a-secret' });

    const error = await sts.send(new GetCallerIdentityCommand({})).catch((e: unknown) => e);

    expect((error as Error).name).toBe('TimeoutError');
    expect(received).toBe(1);
    sts.destroy();
  });
});

describe("the worst case of one call, from which the steps' timeouts are derived", () => {
  it("matches the installed SDK's standard retry backoff (an SDK upgrade that changes it fails here)", async () => {
    // Prepare: the longest backoff the strategy can draw (its jitter at its top).
    expect(Retry.throttlingDelay()).toBe(SDK_RETRY_BACKOFF.throttlingBaseMs);
    expect(Retry.delay()).toBeLessThanOrEqual(SDK_RETRY_BACKOFF.throttlingBaseMs);
    expect(MAXIMUM_RETRY_DELAY).toBe(SDK_RETRY_BACKOFF.capMs);
    const random = vi.spyOn(Math, 'random').mockReturnValue(0.999_999);
    vi.useFakeTimers();
    try {
      const strategy = new StandardRetryStrategy(4);
      let token = await strategy.acquireInitialRetryToken('iam');
      const delays: number[] = [];
      for (let retry = 0; retry < 3; retry++) {
        const hint = new Date(Date.now() + 60_000); // a Retry-After far in the future: capped
        const next = strategy.refreshRetryTokenForRetry(token, {
          errorType: 'THROTTLING',
          retryAfterHint: hint,
        });
        const before = Date.now();
        await vi.runAllTimersAsync();
        token = await next;
        delays.push(Date.now() - before);
      }

      // Assess: min(base * 2^i, cap) (less a millisecond of jitter), plus the Retry-After slack.
      expect(delays).toEqual(
        [0, 1, 2].map(
          (i) =>
            Math.floor(
              0.999_999 * Math.min(SDK_RETRY_BACKOFF.throttlingBaseMs * 2 ** i, SDK_RETRY_BACKOFF.capMs),
            ) + SDK_RETRY_BACKOFF.retryAfterSlackMs,
        ),
      );
    } finally {
      vi.useRealTimers();
      random.mockRestore();
    }
  });

  it('is every attempt at its time limits plus every retry at its longest backoff', () => {
    const perAttempt = HTTP_TIMEOUTS.connectionTimeout + HTTP_TIMEOUTS.requestTimeout;
    expect(worstCaseCallMs(1)).toBe(perAttempt);
    expect(worstCaseCallMs(2)).toBe(2 * perAttempt + 1_000 + 5_000);
    expect(worstCaseCallMs(3)).toBe(3 * perAttempt + (1_000 + 5_000) + (2_000 + 5_000));
    expect(worstCaseCallMs(8)).toBe(8 * perAttempt + (1 + 2 + 4 + 8 + 16 + 20 + 20) * 1_000 + 7 * 5_000);
    expect(worstCaseCallMs()).toBe(worstCaseCallMs(CLIENT_CONFIG.maxAttempts));
  });
});
