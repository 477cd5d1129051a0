/**
 * The clients' time limits, against a real socket that accepts requests and never answers: every
 * client of rekey (the module singletons and the per-call STS client) must give up with a
 * TimeoutError, which the SDK and the state machine retry, instead of waiting until the Lambda dies.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetUserCommand } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTP_TIMEOUTS } from '../../../lambdas/shared/clients/config.ts';

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
    expect(received).toBe(5);
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
