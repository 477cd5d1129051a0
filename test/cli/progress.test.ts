import { beforeAll, describe, expect, it } from 'vitest';
import { type LoadedDefinition, loadDefinition } from '../../cli/definition.ts';
import { type RotationResult, runRotation } from '../../cli/local-runner.ts';
import {
  colored,
  humanDuration,
  maskKeyId,
  paintFor,
  plain,
  progressPrinter,
  summaryLines,
} from '../../cli/progress.ts';
import { FAKE_HANDLERS_DIR, FIXTURE_TEMPLATE_PATH } from '../support/fixtures/index.ts';

let loaded: LoadedDefinition;
beforeAll(() => {
  loaded = loadDefinition({ templatePath: FIXTURE_TEMPLATE_PATH, synth: false });
});

async function runPrinted(userName: string): Promise<{ lines: string[]; result: RotationResult }> {
  const lines: string[] = [];
  const result = await runRotation({
    ...loaded,
    input: { userName },
    env: { REKEY_SECRET_PREFIX: 'test-rekey/' },
    noWait: true,
    handlersDir: FAKE_HANDLERS_DIR,
    onEvent: progressPrinter({
      definition: loaded.definition,
      noWait: true,
      write: (line) => lines.push(line),
    }),
  });
  return { lines, result };
}

/** Durations vary from run to run; the tests look at everything else. */
const withoutDurations = (lines: string[]) => lines.map((line) => line.replace(/\(\d+ ms\)$/, '(… ms)'));

describe('progressPrinter', () => {
  it('prints each state as it is entered and left, and what a Wait state would have waited', async () => {
    // Act
    const { lines } = await runPrinted('alice');

    // Assess
    expect(withoutDurations(lines).slice(0, 8)).toEqual([
      '→ Plan the rotation',
      '✓ Plan the rotation (… ms)',
      '→ Is there a key to rotate?',
      '✓ Is there a key to rotate? (… ms)',
      '→ Create the second key',
      '✓ Create the second key (… ms)',
      '→ Wait for consumers to adopt the new key (would wait 7 days; skipped: --no-wait)',
      '✓ Wait for consumers to adopt the new key (… ms)',
    ]);
  });

  it('marks Map iterations with their index', async () => {
    // Act
    const { lines } = await runPrinted('cleaner');

    // Assess
    expect(lines).toContain('→ Delete the extra key [0]');
  });

  it('prints a failed state with its error name', async () => {
    // Act
    const { lines } = await runPrinted('missing');

    // Assess
    expect(lines).toContain('✗ Plan the rotation: UserNotFound');
  });
});

describe('summaryLines', () => {
  it('gives the outcome, the masked key ids and the message', async () => {
    // Prepare
    const { result } = await runPrinted('alice');

    // Act / Assess
    expect(summaryLines(result)).toEqual([
      'Outcome: ROTATED',
      'Old key: AKIA…ABCD',
      'New key: AKIA…WXYZ',
      'Message: notified ROTATION_COMPLETED',
    ]);
  });

  it('names the service and calls the ids credentials for a service-specific rotation', () => {
    // Prepare: a finished service-specific rotation's document.
    const output = {
      userName: 'alice',
      serviceName: 'cassandra.amazonaws.com',
      oldKey: { accessKeyId: 'ACCAOLDCREDENTIAL0001' },
      newKey: { accessKeyId: 'ACCANEWCREDENTIAL0002' },
      outcome: { status: 'ROTATED', message: 'rotated' },
    };
    const result = { status: 'SUCCEEDED', output, events: [], tasks: [] } as unknown as RotationResult;

    // Act / Assess
    expect(summaryLines(result)).toEqual([
      'Outcome: ROTATED',
      'Service: cassandra.amazonaws.com',
      'Old credential: ACCA…0001',
      'New credential: ACCA…0002',
      'Message: rotated',
    ]);
  });

  it("gives a failure's error name, the handler's message and where the execution stopped", async () => {
    // Prepare
    const { result } = await runPrinted('missing');

    // Act / Assess
    expect(summaryLines(result)).toEqual([
      'Outcome: FAILED',
      'Error: UserNotFound: IAM user "missing" does not exist',
      'Stopped at: Plan the rotation',
    ]);
  });
});

describe('formatting helpers', () => {
  it('masks an access key id to its first and last four characters', () => {
    expect(maskKeyId('AKIAIOSFODNN7EXAMPLE')).toBe('AKIA…MPLE');
  });

  it('describes durations in the largest whole unit', () => {
    expect(humanDuration(604_800)).toBe('7 days');
    expect(humanDuration(86_400)).toBe('1 day');
    expect(humanDuration(5_400)).toBe('90 minutes');
    expect(humanDuration(61)).toBe('61 seconds');
  });

  it('colors only a terminal, and never with NO_COLOR set', () => {
    // Prepare
    const tty = { isTTY: true } as NodeJS.WriteStream;
    const pipe = { isTTY: false } as NodeJS.WriteStream;

    // Act / Assess
    expect(paintFor(tty, {})).toBe(colored);
    expect(paintFor(tty, { NO_COLOR: '1' })).toBe(plain);
    expect(paintFor(pipe, {})).toBe(plain);
  });
});
