import { GetAccessKeyLastUsedCommand, IAMClient, UpdateAccessKeyCommand } from '@aws-sdk/client-iam';
import { DescribeExecutionCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { rotationInputProblems } from '../../../contract/schemas.ts';
import {
  type ActionPolicy,
  applyActions,
  attemptName,
  EXECUTION_NAME,
  executionArnFor,
  executionNameFor,
  type FailedAttempt,
  firstAttemptStarted,
  type RotationRequest,
  type RotationStarter,
  rotationReason,
  SfnRotationStarter,
  type StartResult,
  stateMachineArnOf,
} from '../../../lambdas/audit/actions.ts';
import { CallCounter } from '../../../lambdas/audit/calls.ts';
import type { Finding } from '../../../lambdas/audit/findings.ts';
import { awsError, fakeClock } from '../../support/lambda-fixtures.ts';
import { finding as baseFinding, CASSANDRA, CODECOMMIT, serviceFinding } from './fixtures.ts';
import { ACCOUNT, ago, userDetail, usersOf } from './helpers.ts';

const STATE_MACHINE_ARN = `arn:aws:states:us-east-1:${ACCOUNT}:stateMachine:rekey-rotation`;

describe('executionNameFor', () => {
  it('is rekey-<user>-<key> for a plain user name', () => {
    expect(executionNameFor('alice', 'AKIAIOSFODNN7EXAMPLE')).toBe('rekey-alice-AKIAIOSFODNN7EXAMPLE');
    expect(executionNameFor('alice', 'AKIAIOSFODNN7EXAMPLE')).toBe(
      executionNameFor('alice', 'AKIAIOSFODNN7EXAMPLE'),
    );
  });

  it('replaces characters Step Functions refuses and adds a hash of the raw name', () => {
    const dotted = executionNameFor('bob.smith@corp', 'AKIAIOSFODNN7EXAMPLE');
    const underscored = executionNameFor('bob_smith_corp', 'AKIAIOSFODNN7EXAMPLE');
    expect(dotted).toMatch(/^rekey-bob_smith_corp-[0-9a-f]{8}-AKIAIOSFODNN7EXAMPLE$/);
    expect(underscored).toBe('rekey-bob_smith_corp-AKIAIOSFODNN7EXAMPLE');
    expect(dotted).not.toBe(underscored);
    expect(executionNameFor('a+b', 'K'.repeat(20))).not.toBe(executionNameFor('a=b', 'K'.repeat(20)));
  });

  it('fits 80 characters for the longest user names and keeps the key id whole', () => {
    const long = `${'x'.repeat(60)}.@+=`;
    const name = executionNameFor(long, 'AKIAIOSFODNN7EXAMPLE');
    expect(name.length).toBeLessThanOrEqual(80);
    expect(name).toMatch(EXECUTION_NAME);
    expect(name.endsWith('-AKIAIOSFODNN7EXAMPLE')).toBe(true);
    const plainLong = executionNameFor('y'.repeat(64), 'AKIAIOSFODNN7EXAMPLE');
    expect(plainLong.length).toBeLessThanOrEqual(80);
    expect(plainLong).not.toBe(executionNameFor(`${'y'.repeat(63)}z`, 'AKIAIOSFODNN7EXAMPLE'));
  });

  it('names attempt n of a rotation <attempt 1>-<n>; attempt 1 is the name without a number', () => {
    const first = executionNameFor('alice', 'AKIAIOSFODNN7EXAMPLE');
    expect(executionNameFor('alice', 'AKIAIOSFODNN7EXAMPLE', 1)).toBe(first);
    expect(executionNameFor('alice', 'AKIAIOSFODNN7EXAMPLE', 2)).toBe('rekey-alice-AKIAIOSFODNN7EXAMPLE-2');
    expect(executionNameFor('alice', 'AKIAIOSFODNN7EXAMPLE', 9)).toBe(`${first}-9`);
    expect(attemptName(first, 3)).toBe(`${first}-3`);
    for (const bad of [0, 10, 1.5, -1, Number.NaN])
      expect(() => executionNameFor('alice', 'AKIAIOSFODNN7EXAMPLE', bad), String(bad)).toThrow(RangeError);
  });

  it('keeps every attempt within 80 characters at the limits of user names and credential ids', () => {
    // IAM: user names 1-64 characters; access key ids 16-128 (real ones 20), service credential ids 20-128.
    const users = [
      'u',
      'y'.repeat(64),
      `${'x'.repeat(60)}.@+=`,
      '.'.repeat(64),
      'a'.repeat(51),
      'a'.repeat(52),
    ];
    const ids = [
      'K'.repeat(16),
      'AKIAIOSFODNN7EXAMPLE',
      'ACCAEXAMPLE123EXAMPLE',
      'C'.repeat(62),
      'C'.repeat(128),
    ];
    for (const user of users)
      for (const id of ids)
        for (let attempt = 1; attempt <= 9; attempt++) {
          const name = executionNameFor(user, id, attempt);
          expect(name.length, `${user} ${id} ${attempt}`).toBeLessThanOrEqual(80);
          expect(name).toMatch(EXECUTION_NAME);
        }
    // The longest plain name that is not cut leaves exactly the room of the largest attempt number.
    const widest = executionNameFor('a'.repeat(51), 'AKIAIOSFODNN7EXAMPLE');
    expect(widest).toBe(`rekey-${'a'.repeat(51)}-AKIAIOSFODNN7EXAMPLE`);
    expect(widest).toHaveLength(78);
    expect(executionNameFor('a'.repeat(51), 'AKIAIOSFODNN7EXAMPLE', 9)).toHaveLength(80);
    // One more character and the user part is cut, with the hash, to the same length.
    const cut = executionNameFor('a'.repeat(52), 'AKIAIOSFODNN7EXAMPLE');
    expect(cut).toMatch(/^rekey-a{42}-[0-9a-f]{8}-AKIAIOSFODNN7EXAMPLE$/);
    expect(executionNameFor('a'.repeat(52), 'AKIAIOSFODNN7EXAMPLE', 9)).toHaveLength(80);
    // The longest credential ids are cut to 62 characters, leaving room for the hashed user.
    expect(executionNameFor('y'.repeat(64), 'C'.repeat(128), 9)).toMatch(/^rekey--[0-9a-f]{8}-C{62}-9$/);
  });

  it('never gives two users, credentials or attempts the same name', () => {
    const names = new Map<string, string>();
    for (const user of ['alice', 'alice-2', 'bob', 'a.b', 'a_b', 'y'.repeat(64), `${'y'.repeat(63)}z`])
      for (const id of ['AKIAIOSFODNN7EXAMPLE', 'AKIAIOSFODNN7EXAMPL2', 'ACCAEXAMPLE123EXAMPLE'])
        for (let attempt = 1; attempt <= 9; attempt++) {
          const name = executionNameFor(user, id, attempt);
          const who = `${user} ${id} ${attempt}`;
          expect(names.get(name) ?? who, name).toBe(who);
          names.set(name, who);
        }
  });

  it('is valid and distinct for many random IAM user names', () => {
    const chars = 'abcXYZ019+=,.@_-';
    const names = new Set<string>();
    const seen = new Map<string, string>();
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let i = 0; i < 2000; i++) {
      const length = 1 + Math.floor(random() * 64);
      const user = Array.from({ length }, () => chars[Math.floor(random() * chars.length)]).join('');
      if (names.has(user.toLowerCase())) continue;
      names.add(user.toLowerCase());
      const name = executionNameFor(user, 'AKIAIOSFODNN7EXAMPLE');
      expect(name).toMatch(EXECUTION_NAME);
      expect(seen.get(name) ?? user).toBe(user);
      seen.set(name, user);
    }
  });
});

