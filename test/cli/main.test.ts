import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { rotationInputFrom, UsageError } from '../../cli/main.ts';

const BIN = fileURLToPath(new URL('../../bin/rekey.mjs', import.meta.url));
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `rekey` as a user would, on this test's Node (24). AWS points at a closed port, so a test
 * that reached AWS would fail with a connection error instead of the usage error it expects.
 */
function rekey(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      {
        env: {
          PATH: process.env.PATH,
          AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
          AWS_REGION: 'us-east-1',
          AWS_ACCESS_KEY_ID: 'AKIANOTCALLED0000000',
          AWS_SECRET_ACCESS_KEY: 'not-called',
        },
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('rekey (child process)', () => {
  it('prints its version', async () => {
    expect(await rekey('--version')).toMatchObject({ code: 0, stdout: `${version}\n` });
  });

  it('prints help for rotate', async () => {
    // Act
    const run = await rekey('rotate', '--help');

    // Assess
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/Usage: rekey rotate \[options\]/);
    expect(run.stdout).toMatch(/--no-wait/);
    expect(run.stdout).toMatch(/--service <name>/);
  });

  // Bad command lines (exit 1, a clear message, nothing called) are the bad-input corpus:
  // test/workflow/bad-input-corpus.ts, run by test/workflow/bad-input.test.ts.
});

describe('rotationInputFrom', () => {
  it('builds the execution input from the flags', () => {
    expect(rotationInputFrom({ user: 'alice', dryRun: true, reason: 'audit', wait: true })).toEqual({
      userName: 'alice',
      dryRun: true,
      reason: 'audit',
    });
  });

  it('--account names the member account the user is in', () => {
    expect(rotationInputFrom({ user: 'alice', account: '210987654321', wait: true })).toEqual({
      userName: 'alice',
      accountId: '210987654321',
    });
  });

  it.each(['21098765432', '21098765432a', ' 210987654321'])(
    'refuses --account %j before synth or AWS',
    (account) => {
      expect(() => rotationInputFrom({ user: 'alice', account, wait: true })).toThrow(
        new UsageError(`--account accountId must be 12 digits (got "${account}")`),
      );
    },
  );

  it('passes --input on exactly as typed', () => {
    expect(rotationInputFrom({ input: '{"userName":"a.b@c","dryRun":false}', wait: true })).toEqual({
      userName: 'a.b@c',
      dryRun: false,
    });
  });

  it("refuses a user name with ',' as the plan step would, before synth or AWS", () => {
    expect(() => rotationInputFrom({ user: 'smtp,relay', wait: true })).toThrow(
      new UsageError(
        "invalid rotation input: userName: userName contains ',', which Secrets Manager names do not allow",
      ),
    );
  });

  it('--service rotates a service-specific credential of the user', () => {
    expect(rotationInputFrom({ user: 'alice', service: 'cassandra.amazonaws.com', wait: true })).toEqual({
      userName: 'alice',
      serviceName: 'cassandra.amazonaws.com',
    });
  });

  it('refuses an unknown --service, and --service without --user, with a usage error', () => {
    expect(() => rotationInputFrom({ user: 'alice', service: 's3.amazonaws.com', wait: true })).toThrow(
      new UsageError(
        '--service must be one of cassandra.amazonaws.com, codecommit.amazonaws.com (got "s3.amazonaws.com")',
      ),
    );
    expect(() => rotationInputFrom({ service: 'codecommit.amazonaws.com', wait: true })).toThrow(
      new UsageError('--service needs --user NAME (whose service-specific credential to rotate)'),
    );
  });

  it('names every problem of a bad input', () => {
    expect(() => rotationInputFrom({ input: '{"userName":"al ice","reason":5}', wait: true })).toThrow(
      new UsageError(
        'invalid rotation input: userName: userName may contain only letters, digits and +=,.@_-; ' +
          'reason: reason must be a string',
      ),
    );
  });
});
