/**
 * The deployed bundles' stand-ins (lambdas/shared/deployed/): the environment-only credentials,
 * the SDK code a Lambda never runs, and the opt-in clients' facade. The bundles themselves are checked in test/infra/bundle-sizes.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { facadeClient, facadeCommand, facadePaginator } from '../../../lambdas/shared/deployed/facade.ts';
import { DefaultRateLimiter } from '../../../lambdas/shared/deployed/no-adaptive-retry.ts';
import { EndpointCache } from '../../../lambdas/shared/deployed/no-endpoint-discovery.ts';
import { EventStreamSerde } from '../../../lambdas/shared/deployed/no-event-streams.ts';
import { getInstanceMetadataRegion } from '../../../lambdas/shared/deployed/no-imds-region.ts';
import { Sha256Js } from '../../../lambdas/shared/deployed/no-js-sha256.ts';
import { optInModuleUrl, switchedOff } from '../../../lambdas/shared/opt-in.ts';

const CREDENTIALS = {
  AWS_ACCESS_KEY_ID: 'ASIAEXAMPLE000000001',
  AWS_SECRET_ACCESS_KEY: 'secret',
  AWS_SESSION_TOKEN: 'token',
};

describe('the environment-only credentials', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it("load at cold start and answer with the role's variables", async () => {
    for (const [key, value] of Object.entries(CREDENTIALS)) vi.stubEnv(key, value);
    const { defaultProvider } = await import('../../../lambdas/shared/deployed/credentials.ts');
    await expect(defaultProvider()()).resolves.toEqual({
      accessKeyId: 'ASIAEXAMPLE000000001',
      secretAccessKey: 'secret',
      sessionToken: 'token',
    });
  });

  it('refuse to load, naming every missing variable', async () => {
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'ASIAEXAMPLE000000001');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', '');
    vi.stubEnv('AWS_SESSION_TOKEN', undefined);
    await expect(import('../../../lambdas/shared/deployed/credentials.ts')).rejects.toThrow(
      'AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN not set',
    );
  });
});

describe('the SDK code a Lambda never runs', () => {
  it('fails by name wherever it is reached', async () => {
    expect(() => new EventStreamSerde()).toThrow('leave out the SDK event-stream codec');
    expect(() => new Sha256Js()).toThrow("leave out the SDK's JavaScript SHA-256");
    expect(() => new DefaultRateLimiter()).toThrow("leave out the SDK's adaptive retry mode");
    await expect(getInstanceMetadataRegion()).rejects.toThrow('AWS_REGION not set');
    const cache = new EndpointCache();
    for (const use of [() => cache.getEndpoint(), () => cache.get(), () => cache.set(), () => cache.has()])
      expect(use).toThrow('leave out DynamoDB endpoint discovery');
  });
});

describe('the opt-in clients', () => {
  it('come from the client module in the sources and from a file next to a bundle', () => {
    expect(optInModuleUrl('cloudtrail', 'file:///repo/lambdas/shared/opt-in.ts')).toBe(
      'file:///repo/lambdas/shared/clients/cloudtrail.ts',
    );
    expect(optInModuleUrl('security-hub', 'file:///var/task/index.mjs')).toBe(
      'file:///var/task/security-hub.mjs',
    );
  });

  it('refuse every call while their toggle is off', async () => {
    const client = switchedOff<{ send(command: unknown): Promise<unknown> }>('securityHub');
    await expect(client.send({})).rejects.toThrow('securityHub is off');
  });

  it('send a stand-in command as the real one, and page with the real client', async () => {
    class RealCommand {
      constructor(readonly input: object) {}
    }
    const real = { send: vi.fn(async (command: unknown) => command) };
    const paginate = vi.fn(async function* (config: object, input: object) {
      yield { config, input };
    });
    const client = facadeClient(real, { RealCommand, paginateReal: paginate });

    const sent = await client.send(new (facadeCommand('RealCommand'))({ a: 1 }));
    expect(sent).toBeInstanceOf(RealCommand);
    expect(sent).toEqual({ input: { a: 1 } });

    const pages = [];
    for await (const page of facadePaginator('paginateReal')({ client }, { b: 2 })) pages.push(page);
    expect(pages).toEqual([{ config: { client: real }, input: { b: 2 } }]);

    await expect(client.send(new (facadeCommand('Missing'))({}))).rejects.toThrow('has no Missing');
  });
});
