import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import { beforeAll, describe, expect, it } from 'vitest';
import { type LoadedDefinition, loadDefinition } from '../../cli/definition.ts';
import {
  exitCodeFor,
  type JsonValue,
  type RotationResult,
  type RunRotationOptions,
  runRotation,
  STATUS_CHANGE_RULE,
} from '../../cli/local-runner.ts';
import { FAKE_HANDLERS_DIR, FIXTURE_TEMPLATE_PATH } from '../support/fixtures/index.ts';

// Handler modules are imported once per test file, so every run here uses the same environment.
const ENV = { REKEY_SECRET_PREFIX: 'test-rekey/' };

let loaded: LoadedDefinition;
beforeAll(() => {
  loaded = loadDefinition({ templatePath: FIXTURE_TEMPLATE_PATH, synth: false });
});

function run(userName: string, options: Partial<RunRotationOptions> = {}): Promise<RotationResult> {
  return runRotation({
    ...loaded,
    input: { userName },
    env: ENV,
    noWait: true,
    retryIntervalMs: 0,
    handlersDir: FAKE_HANDLERS_DIR,
    ...options,
  });
}

const stepsRun = (result: RotationResult) => result.tasks.map((task) => task.step);

describe('runRotation', () => {
  it('runs every Task with its handler and returns the final state document', async () => {
    // Act
    const result = await run('alice', { executionName: 'test-alice' });

    // Assess
    expect(result).toMatchObject({
      status: 'SUCCEEDED',
      executionName: 'test-alice',
      executionArn: 'arn:aws:states:us-east-1:123456789012:execution:rekey-local:test-alice',
      lastState: 'Notify that the rotation completed',
      output: {
        userName: 'alice',
        outcome: { status: 'ROTATED' },
        newKey: { accessKeyId: 'AKIANEWKEY000000WXYZ' },
      },
    });
    expect(stepsRun(result)).toEqual(['plan', 'create-second-key', 'check-last-used', 'notify']);
    expect(exitCodeFor(result)).toBe(0);
  });

  it('sets the environment before importing handlers, passes the context object, restores process.env', async () => {
    // Act
    const result = await run('alice', { executionName: 'test-env' });

    // Assess
    expect(result.tasks[0]).toMatchObject({
      state: 'Plan the rotation',
      input: { input: { userName: 'alice' }, executionId: result.executionArn },
      output: { secretName: 'test-rekey/alice', functionName: 'rekey-local-plan' },
    });
    expect(process.env.REKEY_SECRET_PREFIX).toBeUndefined();
  });

  it('hands back what the handler returned as JSON, like Lambda does (dates become strings)', async () => {
    // Act
    const result = await run('alice');

    // Assess
    expect(result.tasks[0]?.output).toMatchObject({ oldKey: { createDate: '2025-01-01T00:00:00.000Z' } });
  });

  it('runs Map iterations inside Parallel branches', async () => {
    // Act
    const result = await run('cleaner');

    // Assess
    expect(result.tasks.find((task) => task.step === 'delete-key')).toMatchObject({
      state: 'Delete the extra key',
      input: { userName: 'cleaner', accessKeyId: 'AKIAEXTRAKEY0000EEEE' },
      output: { deleted: 'AKIAEXTRAKEY0000EEEE' },
    });
  });

  it('makes Wait states instant with noWait', async () => {
    // Act
    const result = await run('alice');

    // Assess
    const waits = result.events.filter(
      (event) => 'state' in event && event.state.name === 'Wait for consumers to adopt the new key',
    );
    expect(waits.map((event) => event.type)).toEqual(['StateEntered', 'StateExited']);
  });

  it('stops safely with exit code 2', async () => {
    // Act
    const result = await run('stopper');

    // Assess
    expect(result.output).toMatchObject({ outcome: { status: 'STOPPED', reason: 'TwoActiveKeys' } });
    expect(stepsRun(result)).toEqual(['plan', 'notify']);
    expect(exitCodeFor(result)).toBe(2);
  });

  it('reports a dry run with exit code 0 and creates nothing', async () => {
    // Act
    const result = await run('alice', { input: { userName: 'alice', dryRun: true } });

    // Assess
    expect(result.output).toMatchObject({ outcome: { status: 'DRY_RUN' } });
    expect(stepsRun(result)).toEqual(['plan']);
    expect(exitCodeFor(result)).toBe(0);
  });

  it('returns FAILED with the error name and a Lambda-shaped cause instead of throwing', async () => {
    // Act
    const result = await run('missing');

    // Assess
    expect(result).toMatchObject({ status: 'FAILED', error: 'UserNotFound', lastState: 'Plan the rotation' });
    expect(JSON.parse(result.cause ?? '')).toEqual({
      errorType: 'UserNotFound',
      errorMessage: 'IAM user "missing" does not exist',
    });
    expect(result.tasks[0]?.error).toEqual({
      name: 'UserNotFound',
      message: 'IAM user "missing" does not exist',
    });
    expect(exitCodeFor(result)).toBe(1);
  });

  it('lets a test replace a Task (a crash) and the workflow catch it', async () => {
    // Prepare
    const crash = Object.assign(new Error('process exited before completing request'), {
      name: 'Lambda.Unknown',
    });

    // Act
    const result = await run('alice', {
      handlers: {
        'create-second-key': () => {
          throw crash;
        },
      },
    });

    // Assess
    expect(result).toMatchObject({ status: 'FAILED', error: 'Lambda.Unknown', lastState: 'Rotation failed' });
    const notify = result.tasks.find((task) => task.state === 'Notify the failure');
    expect(notify?.input).toMatchObject({ state: { error: { Error: 'Lambda.Unknown' } } });
  });

  it('lets a test wrap a Task: a throttled first attempt is retried', async () => {
    // Prepare
    let attempts = 0;

    // Act
    const result = await run('alice', {
      handlers: {
        'Plan the rotation': (input, invoke) => {
          attempts += 1;
          if (attempts === 1)
            throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
          return invoke(input);
        },
      },
    });

    // Assess
    expect(result.status).toBe('SUCCEEDED');
    expect(result.events.filter((event) => event.type === 'StateRetried')).toHaveLength(1);
    expect(stepsRun(result).slice(0, 2)).toEqual(['plan', 'plan']);
  });

  it('hands every event to onEvent, in order', async () => {
    // Prepare
    const seen: string[] = [];

    // Act
    const result = await run('alice', { onEvent: (event) => seen.push(event.type) });

    // Assess
    expect(seen).toEqual(result.events.map((event) => event.type));
    expect(seen[0]).toBe('ExecutionStarted');
    expect(seen.at(-1)).toBe('ExecutionSucceeded');
  });
});

