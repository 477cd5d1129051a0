/**
 * The deployed bundles' stand-ins (lambdas/shared/deployed/): the environment-only credentials,
 * the SDK code a Lambda never runs, the SDK clients' compact errors, and the opt-in clients'
 * facade. The bundles themselves are checked in test/infra/bundle-sizes.test.ts.
 */

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Sha256 } from '@smithy/core/checksum';
import { HttpRequest } from '@smithy/core/transport';
import { SignatureV4 } from '@smithy/signature-v4';
import { build } from 'esbuild';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { compactServiceErrors, deployedPlugin } from '../../../infra/constructs/deployed-bundle.mjs';
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

/** Every SDK client the project installs (each with its models/errors module). */
const SDK = dirname(dirname(createRequire(import.meta.url).resolve('@aws-sdk/client-iam/package.json')));
const CLIENTS = readdirSync(SDK).filter((name) => name.startsWith('client-'));
const errorsFile = (client: string) => join(SDK, client, 'dist-es', 'models', 'errors.js');

type ErrorClass = (new (options: Record<string, unknown>) => Error) & { shapeId?: string };
interface ErrorsModule {
  errors: Record<string, ErrorClass>;
  ServiceException: ErrorClass;
}

describe("the SDK clients' errors in the deployed bundles", () => {
  const dir = mkdtempSync(join(tmpdir(), 'rekey-service-errors-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * The client's errors (and the SDK's base exception) as the SDK writes them (unminified: the
   * classes keep their names, as in the sources every other test runs), or compacted and minified
   * as the deployed bundles build them.
   */
  async function bundledErrors(client: string, compact: boolean): Promise<ErrorsModule> {
    const outfile = join(dir, `${client}-${compact ? 'compact' : 'sdk'}.mjs`);
    await build({
      stdin: {
        contents: `export * as errors from ${JSON.stringify(errorsFile(client))};
export { ServiceException } from '@smithy/core/client';`,
        resolveDir: SDK,
        loader: 'js',
      },
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      minify: compact,
      keepNames: !compact,
      plugins: compact ? [deployedPlugin({ standIns: {} })] : [],
      logLevel: 'silent',
    });
    return (await import(pathToFileURL(outfile).href)) as ErrorsModule;
  }

  /** An error as the SDK's deserializer makes one: every member it declares set, and one it does not. */
  function construct(Class: ErrorClass, members: readonly string[]): Error {
    const options: Record<string, unknown> = {
      message: 'the message',
      $metadata: { httpStatusCode: 400, requestId: 'r-1' },
      Unmodelled: 'extra',
    };
    for (const member of members) options[member] = `${member} value`;
    return new Class(options);
  }

  /** Everything observable of an error, but its stack. */
  function described(error: Error) {
    const { stack: _, ...own } = Object.getOwnPropertyDescriptors(error);
    return {
      own,
      keys: Object.keys(error),
      json: JSON.stringify(error),
      message: error.message,
      text: String(error),
    };
  }

  it.each(CLIENTS)(
    '%s: the same classes, errors and instanceof answers as the SDK writes them',
    async (client) => {
      const sdk = await bundledErrors(client, false);
      const compact = await bundledErrors(client, true);
      const names = Object.keys(sdk.errors);
      expect(names.length).toBeGreaterThan(5);
      expect(Object.keys(compact.errors)).toEqual(names);
      for (const name of names) {
        const [Sdk, Compact] = [sdk.errors[name], compact.errors[name]] as [ErrorClass, ErrorClass];
        expect(Compact.name, name).toBe(Sdk.name);
        for (const key of ['name', 'shapeId', 'length'])
          expect(Object.getOwnPropertyDescriptor(Compact, key), `${name}.${key}`).toEqual(
            Object.getOwnPropertyDescriptor(Sdk, key),
          );
        // The members the class declares: its own keys once built from options with none.
        const members = Object.keys(new Sdk({})).filter(
          (key) => !['name', '$fault', '$retryable', '$metadata'].includes(key),
        );
        const [sdkError, compactError] = [construct(Sdk, members), construct(Compact, members)];
        expect(described(compactError), name).toEqual(described(sdkError));
        expect(compactError, name).toBeInstanceOf(Compact);
        expect(compactError, name).toBeInstanceOf(compact.ServiceException);
        // A subclass of the client's base exception (<Service>ServiceException), by its shape id.
        expect(Object.getPrototypeOf(Compact).shapeId, name).toBe(Object.getPrototypeOf(Sdk).shapeId);
        expect(Object.getPrototypeOf(Compact).shapeId, name).toMatch(/^smithy\.ts\.sdk\.synthetic\./);
        // Another error of the client is no instance of this one, in either form.
        const other = names.find((n) => n !== name) as string;
        expect(construct(compact.errors[other] as ErrorClass, []) instanceof Compact, name).toBe(
          construct(sdk.errors[other] as ErrorClass, []) instanceof Sdk,
        );
      }
    },
  );

  it('refuse, by client and name, an error class of any other form', () => {
    const path = errorsFile('client-iam');
    const source = readFileSync(path, 'utf8');
    expect(compactServiceErrors(source, path)).toContain('export const NoSuchEntityException = ');
    const changed = source.replace(
      '        Object.setPrototypeOf(this, NoSuchEntityException.prototype);\n',
      '        Object.setPrototypeOf(this, NoSuchEntityException.prototype);\n        this.extra = true;\n',
    );
    expect(changed).not.toBe(source);
    expect(() => compactServiceErrors(changed, path)).toThrow(
      `rekey: the error NoSuchEntityException of ${path} is not of the form the SDK generates`,
    );
    const renamed = source.replace(
      'static shapeId = "com.amazonaws.iam#NoSuchEntityException"',
      'static shapeId = "com.amazonaws.iam#NoSuchEntity"',
    );
    expect(() => compactServiceErrors(renamed, path)).toThrow(
      `NoSuchEntityException of ${path} has the shape id com.amazonaws.iam#NoSuchEntity`,
    );
    const uncopied = source.replace('        this.Message = opts.Message;\n', '');
    expect(() => compactServiceErrors(uncopied, path)).toThrow(
      'does not copy exactly the members it declares',
    );
  });
});