describe('SfnRotationStarter', () => {
  const sfn = new SFNClient({ region: 'us-east-1' });
  const sfnMock = mockClient(sfn);
  const starter = new SfnRotationStarter(sfn, STATE_MACHINE_ARN);
  const request: RotationRequest = {
    executionName: 'rekey-alice-AKIAIOSFODNN7EXAMPLE',
    userName: 'alice',
    accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
    reason: 'audit: OLD_KEY AKIAIOSFODNN7EXAMPLE 120 days',
    maxAttempts: 3,
  };
  const arn = `arn:aws:states:us-east-1:${ACCOUNT}:execution:rekey-rotation:rekey-alice-AKIAIOSFODNN7EXAMPLE`;
  const arnOf = (attempt: number) => (attempt === 1 ? arn : `${arn}-${attempt}`);
  const nameOf = (attempt: number) => attemptName(request.executionName, attempt);
  const stopDate = new Date('2026-02-27T06:00:00.000Z');
  const failed = (
    attempt: number,
    status: FailedAttempt['status'],
    error: string | null = null,
  ): FailedAttempt => ({
    attempt,
    executionName: nameOf(attempt),
    executionArn: arnOf(attempt),
    status,
    error,
    stopDate: stopDate.toISOString(),
  });
  /** Step Functions with these executions (attempt -> status); every other name does not exist. */
  const executions = (statuses: Record<number, string>) => {
    sfnMock.on(DescribeExecutionCommand).rejects(awsError('ExecutionDoesNotExist'));
    for (const [attempt, status] of Object.entries(statuses))
      sfnMock.on(DescribeExecutionCommand, { executionArn: arnOf(Number(attempt)) }).resolves({
        executionArn: arnOf(Number(attempt)),
        status: status as 'RUNNING',
        stopDate,
        ...(status === 'FAILED'
          ? { error: 'States.TaskFailed', cause: 'the cause stays in Step Functions' }
          : {}),
      });
    sfnMock.on(StartExecutionCommand).callsFake((input: { name: string }) => ({
      executionArn: executionArnFor(STATE_MACHINE_ARN, input.name),
    }));
  };
  const described = () => sfnMock.commandCalls(DescribeExecutionCommand).map((c) => c.args[0].input);
  const started = () => sfnMock.commandCalls(StartExecutionCommand).map((c) => c.args[0].input);

  beforeEach(() => sfnMock.reset());

  it('derives the execution ARN from the state machine ARN, and back', () => {
    expect(executionArnFor(STATE_MACHINE_ARN, request.executionName)).toBe(arn);
    expect(stateMachineArnOf(arnOf(2))).toBe(STATE_MACHINE_ARN);
  });

  it('starts attempt 1 with the rotation input when no execution of the name exists', async () => {
    executions({});

    await expect(starter.start(request)).resolves.toEqual({
      status: 'STARTED',
      attempt: 1,
      executionName: request.executionName,
      executionArn: arn,
      failedAttempts: [],
    });

    expect(described()).toEqual([{ executionArn: arn }]);
    expect(started()).toEqual([
      {
        stateMachineArn: STATE_MACHINE_ARN,
        name: request.executionName,
        input: '{"userName":"alice","reason":"audit: OLD_KEY AKIAIOSFODNN7EXAMPLE 120 days"}',
      },
    ]);
  });

  it('a service-specific credential is started with serviceName, an input the rotation itself accepts', async () => {
    executions({});

    await starter.start({ ...request, serviceName: 'cassandra.amazonaws.com' });

    const input = started()[0]?.input ?? '';
    expect(JSON.parse(input)).toEqual({
      userName: 'alice',
      serviceName: 'cassandra.amazonaws.com',
      reason: 'audit: OLD_KEY AKIAIOSFODNN7EXAMPLE 120 days',
    });
    // The handshake between the audit and the state machine: the plan step parses exactly this.
    expect(rotationInputProblems(JSON.parse(input))).toEqual([]);
    expect(rotationInputProblems({ ...JSON.parse(input), serviceName: 'cassandra' })).not.toEqual([]);
  });

  it.each(['RUNNING', 'PENDING_REDRIVE', 'SUCCEEDED'])(
    'leaves an attempt that is %s alone',
    async (status) => {
      executions({ 1: status });

      await expect(starter.start(request)).resolves.toEqual({
        status: 'ALREADY_STARTED',
        attempt: 1,
        executionName: request.executionName,
        executionArn: arn,
        failedAttempts: [],
      });

      expect(described()).toEqual([{ executionArn: arn }]);
      expect(sfnMock).not.toHaveReceivedCommand(StartExecutionCommand);
    },
  );

  it.each([
    ['FAILED', 'States.TaskFailed'],
    ['ABORTED', null],
    ['TIMED_OUT', null],
  ] as const)('starts attempt 2 after attempt 1 ended %s', async (status, error) => {
    executions({ 1: status });

    await expect(starter.start(request)).resolves.toEqual({
      status: 'RETRIED',
      attempt: 2,
      executionName: 'rekey-alice-AKIAIOSFODNN7EXAMPLE-2',
      executionArn: arnOf(2),
      failedAttempts: [failed(1, status, error)],
    });

    expect(described()).toEqual([{ executionArn: arn }, { executionArn: arnOf(2) }]);
    expect(started()).toEqual([
      {
        stateMachineArn: STATE_MACHINE_ARN,
        name: 'rekey-alice-AKIAIOSFODNN7EXAMPLE-2',
        input: '{"userName":"alice","reason":"audit: OLD_KEY AKIAIOSFODNN7EXAMPLE 120 days, attempt 2 of 3"}',
      },
    ]);
    expect(rotationInputProblems(JSON.parse(started()[0]?.input ?? ''))).toEqual([]);
  });

  it('restarts FAILED, ABORTED and TIMED_OUT attempts, run after run, until maxAttempts; then gives up', async () => {
    // Prepare: a Step Functions that remembers what was started; each attempt fails before the next run.
    const statuses = new Map<string, string>();
    sfnMock.on(DescribeExecutionCommand).callsFake((input: { executionArn: string }) => {
      const status = statuses.get(input.executionArn);
      if (!status) throw awsError('ExecutionDoesNotExist');
      return { executionArn: input.executionArn, status, stopDate };
    });
    sfnMock.on(StartExecutionCommand).callsFake((input: { name: string }) => {
      const executionArn = executionArnFor(STATE_MACHINE_ARN, input.name);
      statuses.set(executionArn, 'RUNNING');
      return { executionArn };
    });
    const endings = ['FAILED', 'ABORTED', 'TIMED_OUT'] as const;

    // Act: five audit runs.
    const results: StartResult[] = [];
    for (let run = 0; run < 5; run++) {
      results.push(await starter.start(request));
      const ending = endings[run];
      if (ending) statuses.set(arnOf(run + 1), ending);
    }

    // Assess: attempts 1, 2, 3, then given up (twice, nothing more started).
    expect(results.map((r) => [r.status, r.attempt, r.executionName])).toEqual([
      ['STARTED', 1, nameOf(1)],
      ['RETRIED', 2, nameOf(2)],
      ['RETRIED', 3, nameOf(3)],
      ['GIVEN_UP', 3, nameOf(3)],
      ['GIVEN_UP', 3, nameOf(3)],
    ]);
    expect(results[2]?.failedAttempts).toEqual([failed(1, 'FAILED'), failed(2, 'ABORTED')]);
    expect(results[4]).toEqual({
      status: 'GIVEN_UP',
      attempt: 3,
      executionName: nameOf(3),
      executionArn: arnOf(3),
      failedAttempts: [failed(1, 'FAILED'), failed(2, 'ABORTED'), failed(3, 'TIMED_OUT')],
    });
    expect(started().map((i) => [i.name, JSON.parse(i.input ?? '{}').reason])).toEqual([
      [nameOf(1), 'audit: OLD_KEY AKIAIOSFODNN7EXAMPLE 120 days'],
      [nameOf(2), 'audit: OLD_KEY AKIAIOSFODNN7EXAMPLE 120 days, attempt 2 of 3'],
      [nameOf(3), 'audit: OLD_KEY AKIAIOSFODNN7EXAMPLE 120 days, attempt 3 of 3'],
    ]);
    // A run that gives up reads each attempt once and stops there.
    expect(described().slice(-3)).toEqual([1, 2, 3].map((n) => ({ executionArn: arnOf(n) })));
    for (const name of started().map((i) => i.name ?? '')) expect(name.length).toBeLessThanOrEqual(80);
  });

  it('leaves a later attempt that is running alone, with the failed ones before it', async () => {
    executions({ 1: 'FAILED', 2: 'RUNNING' });

    await expect(starter.start(request)).resolves.toEqual({
      status: 'ALREADY_STARTED',
      attempt: 2,
      executionName: nameOf(2),
      executionArn: arnOf(2),
      failedAttempts: [failed(1, 'FAILED', 'States.TaskFailed')],
    });
    expect(sfnMock).not.toHaveReceivedCommand(StartExecutionCommand);
  });

  it('maxAttempts 1: a failed first attempt is given up at once', async () => {
    executions({ 1: 'TIMED_OUT' });

    const result = await starter.start({ ...request, maxAttempts: 1 });

    expect(result).toMatchObject({
      status: 'GIVEN_UP',
      attempt: 1,
      failedAttempts: [failed(1, 'TIMED_OUT')],
    });
    expect(described()).toEqual([{ executionArn: arn }]);
    expect(sfnMock).not.toHaveReceivedCommand(StartExecutionCommand);
  });

  it('a lowered maxAttempts gives up on a rotation that already had more attempts', async () => {
    executions({ 1: 'FAILED', 2: 'FAILED', 3: 'RUNNING' });

    const result = await starter.start({ ...request, maxAttempts: 2 });

    expect(result).toMatchObject({ status: 'GIVEN_UP', attempt: 2 });
    expect(described()).toHaveLength(2);
  });

  it('a status it does not know counts as started: no second rotation on a guess', async () => {
    executions({ 1: 'PAUSED' });

    await expect(starter.start(request)).resolves.toMatchObject({ status: 'ALREADY_STARTED', attempt: 1 });
    expect(sfnMock).not.toHaveReceivedCommand(StartExecutionCommand);
  });

  it('ExecutionAlreadyExists (a race with another audit) is already started, not an error', async () => {
    executions({ 1: 'ABORTED' });
    sfnMock.on(StartExecutionCommand).rejects(awsError('ExecutionAlreadyExists'));

    await expect(starter.start(request)).resolves.toEqual({
      status: 'ALREADY_STARTED',
      attempt: 2,
      executionName: nameOf(2),
      executionArn: arnOf(2),
      failedAttempts: [failed(1, 'ABORTED')],
    });
  });

  it('rethrows other errors, on any attempt', async () => {
    sfnMock.on(DescribeExecutionCommand).rejects(awsError('AccessDeniedException'));
    await expect(starter.start(request)).rejects.toThrow(/AccessDeniedException/);

    executions({ 1: 'FAILED' });
    sfnMock.on(DescribeExecutionCommand, { executionArn: arnOf(2) }).rejects(awsError('ThrottlingException'));
    await expect(starter.start(request)).rejects.toThrow(/ThrottlingException/);

    executions({});
    sfnMock.on(StartExecutionCommand).rejects(awsError('StateMachineDoesNotExist'));
    await expect(starter.start(request)).rejects.toThrow(/StateMachineDoesNotExist/);
  });

  it('refuses a maxAttempts outside 1 to 9 before any call', async () => {
    for (const maxAttempts of [0, -1, 1.5, 10])
      await expect(starter.start({ ...request, maxAttempts }), String(maxAttempts)).rejects.toThrow(
        RangeError,
      );
    expect(sfnMock).not.toHaveReceivedAnyCommand();
  });
});

