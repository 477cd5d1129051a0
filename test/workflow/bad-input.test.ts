/**
 * Every request of the bad-input corpus (bad-input-corpus.ts) is refused with a clear error, and
 * nothing reaches AWS: the emulator's own request recorder counts what arrived while each request
 * ran. The controls first prove that the count is not blind: a real rotation, by the state machine
 * and by `rekey rotate`, is seen writing; a dry run is seen reading.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitCodeFor, type RotationResult, STATUS_CHANGE_RULE } from '../../cli/local-runner.ts';
import { main } from '../../cli/main.ts';
import {
  mutatingCalls,
  mutatingCallsNotAsRole,
  type RecordedRequest,
  recordRequests,
} from '../support/recorder.ts';
import { BAD_COMMAND_LINES, BAD_EXECUTION_INPUTS, type BadCommandLine } from './bad-input-corpus.ts';
import { outcomeStatus, startWorld, statesEntered, type World } from './harness.ts';

let world: World;

beforeAll(async () => {
  world = await startWorld();
  // The harness makes each Lambda's role in the emulator (as its administrator) the first time
  // that Lambda runs, e.g. the cleanup's at the first rejected request. Made here, the recordings
  // below hold only what the Lambdas themselves send.
  await Promise.all(world.roles.roles.map((role) => world.roles.contextFor(role.lambda)));
});
afterAll(async () => {
  await world?.stop();
});

const causeOf = (r: RotationResult): { errorType?: string; errorMessage?: string } =>
  JSON.parse(r.cause ?? '{}');
const calls = (requests: readonly RecordedRequest[]) => requests.map((r) => `${r.service}:${r.operation}`);

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `rekey ...argv` in this process (cli/main.ts), its stdout and stderr captured instead of printed.
 * It runs with a user's environment: AWS_* point at the world's emulator, but the REKEY_* resource
 * variables the world set for its handlers are hidden, so the command finds or creates its own
 * topic, table and key (calls the count must see) exactly as it would on a laptop.
 */
