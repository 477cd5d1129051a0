/**
 * Command-line conventions of every `rekey` command, checked on the real CLI run as a child
 * process (bin/rekey.mjs on this test's Node): --help exits 0, --version prints package.json's
 * version, a wrong flag or a missing required option is an error on stderr with exit 1, and
 * nothing is colored when the output is not a terminal.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateAccessKeyCommand, CreateUserCommand, IAMClient } from '@aws-sdk/client-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MotoClockServer, startMotoWithClock } from '../../cli/emulator.ts';

const BIN = fileURLToPath(new URL('../../bin/rekey.mjs', import.meta.url));
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
const COMMANDS = ['rotate', 'audit', 'demo', 'sync'] as const;
/** The start of an ANSI color sequence (ESC [). */
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[`);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * By default AWS points at a closed port: a command that reached AWS would fail differently than
 * expected.
 */
function rekey(...args: string[]): Promise<Run> {
  return rekeyAt('http://127.0.0.1:9', ...args);
}

function rekeyAt(endpoint: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      {
        env: {
          PATH: process.env.PATH,
          AWS_ENDPOINT_URL: endpoint,
          AWS_REGION: 'us-east-1',
          AWS_ACCESS_KEY_ID: 'AKIANOTCALLED0000000',
          AWS_SECRET_ACCESS_KEY: 'not-called',
        },
      },
      (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
      },
    );
  });
}

describe('--help and --version', () => {
  it.each(COMMANDS)('rekey %s --help prints its usage on stdout and exits 0', async (command) => {
    const run = await rekey(command, '--help');

    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^Usage: rekey ${command} \\[options\\]`));
    expect(run.stdout).toMatch(/Exit codes: 0 /);
    expect(run.stderr).toBe('');
    expect(run.stdout).not.toMatch(ANSI);
  });

  it('rekey --help lists every command and exits 0', async () => {
    const run = await rekey('--help');

    expect(run.code).toBe(0);
    for (const command of COMMANDS) expect(run.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
  });

  it.each([['--version'], ['-V']])('rekey %s prints the version of package.json', async (flag) => {
    expect(await rekey(flag)).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });
});

describe('usage errors: stderr, exit 1, nothing started', () => {
  /** Required options first: commander reports a missing one before an unknown one. */
  const REQUIRED: Record<(typeof COMMANDS)[number], string[]> = {
    rotate: [],
    audit: [],
    demo: [],
    sync: ['--secret-id', 'rekey/alice', '--profile', 'alice'],
  };

  it.each(COMMANDS)('rekey %s --bogus names the unknown option', async (command) => {
    const run = await rekey(command, ...REQUIRED[command], '--bogus');

    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error: unknown option '--bogus'\n\(add --help for usage\)\n$/);
    expect(run.stdout).toBe('');
  });

  it.each([
    [['sync', '--secret-id', 'rekey/alice'], /error: required option '--profile <name>' not specified/],
    [['sync', '--profile', 'alice'], /error: required option '--secret-id <id>' not specified/],
    [['sync', '--secret-id'], /error: option '--secret-id <id>' argument missing/],
    [['sync', '--secret-id', 'rekey/alice', '--profile', 'al]ice'], /rekey: invalid --profile "al]ice"/],
    [
      ['audit', '--max-age-days', 'ninety'],
      /error: option '--max-age-days <n>' argument 'ninety' is invalid/,
    ],
    [['audit', '--fail-on', 'OLD'], /unknown finding type OLD/],
    [['demo', '--concurrency', '0'], /error: option '--concurrency <n>' argument '0' is invalid/],
    [['rotate'], /rekey: rotate needs --user NAME/],
    [['rotate', 'extra'], /error: too many arguments for 'rotate'/],
    [['frobnicate'], /error: unknown command 'frobnicate'/],
  ])('rekey %j', async (args, message) => {
    const run = await rekey(...args);

    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).not.toMatch(ANSI);
  });

  it('rekey with no command prints the usage on stderr and exits 1', async () => {
    const run = await rekey();

    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^Usage: rekey \[options\] \[command\]/);
  });
});