const POLICY: ActionPolicy = {
  autoRotate: true,
  maxRotationsPerRun: 25,
  maxRotationAttempts: 3,
  deactivateUnused: false,
  deactivateUnusedAfterDays: 90,
  protectedUsers: [],
  userPathPrefix: '/',
  optInTag: undefined,
};

let keySeq = 0;
/** An OLD_KEY finding with a key id of its own (the shared fixture leaves the key id null). */
function finding(over: Partial<Finding> & { userName: string }): Finding {
  keySeq++;
  return baseFinding({
    type: 'OLD_KEY',
    accessKeyId: `AKIATEST${String(keySeq).padStart(12, '0')}`,
    ...over,
  });
}

/** A failed attempt of the rotation whose attempt 1 is `first`. */
const failedAttempt = (first: string, attempt: number, status: FailedAttempt['status']): FailedAttempt => ({
  attempt,
  executionName: attemptName(first, attempt),
  executionArn: executionArnFor(STATE_MACHINE_ARN, attemptName(first, attempt)),
  status,
  error: status === 'FAILED' ? 'States.TaskFailed' : null,
  stopDate: null,
});

/**
 * A starter that answers by attempt-1 name: `already` are running, `retried` had attempt 1 FAILED
 * (attempt 2 starts), `givenUp` had maxAttempts attempts FAILED; every other one starts.
 */
