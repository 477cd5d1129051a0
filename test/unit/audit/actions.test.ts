import { GetAccessKeyLastUsedCommand, IAMClient, UpdateAccessKeyCommand } from '@aws-sdk/client-iam';
import { DescribeExecutionCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type ActionPolicy,
  applyActions,
  EXECUTION_NAME,
  executionArnFor,
  executionNameFor,
  type RotationStarter,
  rotationReason,
  SfnRotationStarter,
} from '../../../lambdas/shared/domain/audit/actions.ts';
import { CallCounter } from '../../../lambdas/shared/domain/audit/calls.ts';
import type { Finding } from '../../../lambdas/shared/domain/audit/findings.ts';
import { rotationInputProblems } from '../../../lambdas/shared/schemas.ts';
import { awsError, fakeClock } from '../lambdas/helpers.ts';
import { finding as baseFinding } from './fixtures.ts';
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
  const request = {
    executionName: 'rekey-alice-AKIAIOSFODNN7EXAMPLE',
    userName: 'alice',
    accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
    reason: 'audit: OLD_KEY AKIAIOSFODNN7EXAMPLE 120 days',
  };
  const arn = `arn:aws:states:us-east-1:${ACCOUNT}:execution:rekey-rotation:rekey-alice-AKIAIOSFODNN7EXAMPLE`;

  beforeEach(() => sfnMock.reset());

  it('derives the execution ARN from the state machine ARN', () => {
    expect(executionArnFor(STATE_MACHINE_ARN, request.executionName)).toBe(arn);
  });

  it('starts a new execution with the rotation input', async () => {
    sfnMock.on(DescribeExecutionCommand).rejects(awsError('ExecutionDoesNotExist'));
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: arn, startDate: new Date() });

    await expect(starter.start(request)).resolves.toEqual({ status: 'STARTED', executionArn: arn });

    expect(sfnMock).toHaveReceivedCommandWith(DescribeExecutionCommand, { executionArn: arn });
    expect(sfnMock).toHaveReceivedCommandWith(StartExecutionCommand, {
      stateMachineArn: STATE_MACHINE_ARN,
      name: request.executionName,
      input: '{"userName":"alice","reason":"audit: OLD_KEY AKIAIOSFODNN7EXAMPLE 120 days"}',
    });
  });

  it('a service-specific credential is started with serviceName, an input the rotation itself accepts', async () => {
    sfnMock.on(DescribeExecutionCommand).rejects(awsError('ExecutionDoesNotExist'));
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: arn, startDate: new Date() });

    await starter.start({ ...request, serviceName: 'cassandra.amazonaws.com' });

    const input = sfnMock.commandCalls(StartExecutionCommand)[0]?.args[0].input.input ?? '';
    expect(JSON.parse(input)).toEqual({
      userName: 'alice',
      serviceName: 'cassandra.amazonaws.com',
      reason: 'audit: OLD_KEY AKIAIOSFODNN7EXAMPLE 120 days',
    });
    // The handshake between the audit and the state machine: the plan step parses exactly this.
    expect(rotationInputProblems(JSON.parse(input))).toEqual([]);
    expect(rotationInputProblems({ ...JSON.parse(input), serviceName: 'cassandra' })).not.toEqual([]);
  });

  it('an execution of that name that exists (running or finished) is already started', async () => {
    sfnMock.on(DescribeExecutionCommand).resolves({ executionArn: arn, status: 'RUNNING' });

    await expect(starter.start(request)).resolves.toEqual({ status: 'ALREADY_STARTED', executionArn: arn });

    expect(sfnMock).not.toHaveReceivedCommand(StartExecutionCommand);
  });

  it('ExecutionAlreadyExists (a race with another audit) is already started, not an error', async () => {
    sfnMock.on(DescribeExecutionCommand).rejects(awsError('ExecutionDoesNotExist'));
    sfnMock.on(StartExecutionCommand).rejects(awsError('ExecutionAlreadyExists'));

    await expect(starter.start(request)).resolves.toEqual({ status: 'ALREADY_STARTED', executionArn: arn });
  });

  it('rethrows other errors', async () => {
    sfnMock.on(DescribeExecutionCommand).rejects(awsError('AccessDeniedException'));
    await expect(starter.start(request)).rejects.toThrow(/AccessDeniedException/);
    sfnMock.on(DescribeExecutionCommand).rejects(awsError('ExecutionDoesNotExist'));
    sfnMock.on(StartExecutionCommand).rejects(awsError('StateMachineDoesNotExist'));
    await expect(starter.start(request)).rejects.toThrow(/StateMachineDoesNotExist/);
  });
});

const POLICY: ActionPolicy = {
  autoRotate: true,
  maxRotationsPerRun: 25,
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

function fakeStarter(already: string[] = []): RotationStarter & { start: ReturnType<typeof vi.fn> } {
  return {
    start: vi.fn(async (r: { executionName: string }) => ({
      status: already.includes(r.executionName) ? ('ALREADY_STARTED' as const) : ('STARTED' as const),
      executionArn: executionArnFor(STATE_MACHINE_ARN, r.executionName),
    })),
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
    expect(outcomes.at(-1)?.detail).toBe('limit of 3 new rotations per run reached');
    expect(starter.start).toHaveBeenCalledTimes(4);
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
