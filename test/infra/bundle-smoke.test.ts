/**
 * The built bundles work: each main bundle of the synthesized template (cdk.out, which the global
 * setup synthesizes), imported in a fresh Node process as a Lambda would load it (its registry
 * environment, the role's credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 * AWS_SESSION_TOKEN, nothing else), answers one invocation against moto: a real result, or the
 * handler's own typed error, never a module or loader error. The steps run as one rotation of one
 * user would (plan, create, verify, check, ...), each fed what the ones before answered. The
 * opt-in files load and make their call when their toggle is on; a bundle without credentials
 * refuses to load. The sources are tested everywhere else; this is the one test of what deploys.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CreateAccessKeyCommand, CreateUserCommand, IAMClient } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeployedFunction, deployedFunctions } from '../../bench/template.ts';
import { prepareLocalEnv } from '../../cli/local-env.ts';
import * as errors from '../../contract/errors.ts';
import { FUNCTIONS, type FunctionName } from '../../contract/functions.ts';
import type { Plan } from '../../contract/schemas.ts';
import { ANY_CREDENTIALS, AwsEnv, awsClient, TEST_REGION } from '../../support/aws.ts';
import { ACCOUNT } from '../../support/constants.ts';
import { type MotoServer, startMoto } from '../support/moto.ts';
import { type RecordedRequest, recordRequests } from '../support/recorder.ts';

/** Two users, each with one key that has been used: one rotation, one CloudTrail lookup. */
const USER = 'bundle-smoke';
const LOOKUP_USER = 'bundle-smoke-lookup';
const executionId = (user: string) =>
  `arn:aws:states:${TEST_REGION}:${ACCOUNT}:execution:rekey-rotation:${user}-1`;
const EXECUTION_ID = executionId(USER);

/** What the child process reports: the handler's answer, or how it failed. */
type Answer =
  | { result: Record<string, unknown> }
  | { error: { name: string; message: string } }
  | { importError: { name: string; message: string } };

/**
 * The child: import the bundle, invoke `handler` with the event and a Lambda context, print the
 * answer on one marked line (the handler's own log lines go to stdout too).
 */
const CHILD = `
const report = (answer) => console.log('REKEY-SMOKE ' + JSON.stringify(answer));
const failure = (error) => ({ name: error?.name ?? typeof error, message: String(error?.message ?? error) });
let module;
try {
  module = await import(process.env.SMOKE_BUNDLE);
} catch (error) {
  report({ importError: failure(error) });
  process.exit(0);
}
const context = {
  functionName: 'smoke', functionVersion: '$LATEST', memoryLimitInMB: '256',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:${ACCOUNT}:function:smoke', awsRequestId: 'smoke-request',
  getRemainingTimeInMillis: () => 60000,
};
try {
  report({ result: await module.handler(JSON.parse(process.env.SMOKE_EVENT), context) });
} catch (error) {
  report({ error: failure(error) });
}
`;

/** rekey's typed errors (contract/errors.ts): what a handler may answer instead of a result. */
const REKEY_ERRORS = new Set(
  Object.values(errors)
    .filter((value) => typeof value === 'function' && value.prototype instanceof errors.RekeyError)
    .map((value) => (value as { name: string }).name),
);

let moto: MotoServer;
let awsEnv: AwsEnv;
let home: string;
let localEnv: Record<string, string>;
const functions = new Map(deployedFunctions().map((fn) => [fn.name, fn]));

const bundle = (name: FunctionName): DeployedFunction => {
  const fn = functions.get(name);
  if (!fn) throw new Error(`no ${name} function in the template`);
  return fn;
};