function fakeStarter(
  already: string[] = [],
  { retried = [], givenUp = [] }: { retried?: string[]; givenUp?: string[] } = {},
): RotationStarter & { start: ReturnType<typeof vi.fn> } {
  return {
    start: vi.fn(async (r: RotationRequest): Promise<StartResult> => {
      const at = (attempt: number) => ({
        attempt,
        executionName: attemptName(r.executionName, attempt),
        executionArn: executionArnFor(STATE_MACHINE_ARN, attemptName(r.executionName, attempt)),
      });
      if (already.includes(r.executionName))
        return { status: 'ALREADY_STARTED', ...at(1), failedAttempts: [] };
      if (retried.includes(r.executionName))
        return { status: 'RETRIED', ...at(2), failedAttempts: [failedAttempt(r.executionName, 1, 'FAILED')] };
      if (givenUp.includes(r.executionName)) {
        const statuses = ['FAILED', 'ABORTED', 'TIMED_OUT', 'FAILED'] as const;
        const failedAttempts = Array.from({ length: r.maxAttempts }, (_, i) =>
          failedAttempt(r.executionName, i + 1, statuses[i % 3] ?? 'FAILED'),
        );
        return { status: 'GIVEN_UP', ...at(r.maxAttempts), failedAttempts };
      }
      return { status: 'STARTED', ...at(1), failedAttempts: [] };
    }),
  };
}

const iam = new IAMClient({ region: 'us-east-1' });
const iamMock = mockClient(iam);

beforeEach(() => {
  iamMock.reset();
  keySeq = 0;
});

const deps = (starter: RotationStarter) => ({ iam, starter, clock: fakeClock(), calls: new CallCounter() });