async function rekeyInProcess(argv: string[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const stdout = process.stdout.write;
  const stderr = process.stderr.write;
  const hidden = Object.keys(world.env).filter((name) => name in process.env);
  const saved = Object.fromEntries(hidden.map((name) => [name, process.env[name]]));
  for (const name of hidden) delete process.env[name];
  const into = (sink: string[]) =>
    ((chunk: string | Uint8Array) => {
      sink.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = into(out);
  process.stderr.write = into(err);
  try {
    const code = await main(['node', 'rekey', ...argv]);
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    process.stdout.write = stdout;
    process.stderr.write = stderr;
    Object.assign(process.env, saved);
  }
}

const BIN = fileURLToPath(new URL('../../bin/rekey.mjs', import.meta.url));

/** `rekey ...argv` as a user runs it: a child process on this Node, AWS pointed at the world's emulator. */
function rekeyProcess(argv: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...argv],
      {
        env: {
          PATH: process.env.PATH,
          AWS_ENDPOINT_URL: world.moto.endpoint,
          AWS_REGION: 'us-east-1',
          AWS_ACCESS_KEY_ID: world.admin.accessKeyId,
          AWS_SECRET_ACCESS_KEY: world.admin.secretAccessKey,
        },
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function expectCommandRefused(run: CliRun, bad: Pick<BadCommandLine, 'message' | 'exitCode'>): void {
  expect(run.code).toBe(bad.exitCode);
  expect(run.stderr).toMatch(bad.message);
  // A clear message, not a crash: no stack trace, and nothing on stdout (where data goes).
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(run.stdout).toBe('');
}

describe('controls: the request count sees what a valid request does', () => {
  it('a real rotation by the state machine is seen writing', async () => {
    await world.createUser('control-rotated');

    const { result, requests } = await recordRequests(world.moto, () =>
      world.run({ userName: 'control-rotated' }),
    );

    expect(outcomeStatus(result)).toBe('ROTATED');
    expect(mutatingCalls(requests)).toEqual(
      expect.arrayContaining([
        'iam:CreateAccessKey',
        'secretsmanager:PutSecretValue',
        'iam:UpdateAccessKey',
        'iam:DeleteAccessKey',
        // notify's one request per milestone(s), authorized as sns:Publish.
        'sns:PublishBatch',
        'events:PutEvents',
      ]),
    );
    // Reads are told apart from writes: GetUser, ListAccessKeys, GetCallerIdentity are not writes.
    expect(calls(requests)).toEqual(expect.arrayContaining(['iam:GetUser', 'iam:ListAccessKeys']));
    expect(mutatingCalls(requests)).not.toContain('iam:GetUser');
    // Every write was signed by a step's role session, none by the tests' admin user.
    expect(mutatingCallsNotAsRole(requests)).toEqual([]);
  });

  it('a dry run is seen reading and writing nothing', async () => {
    await world.createUser('control-dry-run');

    const { result, requests } = await recordRequests(world.moto, () =>
      world.run({ userName: 'control-dry-run', dryRun: true }),
    );

    expect(outcomeStatus(result)).toBe('DRY_RUN');
    expect(calls(requests)).toEqual(expect.arrayContaining(['iam:GetUser', 'iam:ListAccessKeys']));
    expect(mutatingCalls(requests)).toEqual([]);
  });

  it('rekey rotate on the command line is seen writing', async () => {
    await world.createUser('control-cli');

    const { result: run, requests } = await recordRequests(world.moto, () =>
      rekeyInProcess(['rotate', '--user', 'control-cli', '--no-wait']),
    );

    expect(run.code, run.stderr).toBe(0);
    expect(mutatingCalls(requests)).toEqual(
      expect.arrayContaining(['iam:CreateAccessKey', 'iam:DeleteAccessKey']),
    );
    // Against the emulator the command runs each step as its deployed role, not as its caller.
    expect(run.stdout).toContain(`Emulator at ${world.moto.endpoint}: each step runs as its deployed role`);
    // Only the command's own set-up of the local resources runs as the caller (the topic exists,
    // and CreateTopic is how the command finds it).
    expect(mutatingCallsNotAsRole(requests)).toEqual(['sns:CreateTopic']);
  });
});

describe('state-machine inputs: refused by the plan step, nothing reaches AWS', () => {
  it.each(BAD_EXECUTION_INPUTS)('refuses $what', async ({ input, field, message }) => {
    const { result, requests } = await recordRequests(world.moto, () => world.run(input));

    expect(calls(requests)).toEqual([]);
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('RotationRequestRejected');
    expect(exitCodeFor(result)).toBe(1);
    const cause = causeOf(result);
    expect(cause.errorType).toBe('InvalidInput');
    expect(cause.errorMessage).toMatch(/^invalid rotation request: /);
    expect(cause.errorMessage).toMatch(message);
    expect(cause.errorMessage).toContain(field);
    // No Task ran but the plan, and the request ended at the rejection (no notification step);
    // the status change rule's cleanup then found no user to clean up after (and called nothing).
    expect(result.tasks.map((t) => [t.state, t.step])).toEqual([
      ['Plan the rotation', 'plan'],
      [STATUS_CHANGE_RULE, 'cleanup'],
    ]);
    expect(result.tasks.at(-1)?.output).toMatchObject({ acted: false });
    expect(statesEntered(result)).toEqual(['Plan the rotation', 'Reject the request']);
    expect(Object.keys(Object.prototype), 'a key leaked into Object.prototype').toEqual([]);
  });

  // The same requests typed as `rekey rotate --input JSON`: refused with the same words, earlier.
  const typeable = BAD_EXECUTION_INPUTS.filter((bad) =>
    isDeepStrictEqual(JSON.parse(JSON.stringify(bad.input)), bad.input),
  );

  it.each(typeable)('rekey rotate --input refuses $what', async ({ input, field, message }) => {
    const { result: run, requests } = await recordRequests(world.moto, () =>
      rekeyInProcess(['rotate', '--input', JSON.stringify(input)]),
    );

    expect(calls(requests)).toEqual([]);
    expectCommandRefused(run, { message, exitCode: 1 });
    expect(run.stderr).toMatch(/^rekey: invalid rotation input: /);
    expect(run.stderr).toContain(field);
    expect(Object.keys(Object.prototype), 'a key leaked into Object.prototype').toEqual([]);
  });
});

describe('command lines: exit 1, a clear message on stderr, nothing reaches AWS', () => {
  it.each(BAD_COMMAND_LINES)('refuses $what', async (bad) => {
    const { result: run, requests } = await recordRequests(world.moto, () => rekeyInProcess(bad.argv));

    expect(calls(requests)).toEqual([]);
    expectCommandRefused(run, bad);
  });

  // A few through the real executable, to prove the in-process runs stand for it.
  const spawned = [
    'rotate --user with a comma',
    'audit --fail-on an unknown type',
    'sync --secret-id ""',
  ].map((what) => {
    const bad = BAD_COMMAND_LINES.find((b) => b.what === what);
    if (!bad) throw new Error(`no corpus case "${what}"`);
    return bad;
  });

  it.each(spawned)('as a child process, refuses $what the same way', async (bad) => {
    const inProcess = await rekeyInProcess(bad.argv);

    const { result: run, requests } = await recordRequests(world.moto, () => rekeyProcess(bad.argv));

    expect(calls(requests)).toEqual([]);
    expectCommandRefused(run, bad);
    expect(run).toEqual(inProcess);
  });
});