describe('rekey demo without the emulator', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rekey-no-moto-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('names the missing python and the pip command, exits 1, before any synth', async () => {
    const run = await rekey('demo', '--python', join(dir, 'python3'));

    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`rekey: ${join(dir, 'python3')} was not found.`);
    expect(run.stderr).toContain('python3 -m pip install "moto[server]>=5,<6"');
    expect(run.stderr).not.toMatch(/Synthesizing|Emulator up/);
  });

  it('names the missing moto modules when python has no moto', async () => {
    // Prepare: a "python" that finds none of the modules it is asked about.
    const python = join(dir, 'python-without-moto');
    writeFileSync(python, '#!/bin/sh\nshift 2\necho "$@" | tr " " ","\n');
    chmodSync(python, 0o755);

    // Act
    const run = await rekey('demo', '--python', python);

    // Assess
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `rekey: Python's moto server is not installed for ${python} (missing modules: moto, werkzeug, flask, flask_cors). ` +
        'Install it with: python3 -m pip install "moto[server]>=5,<6"',
    );
    expect(run.stderr).not.toMatch(/Synthesizing|Emulator up/);
  });
});

describe('exit codes reported by the commands themselves', () => {
  let moto: MotoClockServer;
  beforeAll(async () => {
    // One user whose only key is 100 days old: an OLD_KEY finding.
    moto = await startMotoWithClock();
    const iam = new IAMClient({
      endpoint: moto.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIAMOTOTESTING00000', secretAccessKey: 'testing' },
    });
    await iam.send(new CreateUserCommand({ UserName: 'alice' }));
    moto.setOffsetDays(-100);
    await iam.send(new CreateAccessKeyCommand({ UserName: 'alice' }));
    moto.setOffsetDays(0);
    iam.destroy();
  });
  afterAll(async () => {
    await moto?.stop();
  });

  it('rekey audit --fail-on OLD_KEY exits 3 when such a finding exists', async () => {
    // moto does not implement ListServiceSpecificCredentials: access keys only.
    const run = await rekeyAt(moto.endpoint, 'audit', '--fail-on', 'OLD_KEY', '--no-service-credentials');

    expect(run.code).toBe(3);
    expect(run.stdout).toMatch(/^OLD_KEY +alice +AKIA\w+ +100 +100 +never/m);
    expect(run.stderr).toMatch(/rekey: 1 finding\(s\) of type OLD_KEY \(--fail-on\)/);
  });

  it('rekey audit exits 1 when the service-specific credentials cannot be listed (never a clean report)', async () => {
    const run = await rekeyAt(moto.endpoint, 'audit', '--json');

    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    // moto answers the unimplemented operation with an HTML error page, which fails the run; the
    // error names the operation and the flag, not the SDK's failure to parse the page.
    expect(run.stderr).toContain('Listing the service-specific credentials of all users');
    expect(run.stderr).toContain(
      `rekey: the endpoint ${moto.endpoint} does not implement IAM ListServiceSpecificCredentials ` +
        "(it answered HTTP 500 text/html, not IAM's protocol); turn that call off with " +
        '--no-service-credentials (or REKEY_AUDIT_SERVICE_CREDENTIALS=false)\n',
    );
    expect(run.stderr).not.toMatch(/XML parse error|Deserialization error/);
  });

  it('rekey audit --json exits 0 and prints only the findings document on stdout', async () => {
    const run = await rekeyAt(moto.endpoint, 'audit', '--json', '--no-service-credentials');

    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({
      findings: [
        {
          type: 'OLD_KEY',
          userName: 'alice',
          accessKeyId: expect.stringMatching(/^AKIA/),
          ageDays: 100,
          lastUsedDate: null,
        },
        {
          type: 'UNUSED_KEY',
          userName: 'alice',
          accessKeyId: expect.stringMatching(/^AKIA/),
          ageDays: 100,
          lastUsedDate: null,
        },
      ],
    });
  });
});