describe('applyActions: rotations', () => {
  it('starts one rotation per old key with the deterministic name and the audit reason', async () => {
    const starter = fakeStarter();
    const f = finding({ userName: 'alice', ageDays: 120 });

    const outcomes = await applyActions(deps(starter), [f], new Map(), POLICY, { dryRun: false });

    expect(starter.start).toHaveBeenCalledWith({
      executionName: executionNameFor('alice', f.accessKeyId as string),
      userName: 'alice',
      accessKeyId: f.accessKeyId,
      reason: `audit: OLD_KEY ${f.accessKeyId} 120 days`,
      maxAttempts: 3,
    });
    expect(rotationReason(f)).toBe(`audit: OLD_KEY ${f.accessKeyId} 120 days`);
    expect(outcomes).toEqual([
      expect.objectContaining({
        kind: 'ROTATION',
        status: 'STARTED',
        userName: 'alice',
        detail: 'rotation started',
      }),
    ]);
  });

  it('starts at most maxRotationsPerRun new ones, oldest keys first; already started ones do not count', async () => {
    const findings = [100, 300, 200, 500, 400, 150].map((ageDays, i) =>
      finding({ userName: `u${i}`, ageDays }),
    );
    const oldest = findings.find((f) => f.ageDays === 500) as Finding;
    const starter = fakeStarter([executionNameFor(oldest.userName, oldest.accessKeyId as string)]);

    const outcomes = await applyActions(
      deps(starter),
      findings,
      new Map(),
      { ...POLICY, maxRotationsPerRun: 3 },
      {
        dryRun: false,
      },
    );

    expect(outcomes.map((o) => [o.userName, o.status])).toEqual([
      ['u3', 'ALREADY_STARTED'],
      ['u4', 'STARTED'],
      ['u1', 'STARTED'],
      ['u2', 'STARTED'],
      ['u5', 'SKIPPED'],
      ['u0', 'SKIPPED'],
    ]);
    expect(outcomes.at(-1)?.detail).toBe(
      'limit of 3 rotation starts per run reached (new rotations and retries)',
    );
    expect(starter.start).toHaveBeenCalledTimes(4);
  });

  it('retries count against maxRotationsPerRun like new starts; given-up ones do not', async () => {
    // Prepare: by age, u0 given up, u1 retried, u2 running, u3 new, u4 new.
    const findings = [500, 400, 300, 200, 100].map((ageDays, i) => finding({ userName: `u${i}`, ageDays }));
    const name = (i: number) => {
      const f = findings[i] as Finding;
      return executionNameFor(f.userName, f.accessKeyId as string);
    };
    const starter = fakeStarter([name(2)], { retried: [name(1)], givenUp: [name(0)] });

    // Act
    const outcomes = await applyActions(
      deps(starter),
      findings,
      new Map(),
      { ...POLICY, maxRotationsPerRun: 2 },
      {
        dryRun: false,
      },
    );

    // Assess: one retry and one new start use the limit of 2.
    expect(outcomes.map((o) => [o.userName, o.status, o.attempt ?? null])).toEqual([
      ['u0', 'GIVEN_UP', 3],
      ['u1', 'RETRIED', 2],
      ['u2', 'ALREADY_STARTED', 1],
      ['u3', 'STARTED', 1],
      ['u4', 'SKIPPED', null],
    ]);
    expect(starter.start).toHaveBeenCalledTimes(4);
  });

  it('says what each attempt did: retried after which failure, given up after which endings', async () => {
    const given = finding({ userName: 'given', ageDays: 300 });
    const retry = finding({ userName: 'retry', ageDays: 200 });
    const givenName = executionNameFor('given', given.accessKeyId as string);
    const retryName = executionNameFor('retry', retry.accessKeyId as string);
    const starter = fakeStarter([], { retried: [retryName], givenUp: [givenName] });

    const outcomes = await applyActions(deps(starter), [given, retry], new Map(), POLICY, { dryRun: false });

    expect(outcomes).toEqual([
      {
        kind: 'ROTATION',
        status: 'GIVEN_UP',
        userName: 'given',
        accessKeyId: given.accessKeyId,
        executionName: `${givenName}-3`,
        executionArn: executionArnFor(STATE_MACHINE_ARN, `${givenName}-3`),
        attempt: 3,
        failedAttempts: [
          failedAttempt(givenName, 1, 'FAILED'),
          failedAttempt(givenName, 2, 'ABORTED'),
          failedAttempt(givenName, 3, 'TIMED_OUT'),
        ],
        detail: 'still failing after 3 attempts (FAILED, ABORTED, TIMED_OUT): not retried again',
      },
      {
        kind: 'ROTATION',
        status: 'RETRIED',
        userName: 'retry',
        accessKeyId: retry.accessKeyId,
        executionName: `${retryName}-2`,
        executionArn: executionArnFor(STATE_MACHINE_ARN, `${retryName}-2`),
        attempt: 2,
        failedAttempts: [failedAttempt(retryName, 1, 'FAILED')],
        detail: `rotation retried: attempt 2 of 3, after ${retryName} FAILED (States.TaskFailed)`,
      },
    ]);
  });

  it('never rotates protected, out-of-scope, exempt users or root; does rotate after an expired exemption', async () => {
    const starter = fakeStarter();
    const exemption = { reason: 'vendor', until: '2030-01-01T23:59:59.999Z', expired: false };
    const findings = [
      finding({ userName: 'Break-Glass' }),
      finding({ userName: 'outside' }),
      finding({ userName: 'untagged' }),
      finding({ userName: 'vendor', exemption }),
      finding({
        userName: 'lapsed',
        exemption: { ...exemption, until: '2026-01-01T23:59:59.999Z', expired: true },
      }),
      finding({ type: 'ROOT_ACCESS_KEY', userName: '<root_account>', accessKeyId: null }),
    ];
    const users = usersOf(
      userDetail('Break-Glass', { 'rekey:managed': '' }),
      userDetail('outside', { 'rekey:managed': '' }, '/legacy/'),
      userDetail('untagged', {}, '/svc/'),
      userDetail('vendor', { 'rekey:managed': '' }, '/svc/'),
      userDetail('lapsed', { 'rekey:managed': '' }, '/svc/'),
    );
    const policy = {
      ...POLICY,
      protectedUsers: ['break-glass'],
      userPathPrefix: '/svc/',
      optInTag: 'rekey:managed',
    };

    const outcomes = await applyActions(deps(starter), findings, users, policy, { dryRun: false });

    expect(Object.fromEntries(outcomes.map((o) => [o.userName, `${o.status}: ${o.detail}`]))).toEqual({
      'Break-Glass': 'SKIPPED: protected user',
      outside: 'SKIPPED: out of scope: path /legacy/ is outside /svc/',
      untagged: 'SKIPPED: out of scope: no opt-in tag rekey:managed',
      vendor: 'SKIPPED: exempt until 2030-01-01: vendor',
      lapsed: 'STARTED: rotation started',
    });
    expect(starter.start).toHaveBeenCalledTimes(1);
  });

  it('does not rotate a user with two active keys, nor when autoRotate is off', async () => {
    const starter = fakeStarter();
    const old = finding({ userName: 'twin' });
    const two = finding({ type: 'TWO_ACTIVE_KEYS', userName: 'twin', accessKeyId: old.accessKeyId });
    const outcomes = await applyActions(deps(starter), [old, two], new Map(), POLICY, { dryRun: false });
    expect(outcomes).toEqual([
      expect.objectContaining({ status: 'SKIPPED', detail: expect.stringMatching(/^two active keys/) }),
    ]);

    const off = await applyActions(
      deps(starter),
      [finding({ userName: 'x' })],
      new Map(),
      { ...POLICY, autoRotate: false },
      {
        dryRun: false,
      },
    );
    expect(off).toEqual([
      expect.objectContaining({ status: 'SKIPPED', detail: 'automatic rotation is off' }),
    ]);
    expect(starter.start).not.toHaveBeenCalled();
  });

  it('records a failed start and carries on', async () => {
    const starter = fakeStarter();
    starter.start.mockRejectedValueOnce(awsError('AccessDeniedException', 'not authorized'));
    const outcomes = await applyActions(
      deps(starter),
      [finding({ userName: 'a', ageDays: 200 }), finding({ userName: 'b' })],
      new Map(),
      POLICY,
      { dryRun: false },
    );
    expect(outcomes.map((o) => [o.userName, o.status, o.detail])).toEqual([
      ['a', 'FAILED', 'could not start the rotation: AccessDeniedException: not authorized'],
      ['b', 'STARTED', 'rotation started'],
    ]);
  });

  it('a dry run starts nothing and says what it would start', async () => {
    const starter = fakeStarter();
    const outcomes = await applyActions(deps(starter), [finding({ userName: 'a' })], new Map(), POLICY, {
      dryRun: true,
    });
    expect(outcomes).toEqual([expect.objectContaining({ status: 'WOULD_START' })]);
    expect(starter.start).not.toHaveBeenCalled();
  });
});