/** The process a Lambda runtime gives the bundle: its registry variables and the role's credentials. */
function lambdaProcessEnv(
  name: FunctionName,
  overrides: Record<string, string>,
  without: readonly string[],
): NodeJS.ProcessEnv {
  const listed: readonly string[] = FUNCTIONS[name].env;
  const own = Object.fromEntries(Object.entries(localEnv).filter(([key]) => listed.includes(key)));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    // No shared config or credentials file: a Lambda has none.
    HOME: home,
    AWS_REGION: TEST_REGION,
    AWS_ENDPOINT_URL: moto.endpoint,
    POWERTOOLS_SERVICE_NAME: 'rekey',
    POWERTOOLS_LOG_LEVEL: 'WARN',
    ...own,
    ...overrides,
    AWS_ACCESS_KEY_ID: ANY_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: ANY_CREDENTIALS.secretAccessKey,
    AWS_SESSION_TOKEN: 'bundle-smoke-session',
  };
  for (const key of without) delete env[key];
  return env;
}

/** Imports `name`'s main bundle in a fresh Node process and invokes its handler once with `event`. */
async function invokeBundle(
  name: FunctionName,
  event: unknown,
  { env = {}, without = [] }: { env?: Record<string, string>; without?: readonly string[] } = {},
): Promise<Answer> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
    env: {
      ...lambdaProcessEnv(name, env, without),
      SMOKE_BUNDLE: pathToFileURL(join(bundle(name).assetDir, 'index.mjs')).href,
      SMOKE_EVENT: JSON.stringify(event),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const line = output.split('\n').find((l) => l.startsWith('REKEY-SMOKE '));
  if (line === undefined) throw new Error(`${name}: the bundle's process exited ${code} without an answer`);
  return JSON.parse(line.slice('REKEY-SMOKE '.length)) as Answer;
}

/** The answer's result; fails (naming the error) if there is none. */
function resultOf(name: string, answer: Answer): Record<string, unknown> {
  if ('result' in answer) return answer.result;
  throw new Error(`${name} answered ${JSON.stringify(answer)}`);
}

/** The name of the typed error the handler answered, checked to be one of rekey's (contract/errors.ts). */
function errorName(answer: Answer): string {
  if (!('error' in answer)) throw new Error(`expected a typed error, got ${JSON.stringify(answer)}`);
  expect(REKEY_ERRORS.has(answer.error.name), JSON.stringify(answer)).toBe(true);
  return answer.error.name;
}

const callsTo = (requests: readonly RecordedRequest[], service: string) =>
  requests.filter((r) => r.service === service).map((r) => r.operation);

beforeAll(async () => {
  moto = await startMoto();
  home = mkdtempSync(join(tmpdir(), 'rekey-bundle-smoke-'));
  // The test's own clients (and prepareLocalEnv's) reach the emulator through the default chain.
  awsEnv = new AwsEnv(moto.endpoint, ANY_CREDENTIALS).apply();
  localEnv = await prepareLocalEnv({ log: () => {} });
  const iam = awsClient(IAMClient, moto.endpoint);
  for (const UserName of [USER, LOOKUP_USER]) {
    await iam.send(new CreateUserCommand({ UserName }));
    const { AccessKey } = await iam.send(new CreateAccessKeyCommand({ UserName }));
    if (!AccessKey?.AccessKeyId || !AccessKey.SecretAccessKey)
      throw new Error('CreateAccessKey returned no key');
    // The key has been used (moto records the signer of every request): the adoption check
    // finds it in use, which is when check-last-used asks CloudTrail.
    const sts = awsClient(STSClient, moto.endpoint, {
      accessKeyId: AccessKey.AccessKeyId,
      secretAccessKey: AccessKey.SecretAccessKey,
    });
    await sts.send(new GetCallerIdentityCommand({}));
    sts.destroy();
  }
  iam.destroy();
});