describe('overlapping runs', () => {
  it('share one environment and restore it when the last one ends', async () => {
    // Act
    const results = await Promise.all([run('alice'), run('cleaner')]);

    // Assess
    expect(results.map((result) => result.status)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    expect(process.env.REKEY_SECRET_PREFIX).toBeUndefined();
  });

  it('are refused when their environments differ', async () => {
    // Act
    const first = run('alice');
    const second = run('alice', { env: { REKEY_SECRET_PREFIX: 'other/' } });

    // Assess
    await expect(second).rejects.toThrow(
      /overlapping runs must share one environment: REKEY_SECRET_PREFIX differs/,
    );
    expect((await first).status).toBe('SUCCEEDED');
  });
});

describe('runRotation around engine limits', () => {
  const DAYS = 86_400;

  it('replaces the state with the result by default (ResultPath left implicit)', async () => {
    // Act
    const result = await run('alice');

    // Assess
    expect(loaded.definition.States['Plan the rotation']).not.toHaveProperty('ResultPath');
    expect(result.output).toMatchObject({ userName: 'alice', action: 'ROTATE' });
  });

  it('refuses a definition that writes ResultPath "$" explicitly (the engine would nest the result under "$")', async () => {
    // Prepare
    const definition = structuredClone(loaded.definition);
    const plan = definition.States['Plan the rotation'];
    if (plan?.Type === 'Task') plan.ResultPath = '$';

    // Act / Assess
    await expect(run('alice', { definition })).rejects.toThrow(
      /state "Plan the rotation" writes ResultPath "\$" explicitly; omit it/,
    );
  });

  it.each([
    [{ Variable: '$.extra', IsNull: false, Next: 'Done' }],
    [{ And: [{ Variable: '$.extra', IsPresent: false }], Next: 'Done' }],
  ])('refuses a choice that tests a type with false, which the engine never matches (%j)', async (rule) => {
    // Prepare (the engine's types even forbid `false`, hence the cast)
    const definition = {
      StartAt: 'Is there an extra key?',
      States: {
        'Is there an extra key?': { Type: 'Choice', Choices: [rule], Default: 'Done' },
        Done: { Type: 'Succeed' },
      },
    } as unknown as StateMachineDefinition;

    // Act / Assess
    await expect(runRotation({ definition, bindings: {}, input: {} })).rejects.toThrow(
      /choice state "Is there an extra key\?" tests a type with false/,
    );
  });

  it('runs a machine whose timeout is longer than a timer can hold (the deployed one is weeks)', async () => {
    // Act
    const result = await run('alice', { definition: { ...loaded.definition, TimeoutSeconds: 29 * DAYS } });

    // Assess
    expect(result.status).toBe('SUCCEEDED');
  });

  it('refuses to wait longer than a timer can hold rather than skip the wait silently', async () => {
    // Prepare
    const definition = structuredClone(loaded.definition);
    const wait = definition.States['Wait for consumers to adopt the new key'];
    if (wait?.Type === 'Wait') wait.Seconds = 30 * DAYS;

    // Act / Assess
    await expect(run('alice', { definition, noWait: false })).rejects.toThrow(
      /Wait state "Wait for consumers to adopt the new key" lasts 2592000 s, longer than a local run can wait/,
    );
  });
});

describe('standing in for the status change rule', () => {
  /** A Wait, then the cleanup Task: the machine binds the cleanup step, as the synthesized one does. */
  const waiting = (seconds: number, timeoutSeconds?: number): StateMachineDefinition =>
    ({
      StartAt: 'Wait a while',
      ...(timeoutSeconds ? { TimeoutSeconds: timeoutSeconds } : {}),
      States: {
        'Wait a while': { Type: 'Wait', Seconds: seconds, Next: 'Clean up after the failure' },
        'Clean up after the failure': {
          Type: 'Task',
          Resource: 'arn:aws:lambda:us-east-1:123456789012:function:cleanup',
          End: true,
        },
      },
    }) as unknown as StateMachineDefinition;
  const rule = (events: unknown[]) => ({
    cleanup: (input: JsonValue) => {
      events.push(input);
      return { acted: false };
    },
  });

  it('an aborted run ends ABORTED, then the cleanup gets the ABORTED event the rule would send', async () => {
    // Prepare
    const events: unknown[] = [];
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);

    // Act
    const result = await runRotation({
      definition: waiting(30),
      bindings: { 'Clean up after the failure': 'cleanup' },
      input: { userName: 'alice' },
      executionName: 'stopped',
      signal: controller.signal,
      handlers: rule(events),
    });

    // Assess
    expect(result.status).toBe('ABORTED');
    expect(exitCodeFor(result)).toBe(1);
    expect(events).toEqual([
      {
        executionArn: 'arn:aws:states:us-east-1:123456789012:execution:rekey-local:stopped',
        status: 'ABORTED',
        input: '{"userName":"alice"}',
      },
    ]);
    expect(result.tasks.at(-1)).toMatchObject({ state: STATUS_CHANGE_RULE, step: 'cleanup' });
  });

  it('a run that times out ends TIMED_OUT, and the cleanup gets TIMED_OUT', async () => {
    const events: unknown[] = [];

    const result = await runRotation({
      definition: waiting(5, 1),
      bindings: { 'Clean up after the failure': 'cleanup' },
      input: { userName: 'alice' },
      handlers: rule(events),
    });

    expect(result).toMatchObject({ status: 'TIMED_OUT', error: 'States.Timeout' });
    expect(events).toMatchObject([{ status: 'TIMED_OUT' }]);
  });

  it('a run that succeeds does not invoke the cleanup', async () => {
    const events: unknown[] = [];

    const result = await runRotation({
      definition: waiting(0),
      bindings: { 'Clean up after the failure': 'cleanup' },
      input: { userName: 'alice' },
      handlers: rule(events),
    });

    expect(result.status).toBe('SUCCEEDED');
    expect(events).toHaveLength(1); // the machine's own Task, not the rule
    expect(result.tasks.map((t) => t.state)).toEqual(['Clean up after the failure']);
  });
});

describe('exitCodeFor', () => {
  const succeeded = (outcome: JsonValue) => ({ status: 'SUCCEEDED' as const, output: { outcome } });

  it.each([
    ['ROTATED', 0],
    ['DRY_RUN', 0],
    ['STOPPED', 2],
    ['ROLLED_BACK', 1],
    ['FAILED', 1],
  ])('maps a succeeded execution with outcome %s to %i', (status, code) => {
    expect(exitCodeFor(succeeded({ status, message: 'm' }))).toBe(code);
  });

  it('maps a failed execution to 1 whatever its output', () => {
    expect(exitCodeFor({ status: 'FAILED', output: { outcome: { status: 'ROTATED', message: 'm' } } })).toBe(
      1,
    );
  });

  it('maps a succeeded execution without a well-formed outcome to 1', () => {
    expect(exitCodeFor({ status: 'SUCCEEDED', output: { userName: 'alice' } })).toBe(1);
    expect(exitCodeFor(succeeded({ status: 'DONE', message: 'm' }))).toBe(1);
    expect(exitCodeFor({ status: 'SUCCEEDED', output: null })).toBe(1);
  });
});