describe('applyActions: the opt-in deactivation of unused keys', () => {
  const unused = (userName: string, idleDays: number, over: Partial<Finding> = {}) =>
    finding({ type: 'UNUSED_KEY', userName, idleDays, lastUsedDate: ago(idleDays).toISOString(), ...over });
  const ON = { ...POLICY, deactivateUnused: true, deactivateUnusedAfterDays: 90 };

  beforeEach(() => {
    iamMock.on(GetAccessKeyLastUsedCommand).callsFake((input: { AccessKeyId: string }) => ({
      UserName: 'x',
      AccessKeyLastUsed: {
        LastUsedDate: ago(Number(input.AccessKeyId.slice(-3))),
        ServiceName: 's3',
        Region: 'us-east-1',
      },
    }));
    iamMock.on(UpdateAccessKeyCommand).resolves({});
  });

  it('is off by default: unused keys are only reported', async () => {
    const outcomes = await applyActions(deps(fakeStarter()), [unused('a', 400)], new Map(), POLICY, {
      dryRun: false,
    });
    expect(outcomes).toEqual([]);
    expect(iamMock).not.toHaveReceivedCommand(UpdateAccessKeyCommand);
  });

  it('deactivates keys idle for longer than the limit (not exactly the limit) after re-checking last use', async () => {
    const longIdle = unused('idle', 91, { accessKeyId: 'AKIATEST000000000091' });
    const atLimit = unused('limit', 90, { accessKeyId: 'AKIATEST000000000090' });
    const d = deps(fakeStarter());

    const outcomes = await applyActions(d, [longIdle, atLimit], new Map(), ON, { dryRun: false });

    expect(outcomes).toEqual([
      expect.objectContaining({ kind: 'DEACTIVATION', status: 'DEACTIVATED', userName: 'idle' }),
    ]);
    expect(iamMock).toHaveReceivedCommandWith(GetAccessKeyLastUsedCommand, {
      AccessKeyId: 'AKIATEST000000000091',
    });
    expect(iamMock).toHaveReceivedCommandTimes(UpdateAccessKeyCommand, 1);
    expect(iamMock).toHaveReceivedCommandWith(UpdateAccessKeyCommand, {
      UserName: 'idle',
      AccessKeyId: 'AKIATEST000000000091',
      Status: 'Inactive',
    });
    expect(d.calls.toJSON()).toEqual({ GetAccessKeyLastUsed: 1, UpdateAccessKey: 1 });
  });

  it('never touches exempt, protected or out-of-scope users, nor the root key', async () => {
    const exemption = { reason: 'vendor', until: null, expired: false };
    const findings = [
      unused('vendor', 300, { exemption, accessKeyId: 'AKIATEST000000000300' }),
      unused('break-glass', 300, { accessKeyId: 'AKIATEST000000000300' }),
      unused('legacy', 300, { accessKeyId: 'AKIATEST000000000300' }),
      finding({ type: 'ROOT_ACCESS_KEY', userName: '<root_account>', accessKeyId: null, idleDays: 900 }),
    ];
    const users = usersOf(userDetail('legacy', {}, '/legacy/'), userDetail('vendor', {}, '/svc/'));
    const policy = { ...ON, protectedUsers: ['break-glass'], userPathPrefix: '/svc/' };

    const outcomes = await applyActions(deps(fakeStarter()), findings, users, policy, { dryRun: false });

    // Longest idle first, then by name.
    expect(outcomes.map((o) => [o.userName, o.status, o.detail])).toEqual([
      ['break-glass', 'SKIPPED', 'protected user'],
      ['legacy', 'SKIPPED', 'out of scope: path /legacy/ is outside /svc/'],
      ['vendor', 'SKIPPED', 'exempt: vendor'],
    ]);
    expect(iamMock).not.toHaveReceivedCommand(UpdateAccessKeyCommand);
    expect(iamMock).not.toHaveReceivedCommand(GetAccessKeyLastUsedCommand);
  });

  it('leaves a key used since the report alone', async () => {
    const recentlyUsed = unused('busy', 200, { accessKeyId: 'AKIATEST000000000002' });
    const outcomes = await applyActions(deps(fakeStarter()), [recentlyUsed], new Map(), ON, {
      dryRun: false,
    });
    expect(outcomes).toEqual([
      expect.objectContaining({ status: 'SKIPPED', detail: expect.stringMatching(/^used since the report/) }),
    ]);
    expect(iamMock).not.toHaveReceivedCommand(UpdateAccessKeyCommand);
  });

  it('a deactivated old key is not also rotated; at most maxRotationsPerRun deactivations', async () => {
    const starter = fakeStarter();
    const a = unused('a', 300, { accessKeyId: 'AKIATEST000000000300' });
    const b = unused('b', 250, { accessKeyId: 'AKIATEST000000000250' });
    const oldA = { ...a, type: 'OLD_KEY' as const, ageDays: 300 };

    const outcomes = await applyActions(
      deps(starter),
      [oldA, a, b],
      new Map(),
      { ...ON, maxRotationsPerRun: 1 },
      {
        dryRun: false,
      },
    );

    expect(outcomes.map((o) => [o.kind, o.userName, o.status, o.detail])).toEqual([
      ['DEACTIVATION', 'a', 'DEACTIVATED', expect.stringMatching(/^deactivated: unused for 300 days/)],
      ['DEACTIVATION', 'b', 'SKIPPED', 'limit of 1 deactivations per run reached'],
      ['ROTATION', 'a', 'SKIPPED', 'deactivated as unused instead of rotated'],
    ]);
    expect(starter.start).not.toHaveBeenCalled();
  });

  it('a dry run deactivates nothing', async () => {
    const outcomes = await applyActions(
      deps(fakeStarter()),
      [unused('a', 300, { accessKeyId: 'AKIATEST000000000300' })],
      new Map(),
      ON,
      { dryRun: true },
    );
    expect(outcomes).toEqual([expect.objectContaining({ status: 'WOULD_DEACTIVATE' })]);
    expect(iamMock).not.toHaveReceivedCommand(UpdateAccessKeyCommand);
  });
});