afterAll(async () => {
  awsEnv?.restore();
  await moto?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('the deployed bundles, each in a fresh process against the emulator', () => {
  it('refuse to load without the role credentials, naming the variable', async () => {
    for (const name of functions.keys()) {
      const answer = await invokeBundle(name as FunctionName, {}, { without: ['AWS_ACCESS_KEY_ID'] });
      expect(answer, name).toEqual({
        importError: { name: 'Error', message: expect.stringContaining('rekey: AWS_ACCESS_KEY_ID not set') },
      });
    }
  });

  it('answer one rotation step by step, each with a result or its typed error', async () => {
    const plan = resultOf(
      'plan',
      await invokeBundle('plan', { input: { userName: USER }, executionId: EXECUTION_ID }),
    ) as Plan;
    expect(plan).toMatchObject({ userName: USER, action: 'ROTATE', executionId: EXECUTION_ID });

    // The state machine puts each step's result where the next one reads it (here: newKey).
    const newKey = resultOf('create-second-key', await invokeBundle('create-second-key', plan));
    expect(newKey).toMatchObject({ accessKeyId: expect.stringMatching(/^AKIA/) });
    const state = { ...plan, newKey };

    resultOf('verify-new-key', await invokeBundle('verify-new-key', state));

    const quietSince = new Date(Date.now() - 3_600_000).toISOString();
    const { result: off, requests: withoutLookup } = await recordRequests(moto, () =>
      invokeBundle('check-last-used', { ...state, quietSince }),
    );
    expect(resultOf('check-last-used', off)).toMatchObject({ inUse: true });
    expect(callsTo(withoutLookup, 'cloudtrail')).toEqual([]);

    // The old key was used an hour inside the quiet period: each later step answers as it must
    // then, with a typed error where it refuses.
    const later = { ...state, quietSince };
    expect(errorName(await invokeBundle('deactivate-old-key', later))).toBe('OldKeyStillInUse');
    expect(errorName(await invokeBundle('verify-rotation', later))).toBe('RotationVerificationFailed');
    expect(await invokeBundle('reactivate-old-key', later)).toEqual({ result: { reactivated: false } });
    const deletion = await invokeBundle('delete-key', {
      accountId: plan.accountId,
      userName: USER,
      accessKeyId: plan.oldKey?.accessKeyId,
      notUsedSince: null,
    });
    expect(errorName(deletion)).toBe('UnsafeToDelete');

    expect(
      resultOf('notify', await invokeBundle('notify', { events: ['ROTATION_STARTED'], state: plan })),
    ).toBeDefined();
    expect(
      resultOf(
        'cleanup',
        await invokeBundle('cleanup', {
          executionArn: EXECUTION_ID,
          status: 'ABORTED',
          input: JSON.stringify({ userName: USER }),
        }),
      ),
    ).toMatchObject({ acted: true, releasedLock: true });
  });

  it('load the CloudTrail file with the lookup on, and ask CloudTrail', async () => {
    // moto 5 has no CloudTrail LookupEvents: the request reaches it and fails, which the
    // adoption check logs and answers as no callers.
    const plan = resultOf(
      'plan',
      await invokeBundle('plan', { input: { userName: LOOKUP_USER }, executionId: executionId(LOOKUP_USER) }),
    ) as Plan;
    const newKey = resultOf('create-second-key', await invokeBundle('create-second-key', plan));
    const quietSince = new Date(Date.now() - 3_600_000).toISOString();
    const { result, requests } = await recordRequests(moto, () =>
      invokeBundle(
        'check-last-used',
        { ...plan, newKey, quietSince },
        { env: { REKEY_CLOUDTRAIL_LOOKUP: 'true' } },
      ),
    );
    expect(resultOf('check-last-used', result)).toMatchObject({ inUse: true, recentCallers: [] });
    // (Twice: moto's failure is one the SDK retries.)
    expect(new Set(callsTo(requests, 'cloudtrail'))).toEqual(new Set(['LookupEvents']));
  });

  it('load the Security Hub file with the import on, and import the findings', async () => {
    const { result, requests } = await recordRequests(moto, () =>
      invokeBundle(
        'audit',
        {},
        {
          env: {
            REKEY_SECURITY_HUB: 'true',
            // moto lacks ListServiceSpecificCredentials.
            REKEY_AUDIT_SERVICE_CREDENTIALS: 'false',
            REKEY_STATE_MACHINE_ARN: `arn:aws:states:${TEST_REGION}:${ACCOUNT}:stateMachine:rekey-rotation`,
          },
        },
      ),
    );
    expect(resultOf('audit', result)).toBeDefined();
    // Security Hub's API is REST: BatchImportFindings is POST /findings/import.
    expect(callsTo(requests, 'securityhub')).toContain('POST /findings/import');
  });
});
