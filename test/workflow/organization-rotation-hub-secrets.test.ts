/**
 * Rotation of a member account's user with `organization.secrets: hub`: the user's keys in the
 * member account, its secret in the hub under the per-account name (`<prefix>accounts/<account>/<user>`,
 * docs/organizations.md). On moto with signing on, under the deployed roles, as
 * test/workflow/organization-rotation.test.ts (a file of its own: one world per file).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AccountState,
  expectCleanRun,
  outcomeStatus,
  startWorld,
  type World,
  type WorldAccount,
} from './harness.ts';
import {
  expectAccountEverywhere,
  failures,
  recordedRun,
  rotatedState,
  statesOf,
} from './organization-rotation-support.ts';

describe('rotation across accounts (secrets: hub)', () => {
  let world: World;
  let hub: WorldAccount;
  let a: WorldAccount;
  let b: WorldAccount;
  let prefix: string;

  beforeAll(async () => {
    world = await startWorld({
      organization: { members: [{ name: 'workload-a' }, { name: 'workload-b' }], config: { secrets: 'hub' } },
      quiet: true,
    });
    [hub, a, b] = world.accounts as [WorldAccount, WorldAccount, WorldAccount];
    prefix = world.env.REKEY_SECRET_PREFIX ?? '';
    for (const account of world.accounts) await account.createUser('alice');
  }, 300_000);

  afterAll(async () => {
    await world?.stop();
  });

  it("keeps A's alice's new key in the hub under the per-account name; nothing in A's Secrets Manager", async () => {
    const before = await statesOf(world.accounts);
    const [oldKey] = before[a.accountId]?.users.alice ?? [];
    if (!oldKey) throw new Error('no key');

    const { result, calls } = await recordedRun(world, { userName: 'alice', accountId: a.accountId });

    expect(result.status, failures(result)).toBe('SUCCEEDED');
    expect(outcomeStatus(result)).toBe('ROTATED');
    const after = await statesOf(world.accounts);
    const newKeyId = after[a.accountId]?.users.alice?.[0]?.id ?? '';
    expect(newKeyId).not.toBe(oldKey.id);
    // A: alice's key replaced, no secret made there.
    expect(after[a.accountId]).toEqual(
      rotatedState(before[a.accountId] as AccountState, newKeyId, undefined),
    );
    // The hub: one new secret, `<prefix>accounts/<A>/alice`; the hub's own alice and her (absent) secret untouched.
    const secretName = `${prefix}accounts/${a.accountId}/alice`;
    expect(after[hub.accountId]).toEqual({
      users: before[hub.accountId]?.users,
      secrets: {
        ...before[hub.accountId]?.secrets,
        [secretName]: [{ versionId: expect.any(String), stages: ['AWSCURRENT'], accessKeyId: newKeyId }],
      },
    });
    expect(Object.keys(before[hub.accountId]?.secrets ?? {})).not.toContain(`${prefix}alice`);
    expect(after[b.accountId]).toEqual(before[b.accountId]);
    const stored = await hub.storedCredential(`accounts/${a.accountId}/alice`);
    expect(stored).toMatchObject({ AccessKeyId: newKeyId, UserName: 'alice' });
    expect(await world.whoAmI({ accessKeyId: newKeyId, secretAccessKey: stored.SecretAccessKey })).toBe(
      `arn:aws:iam::${a.accountId}:user/alice`,
    );
    // IAM acted in A, Secrets Manager in the hub.
    const iamCalls = calls.filter((x) => x.action.startsWith('iam:'));
    const secretCalls = calls.filter((x) => x.action.startsWith('secretsmanager:'));
    expect(iamCalls.length).toBeGreaterThan(3);
    expect(secretCalls.length).toBeGreaterThan(0);
    for (const call of iamCalls) expect(call.account, call.action).toBe(a.accountId);
    for (const call of secretCalls) expect(call.account, call.action).toBeUndefined();
    const notifications = await world.drainNotifications({ attributes: true });
    expectAccountEverywhere(notifications, a.accountId);
    await expectCleanRun(world, result, notifications);
  });
});