describe('actions on service credentials', () => {
  const SERVICE_POLICY: ActionPolicy = {
    autoRotate: true,
    maxRotationsPerRun: 25,
    maxRotationAttempts: 3,
    deactivateUnused: true,
    deactivateUnusedAfterDays: 90,
    protectedUsers: ['break-glass'],
    userPathPrefix: '/',
  };

  function serviceActionDeps() {
    const requests: Parameters<RotationStarter['start']>[0][] = [];
    const starter: RotationStarter = {
      start: vi.fn(async (request) => {
        requests.push(request);
        return firstAttemptStarted(request, `arn:x:${request.executionName}`);
      }),
    };
    return { requests, deps: { iam, starter, clock: fakeClock(), calls: new CallCounter() } };
  }

  it('rotates an OLD_KEY credential: serviceName in the request, the credential id in the name', async () => {
    const { requests, deps } = serviceActionDeps();
    const outcomes = await applyActions(
      deps,
      [
        serviceFinding({
          type: 'OLD_KEY',
          userName: 'alice',
          serviceSpecificCredentialId: 'ACCAALICE0000000000001',
          ageDays: 120,
        }),
      ],
      usersOf(userDetail('alice')),
      SERVICE_POLICY,
      { dryRun: false },
    );
    expect(requests).toEqual([
      {
        executionName: 'rekey-alice-ACCAALICE0000000000001',
        userName: 'alice',
        accessKeyId: null,
        serviceName: CASSANDRA,
        serviceSpecificCredentialId: 'ACCAALICE0000000000001',
        reason: 'audit: OLD_KEY cassandra.amazonaws.com ACCAALICE0000000000001 120 days',
        maxAttempts: 3,
      },
    ]);
    expect(outcomes).toEqual([
      {
        kind: 'ROTATION',
        status: 'STARTED',
        userName: 'alice',
        accessKeyId: null,
        serviceName: CASSANDRA,
        serviceSpecificCredentialId: 'ACCAALICE0000000000001',
        executionName: 'rekey-alice-ACCAALICE0000000000001',
        executionArn: 'arn:x:rekey-alice-ACCAALICE0000000000001',
        attempt: 1,
        failedAttempts: [],
        detail: 'rotation started',
      },
    ]);
  });

  it('execution names: the access key names are unchanged, a credential id is kept whole in 80 characters', () => {
    expect(executionNameFor('alice', 'AKIAIOSFODNN7EXAMPLE')).toBe('rekey-alice-AKIAIOSFODNN7EXAMPLE');
    const long = executionNameFor(`${'x'.repeat(60)}.@+=`, 'ACCAEXAMPLE123EXAMPLE');
    expect(long.length).toBeLessThanOrEqual(80);
    expect(long).toMatch(EXECUTION_NAME);
    expect(long.endsWith('-ACCAEXAMPLE123EXAMPLE')).toBe(true);
  });

  it('never deactivates one, even if an UNUSED_KEY finding named it', async () => {
    const { deps } = serviceActionDeps();
    const outcomes = await applyActions(
      deps,
      [
        serviceFinding({
          type: 'UNUSED_KEY',
          userName: 'alice',
          serviceSpecificCredentialId: 'ACCAALICE0000000000001',
          idleDays: 400,
        }),
      ],
      usersOf(userDetail('alice')),
      SERVICE_POLICY,
      { dryRun: false },
    );
    expect(outcomes).toEqual([]);
    expect(iamMock).not.toHaveReceivedAnyCommand();
    expect(deps.calls.total).toBe(0);
  });

  it('refuses protected, out-of-scope, not opted-in and exempt users, as for access keys', async () => {
    const { requests, deps } = serviceActionDeps();
    const old = (userName: string, id: string, over: Partial<Finding> = {}) =>
      serviceFinding({ type: 'OLD_KEY', userName, serviceSpecificCredentialId: id, ...over });
    const outcomes = await applyActions(
      deps,
      [
        old('break-glass', 'ACCABREAK00000000001'),
        old('outsider', 'ACCAOUTSIDER00000001'),
        old('untagged', 'ACCAUNTAGGED00000001'),
        old('vendor', 'ACCAVENDOR0000000001', {
          exemption: { reason: 'pinned', until: null, expired: false },
        }),
      ],
      usersOf(
        userDetail('break-glass', { 'rekey:opt-in': 'yes' }, '/svc/'),
        userDetail('outsider', { 'rekey:opt-in': 'yes' }, '/other/'),
        userDetail('untagged', {}, '/svc/'),
        userDetail('vendor', { 'rekey:opt-in': 'yes' }, '/svc/'),
      ),
      { ...SERVICE_POLICY, userPathPrefix: '/svc/', optInTag: 'rekey:opt-in' },
      { dryRun: false },
    );
    expect(requests).toEqual([]);
    expect(outcomes.map((o) => [o.userName, o.status, o.serviceSpecificCredentialId, o.detail])).toEqual([
      ['break-glass', 'SKIPPED', 'ACCABREAK00000000001', 'protected user'],
      ['outsider', 'SKIPPED', 'ACCAOUTSIDER00000001', 'out of scope: path /other/ is outside /svc/'],
      ['untagged', 'SKIPPED', 'ACCAUNTAGGED00000001', 'out of scope: no opt-in tag rekey:opt-in'],
      ['vendor', 'SKIPPED', 'ACCAVENDOR0000000001', 'exempt: pinned'],
    ]);
  });

  it('two active credentials hold back that service only; two active keys hold back the keys only', async () => {
    const { requests, deps } = serviceActionDeps();
    const outcomes = await applyActions(
      deps,
      [
        // bob: two active Keyspaces credentials, and an old access key.
        serviceFinding({
          type: 'OLD_KEY',
          userName: 'bob',
          serviceSpecificCredentialId: 'ACCABOBK000000000001',
        }),
        serviceFinding({
          type: 'TWO_ACTIVE_KEYS',
          userName: 'bob',
          serviceSpecificCredentialId: 'ACCABOBK000000000001',
          other: {
            keySlot: 2,
            accessKeyId: null,
            ageDays: 2,
            serviceSpecificCredentialId: 'ACCABOBK000000000002',
          },
        }),
        baseFinding({ type: 'OLD_KEY', userName: 'bob', accessKeyId: 'AKIABOB0000000000001' }),
        // dave: two active access keys, and an old CodeCommit credential.
        baseFinding({ type: 'OLD_KEY', userName: 'dave', accessKeyId: 'AKIADAVE000000000001' }),
        baseFinding({
          type: 'TWO_ACTIVE_KEYS',
          userName: 'dave',
          accessKeyId: 'AKIADAVE000000000001',
          other: { keySlot: 2, accessKeyId: 'AKIADAVE000000000002', ageDays: 2 },
        }),
        serviceFinding({
          type: 'OLD_KEY',
          userName: 'dave',
          serviceName: CODECOMMIT,
          serviceSpecificCredentialId: 'ACCADAVEG00000000001',
        }),
      ],
      usersOf(userDetail('bob'), userDetail('dave')),
      SERVICE_POLICY,
      { dryRun: false },
    );
    expect(requests.map((r) => r.executionName).sort()).toEqual([
      'rekey-bob-AKIABOB0000000000001',
      'rekey-dave-ACCADAVEG00000000001',
    ]);
    expect(outcomes.filter((o) => o.status === 'SKIPPED').map((o) => o.detail)).toEqual([
      'two active cassandra.amazonaws.com credentials: rekey will not pick one; deactivate or delete one by hand',
      'two active keys: rekey will not pick one; deactivate or delete one by hand',
    ]);
  });

  it('maxRotationsPerRun counts service credentials and keys together, oldest first', async () => {
    const { requests, deps } = serviceActionDeps();
    const outcomes = await applyActions(
      deps,
      [
        baseFinding({ type: 'OLD_KEY', userName: 'a', accessKeyId: 'AKIAA000000000000001', ageDays: 100 }),
        serviceFinding({
          type: 'OLD_KEY',
          userName: 'b',
          serviceSpecificCredentialId: 'ACCAB000000000000001',
          ageDays: 300,
        }),
        serviceFinding({
          type: 'OLD_KEY',
          userName: 'c',
          serviceSpecificCredentialId: 'ACCAC000000000000001',
          ageDays: 200,
        }),
      ],
      usersOf(userDetail('a'), userDetail('b'), userDetail('c')),
      { ...SERVICE_POLICY, maxRotationsPerRun: 2 },
      { dryRun: false },
    );
    expect(requests.map((r) => r.userName)).toEqual(['b', 'c']);
    expect(outcomes.find((o) => o.userName === 'a')).toMatchObject({
      status: 'SKIPPED',
      detail: 'limit of 2 rotation starts per run reached (new rotations and retries)',
    });
  });
});
