/**
 * Rotation across the accounts of an organization, end to end: the synthesized state machine run
 * by the local runner with instant waits, every Task bound to its real handler and signing as its
 * Lambda's deployed role, against moto with request signing on. A request naming a member account
 * (`accountId`) is checked by the plan in the hub (Organizations: in the organization, active, in
 * scope) before any call into that account; then every step acts there as its member role
 * (lambdas/shared/member-account.ts). Each test compares the full state of every account (each
 * user's keys with their status, each secret's versions with their stages and key) before and
 * after, and reads the calls the handlers made from the deployed roles' `authorize` (recordCalls
 * in test/workflow/harness.ts): what was never called is proven from that log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AccountState,
  callsInto,
  expectCleanRun,
  outcomeStatus,
  startWorld,
  type World,
  type WorldAccount,
} from './harness.ts';
import {
  accountsCalled,
  causeOf,
  expectAccountEverywhere,
  failures,
  locksOf,
  OUTSIDE,
  recordedRun,
  rotatedState,
  statesOf,
} from './organization-rotation-support.ts';

describe('rotation across accounts (secrets: member)', () => {
  let world: World;
  let hub: WorldAccount;
  /** In the OU `workloads`. */
  let a: WorldAccount;
  let b: WorldAccount;
  /** Lacks the create-second-key member role. */
  let c: WorldAccount;
  /** Excluded by its id. */
  let excluded: WorldAccount;
  /** Below the excluded OU `quarantine` (in `quarantine/deep`). */
  let quarantined: WorldAccount;
  /** Suspended (CloseAccount) once seeded. */
  let suspended: WorldAccount;
  /** Lacks the plan member role. */
  let noPlanRole: WorldAccount;
  let prefix: string;

  let seededIn = 0;
  beforeAll(async () => {
    const started = Date.now();
    world = await startWorld({
      organization: {
        organizationalUnits: ['workloads', 'quarantine', 'quarantine/deep'],
        members: [
          { name: 'workload-a', organizationalUnit: 'workloads' },
          { name: 'workload-b' },
          { name: 'workload-c' },
          { name: 'excluded' },
          { name: 'quarantined', organizationalUnit: 'quarantine/deep' },
          { name: 'suspended' },
          { name: 'no-plan-role' },
        ],
        withoutMemberRoles: { 2: ['create-second-key'], 6: ['plan'] },
        config: (seeded) => ({
          exclude: {
            accounts: [seeded.members[3]?.accountId],
            organizationalUnits: [seeded.organizationalUnits.quarantine],
          },
        }),
      },
      quiet: true,
    });
    [hub, a, b, c, excluded, quarantined, suspended, noPlanRole] = world.accounts as [
      WorldAccount,
      WorldAccount,
      WorldAccount,
      WorldAccount,
      WorldAccount,
      WorldAccount,
      WorldAccount,
      WorldAccount,
    ];
    prefix = world.env.REKEY_SECRET_PREFIX ?? '';
    // alice in every account, each with one key of her own.
    for (const account of world.accounts) await account.createUser('alice');
    await world.organization?.suspend(suspended.accountId);
    seededIn = Date.now() - started;
  }, 300_000);

  afterAll(async () => {
    await world?.stop();
    console.info(`organization-rotation (secrets: member): the world of 8 accounts seeded in ${seededIn} ms`);
  });

  it("rotates A's alice in A: a new key stored in A's secret, the old one deleted; every other account unchanged", async () => {
    const before = await statesOf(world.accounts);
    const [oldKey] = before[a.accountId]?.users.alice ?? [];
    if (!oldKey) throw new Error('no key');
    await world.drainNotifications();

    const { result, calls } = await recordedRun(world, { userName: 'alice', accountId: a.accountId });

    expect(result.status, failures(result)).toBe('SUCCEEDED');
    expect(outcomeStatus(result)).toBe('ROTATED');
    const after = await statesOf(world.accounts);
    const newKeyId = after[a.accountId]?.users.alice?.[0]?.id ?? '';
    expect(newKeyId).not.toBe(oldKey.id);
    expect(after[a.accountId]).toEqual(
      rotatedState(before[a.accountId] as AccountState, newKeyId, `${prefix}alice`),
    );
    // Every other account, the hub among them, exactly as before: keys, statuses, secrets, versions.
    for (const account of world.accounts.filter((x) => x !== a)) {
      expect(after[account.accountId], account.name).toEqual(before[account.accountId]);
    }
    // The stored secret is A's alice's working key; the old one is gone.
    const stored = await a.storedCredential('alice');
    expect(stored).toMatchObject({ AccessKeyId: newKeyId, UserName: 'alice' });
    expect(await world.whoAmI({ accessKeyId: newKeyId, secretAccessKey: stored.SecretAccessKey })).toBe(
      `arn:aws:iam::${a.accountId}:user/alice`,
    );
    // Every IAM and Secrets Manager call acted in A, as a member role assumed in A only.
    const memberSide = calls.filter((c) => /^(iam|secretsmanager|kms):/.test(c.action));
    expect(memberSide.length).toBeGreaterThan(5);
    for (const call of memberSide)
      expect(call, `${call.step} ${call.action}`).toMatchObject({ account: a.accountId });
    expect(accountsCalled(calls, hub.accountId)).toEqual([a.accountId]);
    expect(calls.every((c) => c.allowed)).toBe(true);
    // The lock of A's alice is released, and it is not the hub's alice's lock.
    const locks = await locksOf(world);
    const mine = locks.filter((l) => l.subject.includes(a.accountId));
    expect(mine).toHaveLength(1);
    expect(mine[0]?.subject).toContain('alice');
    expect(mine[0]?.owner).toBeUndefined();
    expect(locks.map((l) => l.subject)).not.toContain('alice');

    const notifications = await world.drainNotifications({ attributes: true });
    expectAccountEverywhere(notifications, a.accountId);
    const completed = notifications.events.at(-1);
    expect(completed?.['detail-type']).toBe('Access Key Rotation Completed');
    expect(completed?.detail).toMatchObject({
      accountId: a.accountId,
      userName: 'alice',
      oldAccessKeyId: oldKey.id,
      newAccessKeyId: newKeyId,
    });
    await expectCleanRun(world, result, notifications);
  });

  it("rotates the hub's alice when the request names no account, as a single-account deployment does", async () => {
    const before = await statesOf(world.accounts);
    const [oldKey] = before[hub.accountId]?.users.alice ?? [];
    if (!oldKey) throw new Error('no key');
    await world.drainNotifications();

    const { result, calls } = await recordedRun(world, { userName: 'alice' });

    expect(result.status, failures(result)).toBe('SUCCEEDED');
    expect(outcomeStatus(result)).toBe('ROTATED');
    const after = await statesOf(world.accounts);
    const newKeyId = after[hub.accountId]?.users.alice?.[0]?.id ?? '';
    expect(newKeyId).not.toBe(oldKey.id);
    expect(after[hub.accountId]).toEqual(
      rotatedState(before[hub.accountId] as AccountState, newKeyId, `${prefix}alice`),
    );
    for (const account of world.accounts.filter((x) => x !== hub)) {
      expect(after[account.accountId], account.name).toEqual(before[account.accountId]);
    }
    // The hub path: no member account, no AssumeRole, no Organizations call.
    expect(calls.length).toBeGreaterThan(5);
    expect(calls.filter((c) => c.account !== undefined)).toEqual([]);
    expect(calls.filter((c) => /^(sts:AssumeRole|organizations:)/.test(c.action))).toEqual([]);
    // The hub's lock keeps today's name: the user name alone.
    expect(await locksOf(world)).toContainEqual({ subject: 'alice', owner: undefined });
    expect((result.output as { accountId?: string }).accountId).toBe(hub.accountId);
    const notifications = await world.drainNotifications({ attributes: true });
    expectAccountEverywhere(notifications, hub.accountId);
    await expectCleanRun(world, result, notifications);
  });

  it("rotates the same name in two accounts at once: one lock per account's user, two rotations", async () => {
    world.clock.advance(3600);
    const before = await statesOf(world.accounts);

    const [inB, inHub] = await Promise.all([
      recordedRun(world, { userName: 'alice', accountId: b.accountId }),
      recordedRun(world, { userName: 'alice', accountId: hub.accountId }),
    ]);

    expect([outcomeStatus(inB.result), outcomeStatus(inHub.result)]).toEqual(['ROTATED', 'ROTATED']);
    const after = await statesOf(world.accounts);
    for (const account of [b, hub]) {
      const newKeyId = after[account.accountId]?.users.alice?.[0]?.id ?? '';
      expect(newKeyId).not.toBe(before[account.accountId]?.users.alice?.[0]?.id);
      expect((await account.storedCredential('alice')).AccessKeyId).toBe(newKeyId);
      expect(after[account.accountId]?.users.alice).toEqual([{ id: newKeyId, status: 'Active' }]);
    }
    for (const account of world.accounts.filter((x) => x !== b && x !== hub)) {
      expect(after[account.accountId], account.name).toEqual(before[account.accountId]);
    }
    // Naming the hub's own account is the hub path.
    expect(accountsCalled(inHub.calls, hub.accountId)).toEqual([]);
    expect(accountsCalled(inB.calls, hub.accountId)).toEqual([b.accountId]);
    expect((await locksOf(world)).filter((l) => l.owner !== undefined)).toEqual([]);
    await world.drainNotifications();
  });

  describe('a member role missing in the account', () => {
    it('fails with MemberRoleUnavailable naming the account and the create-second-key role; nothing changed, no lock held', async () => {
      const before = await statesOf(world.accounts);

      const { result, calls } = await recordedRun(world, { userName: 'alice', accountId: c.accountId });

      expect(result.status).toBe('FAILED');
      expect(result.error, failures(result)).toBe('RotationFailed');
      // The create step failed (once: MemberRoleUnavailable is not retried), naming the account and the role.
      const failed = result.tasks.filter((t) => t.error && t.step !== 'cleanup');
      expect(failed.map((t) => [t.step, t.error?.name])).toEqual([
        ['create-second-key', 'MemberRoleUnavailable'],
      ]);
      expect(failed[0]?.error?.message).toContain(
        `cannot act in account ${c.accountId}: its member role arn:aws:iam::${c.accountId}:role/rekey-member-create-second-key is missing`,
      );
      // No key created anywhere, no secret written: every account as before.
      expect(await statesOf(world.accounts)).toEqual(before);
      // The plan did act in C (its role is there) and took the lock; the cleanup released it.
      expect(calls.some((x) => x.step === 'plan' && x.account === c.accountId)).toBe(true);
      // The create step asked for its member role in C (after its first call there was authorized:
      // credentials are resolved after the check), and got none.
      expect(calls).toContainEqual(
        expect.objectContaining({
          step: 'create-second-key',
          action: 'sts:AssumeRole',
          input: expect.objectContaining({
            RoleArn: `arn:aws:iam::${c.accountId}:role/rekey-member-create-second-key`,
          }),
        }),
      );
      expect(accountsCalled(calls, hub.accountId)).toEqual([c.accountId]);
      expect((await locksOf(world)).filter((l) => l.owner !== undefined)).toEqual([]);
      const notifications = await world.drainNotifications({ attributes: true });
      for (const event of notifications.events) expect(event.detail.accountId).toBe(c.accountId);
      await expectCleanRun(world, result, notifications);
    });

    it("fails with MemberRoleUnavailable naming the plan role, before the lock is taken, when the plan's role is missing", async () => {
      const before = await statesOf(world.accounts);
      const locksBefore = await locksOf(world);

      const { result, calls } = await recordedRun(world, {
        userName: 'alice',
        accountId: noPlanRole.accountId,
      });

      expect(result.status).toBe('FAILED');
      expect(result.error, failures(result)).toBe('RotationFailed');
      const failed = result.tasks.filter((t) => t.error && t.step !== 'cleanup');
      expect(failed.map((t) => [t.step, t.error?.name])).toEqual([['plan', 'MemberRoleUnavailable']]);
      expect(failed[0]?.error?.message).toContain(
        `cannot act in account ${noPlanRole.accountId}: its member role arn:aws:iam::${noPlanRole.accountId}:role/rekey-member-plan is missing`,
      );
      expect(await statesOf(world.accounts)).toEqual(before);
      expect(await locksOf(world)).toEqual(locksBefore);
      expect(calls.filter((x) => x.step !== 'plan' && x.step !== 'cleanup' && x.step !== 'notify')).toEqual(
        [],
      );
      await expectCleanRun(world, result, await world.drainNotifications());
    });
  });

  describe('an account rekey must not act in: refused by the plan before any call into it', () => {
    const cases: Array<[string, () => string, RegExp]> = [
      ['excluded by its id', () => excluded.accountId, /is excluded/],
      [
        'below an excluded OU (two levels up)',
        () => quarantined.accountId,
        /excluded organizational unit ou-/,
      ],
      ['suspended', () => suspended.accountId, /suspended/i],
      ['outside the organization', () => OUTSIDE, /not .*organization/i],
    ];
    it.each(cases)('refuses an account %s with AccountRefused', async (_, accountOf, why) => {
      const accountId = accountOf();
      const before = await statesOf(world.accounts);
      const locksBefore = await locksOf(world);

      const { result, calls } = await recordedRun(world, { userName: 'alice', accountId });

      expect(result.status).toBe('FAILED');
      // A rejection: the Fail state's error, the plan's error as its cause, not retried.
      expect(result.error, failures(result)).toBe('RotationRequestRejected');
      expect(causeOf(result).errorType).toBe('AccountRefused');
      const message = causeOf(result).errorMessage ?? '';
      expect(message).toContain(accountId);
      expect(message).toMatch(why);
      // The plan asked Organizations about the account (from the hub)...
      expect(calls).toContainEqual(
        expect.objectContaining({
          step: 'plan',
          account: undefined,
          action: 'organizations:DescribeAccount',
          input: expect.objectContaining({ AccountId: accountId }),
        }),
      );
      // ...and made no call into it, assumed no role there, made no IAM or Secrets Manager call at all.
      expect(callsInto(calls, accountId)).toEqual([]);
      expect(calls.filter((x) => /^(iam|secretsmanager|kms|sts):/.test(x.action))).toEqual([]);
      // Refused before anything: only the plan ran (then the cleanup the status change rule invokes).
      expect(result.tasks.filter((t) => t.step !== 'cleanup').map((t) => t.step)).toEqual(['plan']);
      expect(await statesOf(world.accounts)).toEqual(before);
      expect(await locksOf(world)).toEqual(locksBefore);
      await expectCleanRun(world, result, await world.drainNotifications());
    });
  });
});
