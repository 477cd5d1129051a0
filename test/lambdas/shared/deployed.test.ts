/**
 * The deployed bundles' stand-ins (lambdas/shared/deployed/): the environment-only credentials,
 * the SDK code a Lambda never runs, and the opt-in clients' facade. The bundles themselves are checked in test/infra/bundle-sizes.test.ts.
 */

import { Sha256 } from '@smithy/core/checksum';
import { HttpRequest } from '@smithy/core/transport';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { facadeClient, facadeCommand, facadePaginator } from '../../../lambdas/shared/deployed/facade.ts';
import { AdaptiveRetryStrategy } from '../../../lambdas/shared/deployed/no-adaptive-retry.ts';
import { checkedCall, keepDenialBody } from '../../../lambdas/shared/deployed/no-emulator-calls.ts';
import { EndpointCache } from '../../../lambdas/shared/deployed/no-endpoint-discovery.ts';
import { EventStreamSerde } from '../../../lambdas/shared/deployed/no-event-streams.ts';
import { getInstanceMetadataRegion } from '../../../lambdas/shared/deployed/no-imds-region.ts';
import { Sha256Js } from '../../../lambdas/shared/deployed/no-js-sha256.ts';
import { SignatureV4MultiRegion } from '../../../lambdas/shared/deployed/no-sigv4a.ts';
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
    expect(() => new AdaptiveRetryStrategy()).toThrow("leave out the SDK's adaptive retry mode");
    expect(checkedCall).toThrow("leave out the local runner's call checks");
    expect(keepDenialBody).toThrow("leave out the local runner's call checks");
    await expect(getInstanceMetadataRegion()).rejects.toThrow('AWS_REGION not set');
    const cache = new EndpointCache();
    for (const use of [() => cache.getEndpoint(), () => cache.get(), () => cache.set(), () => cache.has()])
      expect(use).toThrow('leave out DynamoDB endpoint discovery');
  });
});

describe('the multi-region signer of the main bundles', () => {
  const options = {
    credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'secret' },
    region: 'eu-west-1',
    service: 'events',
    sha256: Sha256,
  };
  const request = () =>
    new HttpRequest({
      method: 'POST',
      protocol: 'https:',
      hostname: 'events.eu-west-1.amazonaws.com',
      path: '/',
      headers: { host: 'events.eu-west-1.amazonaws.com' },
      body: '{}',
    });
  const signingDate = new Date('2026-12-02T08:00:00Z');

  it('signs a regional request as SigV4 does', async () => {
    const signed = await new SignatureV4MultiRegion(options).sign(request(), { signingDate });
    const expected = await new SignatureV4(options).sign(request(), { signingDate });
    expect(signed.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE\/20261202\/eu-west-1\/events\//,
    );
    expect(signed.headers).toEqual(expected.headers);
    expect(SignatureV4MultiRegion.sigv4aDependency()).toBe('none');
  });

  it('fails by name for SigV4a (every region) and S3 Express credentials', async () => {
    const signer = new SignatureV4MultiRegion(options);
    await expect(signer.sign(request(), { signingDate, signingRegion: '*' })).rejects.toThrow(
      'leave out SigV4a signing',
    );
    await expect(signer.presign(request(), { signingRegion: '*' })).rejects.toThrow(
      'leave out SigV4a signing',
    );
    expect(signer.signWithCredentials).toThrow('leave out SigV4a signing');
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
