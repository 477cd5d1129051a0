/**
 * The rotation workflow end to end: the state machine definition from `cdk synth`, run by
 * aws-local-stepfunctions, every Task bound to its real handler, against a moto server with
 * request signing on. Every scenario ends with a scan for secret values in the execution history,
 * the task inputs and outputs, the logs and the notifications.
 */
import {
  DeleteAccessKeyCommand,
  TagUserCommand,
  UntagUserCommand,
  UpdateAccessKeyCommand,
} from '@aws-sdk/client-iam';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitCodeFor, type RotationResult, type TaskOverride } from '../../cli/local-runner.ts';
import type { NewKey } from '../../contract/schemas.ts';
import {
  detailTypes,
  expectCleanRun,
  type Notification,
  outcomeStatus,
  startWorld,
  statesEntered,
  type World,
} from './harness.ts';

let world: World;

beforeAll(async () => {
  world = await startWorld({ config: { maxAdoptionChecks: 2, protectedUsers: ['break-glass'] } });
});
afterAll(async () => {
  await world?.stop();
});

/** A Lambda error's Cause, as Step Functions reports it: {"errorType", "errorMessage"}. */
const causeOf = (r: RotationResult): unknown => JSON.parse(r.cause ?? '{}');
const expectClean = (result: RotationResult, notifications: Notification) =>
  expectCleanRun(world, result, notifications);

/** A consumer that still holds the old key and calls AWS with it. */
function consumerOf(credentials: { accessKeyId: string; secretAccessKey: string }) {
  return async () => {
    const arn = await world.whoAmI(credentials);
    expect(arn).toMatch(/^arn:aws:iam::/);
  };
}

describe('happy path', () => {
  it('replaces the only key, stores a working new key and deletes the old one', async () => {
    const [old] = await world.createUser('alice');
    if (!old) throw new Error('no key');

    const result = await world.run({ userName: 'alice' });

    expect(result.status).toBe('SUCCEEDED');
    expect(outcomeStatus(result)).toBe('ROTATED');
    expect(exitCodeFor(result)).toBe(0);
    const keys = await world.keysOf('alice');
    expect(keys).toHaveLength(1);
    expect(keys[0]?.status).toBe('Active');
    expect(keys[0]?.id).not.toBe(old.accessKeyId);
    const stored = await world.storedCredential('alice');
    expect(stored).toMatchObject({ Version: 1, AccessKeyId: keys[0]?.id, UserName: 'alice' });
    expect(stored.SecretAccessKey).toEqual(expect.any(String));
    expect(Number.isNaN(Date.parse(String(stored.CreateDate)))).toBe(false);
    // Signing is on: the stored secret proves itself, a wrong one and the deleted old key do not.
    expect(
      await world.whoAmI({ accessKeyId: stored.AccessKeyId, secretAccessKey: stored.SecretAccessKey }),
    ).toBe('arn:aws:iam::123456789012:user/alice');
    expect(
      await world.whoAmI({ accessKeyId: stored.AccessKeyId, secretAccessKey: `x${stored.SecretAccessKey}` }),
    ).toBe('SignatureDoesNotMatch');
    expect(await world.whoAmI(old)).toBe('InvalidClientTokenId');
    const notifications = await world.drainNotifications();
    expect(detailTypes(notifications)).toEqual([
      'Access Key Rotation Started',
      'New Access Key Ready',
      'Access Key Deactivated',
      'Access Key Rotation Completed',
    ]);
    const completed = notifications.events.at(-1)?.detail;
    expect(completed).toMatchObject({
      userName: 'alice',
      oldAccessKeyId: old.accessKeyId,
      newAccessKeyId: keys[0]?.id,
    });
    expect(
      notifications.sns.some((body) => body.includes(`rotated "alice": ${old.accessKeyId} was replaced`)),
    ).toBe(true);
    const transitions = statesEntered(result).length;
    console.info(
      `happy-path rotation: ${transitions} state transitions, ${result.tasks.length} Lambda invocations`,
    );
    expect(transitions).toBeGreaterThan(10);
    // The merged steps (one notify for the start and the new key; verify and delete in one Task).
    expect(transitions).toBeLessThanOrEqual(15);
    expect(result.tasks.map((t) => t.step)).toEqual([
      'plan',
      'create-second-key',
      'verify-new-key',
      'notify',
      'check-last-used',
      'deactivate-old-key',
      'notify',
      'verify-rotation',
      'notify',
    ]);
    // The log scan below reads what the handlers really logged (it is not vacuous).
    expect(world.logs.join('')).toContain('new access key created and stored');
    await expectClean(result, notifications);
  });

  it('keeps the previous key as AWSPREVIOUS on the next rotation', async () => {
    await world.createUser('alice2');
    await world.run({ userName: 'alice2' });
    const first = await world.storedCredential('alice2');
    // The first rotation's checks signed calls with its new key, which the second one replaces:
    // rotations are months apart, not inside IAM's 15-minute last-used resolution.
    world.clock.advance(3600);

    const result = await world.run({ userName: 'alice2', reason: 'second rotation' });

    expect(outcomeStatus(result)).toBe('ROTATED');
    const current = await world.storedCredential('alice2');
    const previous = await world.storedCredential('alice2', 'AWSPREVIOUS');
    expect(previous.AccessKeyId).toBe(first.AccessKeyId);
    expect(current.AccessKeyId).not.toBe(first.AccessKeyId);
    expect((await world.keysOf('alice2')).map((k) => k.id)).toEqual([current.AccessKeyId]);
    await expectClean(result, await world.drainNotifications());
  });
});

describe('old key still in use', () => {
  it('never deactivates it, stops safely after maxAdoptionChecks and alerts with its last use', async () => {
    const [old] = await world.createUser('bob');
    if (!old) throw new Error('no key');
    const consumer = consumerOf(old);
    // The consumer keeps calling AWS with the old key while rekey waits for adoption.
    const beforeEachCheck: TaskOverride = async (input, invoke) => {
      await consumer();
      return invoke(input);
    };

    const result = await world.run({ userName: 'bob' }, { handlers: { 'check-last-used': beforeEachCheck } });

    expect(result.status).toBe('SUCCEEDED');
    expect(outcomeStatus(result)).toBe('STOPPED');
    expect(exitCodeFor(result)).toBe(2);
    expect(statesEntered(result)).not.toContain('Deactivate the old key');
    expect(statesEntered(result).filter((s) => s === 'Check whether the old key is still used')).toHaveLength(
      2,
    );
    const keys = await world.keysOf('bob');
    expect(keys).toHaveLength(2);
    expect(keys.every((k) => k.status === 'Active')).toBe(true);
    const stored = await world.storedCredential('bob');
    expect(stored.AccessKeyId).not.toBe(old.accessKeyId);
    expect(keys.map((k) => k.id)).toContain(stored.AccessKeyId);
    const notifications = await world.drainNotifications();
    expect(detailTypes(notifications)).toEqual([
      'Access Key Rotation Started',
      'New Access Key Ready',
      'Old Access Key Still In Use',
      'Access Key Rotation Stopped',
    ]);
    const stopped = notifications.events.at(-1)?.detail ?? {};
    expect(stopped).toMatchObject({
      reason: 'OldKeyStillInUse',
      oldAccessKeyId: old.accessKeyId,
      status: 'STOPPED',
    });
    expect(stopped.oldKeyLastUsedDate).toEqual(expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/));
    expect(String(stopped.message)).toContain(old.accessKeyId);
    expect(String(stopped.message)).toContain(String(stopped.oldKeyLastUsedDate));
    await expectClean(result, notifications);
  });
});

describe('resume, never a dead end', () => {
  /** The key the user's secret holds as AWSCURRENT. */
  const currentKey = async (user: string) => (await world.storedCredential(user)).AccessKeyId;

  it('after a still-in-use stop and a consumer that switched, a new run finishes with the key already handed out', async () => {
    const [old] = await world.createUser('sam');
    if (!old) throw new Error('no key');
    const stillUsing: TaskOverride = async (input, invoke) => {
      await consumerOf(old)();
      return invoke(input);
    };
    const first = await world.run({ userName: 'sam' }, { handlers: { 'check-last-used': stillUsing } });
    expect(outcomeStatus(first)).toBe('STOPPED');
    expect(exitCodeFor(first)).toBe(2);
    const handedOut = await currentKey('sam');
    const stop = (first.output as { outcome: { message: string } }).outcome.message;
    // The notification says exactly what to do next.
    expect(stop).toContain(
      "Switch every consumer that still uses the old key to the secret's AWSCURRENT version (the new key), " +
        'then start the rotation of this user again: it resumes with the new key, creates none',
    );
    await world.drainNotifications();

    // The consumer switched to the new key an hour ago; then the operator starts a new rotation.
    world.clock.advance(3600);
    const second = await world.run({ userName: 'sam' });

    expect(outcomeStatus(second)).toBe('ROTATED');
    expect(exitCodeFor(second)).toBe(0);
    expect(second.output).toMatchObject({ action: 'RESUME', resumeStage: 'ADOPTION' });
    expect(await world.keysOf('sam')).toEqual([{ id: handedOut, status: 'Active' }]);
    expect(await currentKey('sam')).toBe(handedOut);
    // It created no key: the create step never ran, and it re-entered at the proof of the new key.
    expect(second.tasks.map((t) => t.step)).not.toContain('create-second-key');
    const entered = statesEntered(second);
    expect(entered.slice(0, 3)).toEqual([
      'Plan the rotation',
      'What does the plan say?',
      'Verify the new key works',
    ]);
    expect(entered).not.toContain('Create the second key');
    const notifications = await world.drainNotifications();
    expect(detailTypes(notifications)).toEqual([
      'New Access Key Ready',
      'Access Key Deactivated',
      'Access Key Rotation Completed',
    ]);
    await expectClean(second, notifications);
  });

  it('after a failure after the deactivation, a new run re-enters at the verification and deletes the old key', async () => {
    const [old] = await world.createUser('tom');
    if (!old) throw new Error('no key');
    const broken: TaskOverride = () => {
      const failure = new Error('the notification could not be sent');
      failure.name = 'NotificationBroken';
      throw failure;
    };
    const first = await world.run(
      { userName: 'tom' },
      { handlers: { 'Report that the old key was deactivated': broken } },
    );
    expect(first.status).toBe('FAILED');
    expect((await world.keysOf('tom')).find((k) => k.id === old.accessKeyId)?.status).toBe('Inactive');
    const handedOut = await currentKey('tom');
    await world.drainNotifications();

    const second = await world.run({ userName: 'tom' });

    expect(outcomeStatus(second)).toBe('ROTATED');
    expect(exitCodeFor(second)).toBe(0);
    expect(second.output).toMatchObject({ action: 'RESUME', resumeStage: 'DELETION' });
    expect(statesEntered(second).slice(0, 5)).toEqual([
      'Plan the rotation',
      'What does the plan say?',
      'Wait before deleting the old key',
      'Verify the old key stayed unused, then delete it',
      'Report that the rotation is complete',
    ]);
    expect(second.tasks.map((t) => t.step)).not.toContain('create-second-key');
    expect(await world.keysOf('tom')).toEqual([{ id: handedOut, status: 'Active' }]);
    await expectClean(second, await world.drainNotifications());
  });
});

describe('the quiet-since instant Q', () => {
  it('a consumer that switches between two adoption checks lets the rotation complete in that run', async () => {
    const [old] = await world.createUser('nina');
    if (!old) throw new Error('no key');
    let checks = 0;
    // Each adoption wait is an hour of the world's clock; the consumer calls with the old key
    // before the first check, then switches to the new key.
    const check: TaskOverride = async (input, invoke) => {
      checks++;
      if (checks === 1) await consumerOf(old)();
      world.clock.advance(3600);
      return invoke(input);
    };

    const result = await world.run({ userName: 'nina' }, { handlers: { 'check-last-used': check } });

    expect(outcomeStatus(result)).toBe('ROTATED');
    expect(exitCodeFor(result)).toBe(0);
    const [first, second] = result.tasks.filter((t) => t.step === 'check-last-used');
    if (!first || !second) throw new Error('expected two adoption checks');
    const quietSince = (doc: unknown) => (doc as { quietSince: string }).quietSince;
    // The first check found the use and moved Q to its own time; the second compared with that Q.
    expect((first.output as { inUse: boolean }).inUse).toBe(true);
    expect(quietSince(first.output) > quietSince(first.input)).toBe(true);
    expect(quietSince(second.input)).toBe(quietSince(first.output));
    expect((second.output as { inUse: boolean }).inUse).toBe(false);
    expect(statesEntered(result).filter((s) => s === 'Count only uses from this check on')).toHaveLength(1);
    // The delete compared with the same Q.
    const deleted = result.tasks.find((t) => t.state === 'Verify the old key stayed unused, then delete it');
    expect(deleted?.input).toMatchObject({ quietSince: quietSince(first.output) });
    expect(deleted?.output).toEqual({ verified: true, deleted: true });
    const keys = await world.keysOf('nina');
    expect(keys).toHaveLength(1);
    expect(keys[0]?.id).toBe((await world.storedCredential('nina')).AccessKeyId);
    const notifications = await world.drainNotifications();
    expect(detailTypes(notifications)).toEqual([
      'Access Key Rotation Started',
      'New Access Key Ready',
      'Old Access Key Still In Use',
      'Access Key Deactivated',
      'Access Key Rotation Completed',
    ]);
    await expectClean(result, notifications);
  });

  it('a use between Q and the deactivation that surfaces only after it rolls the rotation back', async () => {
    const [old] = await world.createUser('oscar');
    if (!old) throw new Error('no key');
    let quietSince = '';
    let deactivatedAt = '';
    const deactivate: TaskOverride = async (input, invoke) => {
      quietSince = (input as { quietSince: string }).quietSince;
      world.clock.advance(3600);
      const output = await invoke(input);
      deactivatedAt = (output as { deactivatedAt: string }).deactivatedAt;
      // IAM documents no delivery bound for last-used data: a call the consumer made half an hour
      // after Q, before the deactivation, appears only now. (moto stamps it with its clock, moved
      // back for the call.)
      const back = (Date.parse(deactivatedAt) - Date.parse(quietSince)) / 2000;
      world.clock.advance(-back);
      await consumerOf(old)();
      world.clock.advance(back);
      return output;
    };

    const result = await world.run({ userName: 'oscar' }, { handlers: { 'deactivate-old-key': deactivate } });

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('RotationRolledBack');
    expect(statesEntered(result)).toContain('Reactivate the old key');
    expect(statesEntered(result)).not.toContain('Report that the rotation is complete');
    expect((await world.keysOf('oscar')).find((k) => k.id === old.accessKeyId)?.status).toBe('Active');
    const verify = result.tasks.find((t) => t.step === 'verify-rotation');
    expect(verify?.error?.name).toBe('RotationVerificationFailed');
    expect(verify?.error?.message).toContain(`at or after ${quietSince}`);
    const lastUse = /was used at (\S+)/.exec(verify?.error?.message ?? '')?.[1] ?? '';
    // The use really lies between Q and the deactivation: comparing with the deactivation would have deleted the key.
    expect(lastUse > quietSince && lastUse < deactivatedAt).toBe(true);
    const notifications = await world.drainNotifications();
    expect(detailTypes(notifications).at(-1)).toBe('Access Key Rolled Back');
    await expectClean(result, notifications);
  });
});

describe('checked right before acting', () => {
  it('an exemption added before the deactivation stops the rotation safely and keeps the old key', async () => {
    const [old] = await world.createUser('pat');
    if (!old) throw new Error('no key');
    const exemptFirst: TaskOverride = async (input, invoke) => {
      await world.iam.send(
        new TagUserCommand({
          UserName: 'pat',
          Tags: [{ Key: 'rekey:exempt', Value: 'vendor freeze SEC-9' }],
        }),
      );
      return invoke(input);
    };

    const result = await world.run({ userName: 'pat' }, { handlers: { 'deactivate-old-key': exemptFirst } });

    expect(outcomeStatus(result)).toBe('STOPPED');
    expect(exitCodeFor(result)).toBe(2);
    const outcome = (result.output as { outcome: { reason: string; message: string } }).outcome;
    expect(outcome.reason).toBe('UserExempt');
    expect(outcome.message).toMatch(/"pat" is exempt: vendor freeze SEC-9; stopped before deactivating/);
    expect(outcome.message).toMatch(/start the rotation of this user again: it resumes/);
    const keys = await world.keysOf('pat');
    expect(keys).toHaveLength(2);
    expect(keys.every((k) => k.status === 'Active')).toBe(true);
    expect(keys.map((k) => k.id)).toContain(old.accessKeyId);
    const notifications = await world.drainNotifications();
    expect(detailTypes(notifications).at(-1)).toBe('Access Key Rotation Stopped');
    expect(notifications.events.at(-1)?.detail).toMatchObject({ reason: 'UserExempt', status: 'STOPPED' });
    const locks = JSON.parse(await world.snapshot()).locks as Array<{
      userName: { S: string };
      owner?: unknown;
    }>;
    expect(locks.find((l) => l.userName.S === 'pat')?.owner).toBeUndefined();
    await expectClean(result, notifications);

    // The exemption ends: a new run resumes with the key the first one handed out.
    const handedOut = (await world.storedCredential('pat')).AccessKeyId;
    await world.iam.send(new UntagUserCommand({ UserName: 'pat', TagKeys: ['rekey:exempt'] }));
    const resumed = await world.run({ userName: 'pat' });
    expect(outcomeStatus(resumed)).toBe('ROTATED');
    expect(resumed.output).toMatchObject({ action: 'RESUME', resumeStage: 'ADOPTION' });
    expect(await world.keysOf('pat')).toEqual([{ id: handedOut, status: 'Active' }]);
    await expectClean(resumed, await world.drainNotifications());
  });

  describe('a case variant of the user name', () => {
    /**
     * IAM finds a user by its name in any case (names are unique case-insensitively); moto does
     * not. This makes the handlers' IAM client ask moto in the user's own spelling, as IAM would
     * answer, and leaves everything else (what the steps do with the answer) to rekey.
     */
    async function asIamResolves(spellings: Record<string, string>, run: () => Promise<RotationResult>) {
      const { iam } = await import('../../lambdas/shared/clients.ts');
      const id = 'iam-case-insensitive-names';
      iam.middlewareStack.add(
        (next) => async (args) => {
          const input = args.input as { UserName?: string };
          const own = input.UserName && spellings[input.UserName.toLowerCase()];
          return next(own ? { ...args, input: { ...input, UserName: own } } : args);
        },
        { step: 'initialize', name: id },
      );
      try {
        return await run();
      } finally {
        iam.middlewareStack.remove(id);
      }
    }

    it("maps to one secret and one lock, named in IAM's spelling", async () => {
      await world.createUser('Quinn-Case');
      const spelling = { 'quinn-case': 'Quinn-Case' };

      const first = await asIamResolves(spelling, () => world.run({ userName: 'quinn-case' }));
      world.clock.advance(3600);
      const second = await asIamResolves(spelling, () => world.run({ userName: 'QUINN-CASE' }));

      expect(outcomeStatus(first)).toBe('ROTATED');
      expect(outcomeStatus(second)).toBe('ROTATED');
      for (const r of [first, second]) {
        expect(r.output).toMatchObject({ userName: 'Quinn-Case', secretName: 'rekey/Quinn-Case' });
      }
      const versions = await world.storedVersions('Quinn-Case');
      expect(versions.map((v) => v.stages.sort().join()).sort()).toEqual(['AWSCURRENT', 'AWSPREVIOUS']);
      const current = versions.find((v) => v.stages.includes('AWSCURRENT'));
      expect(current).toMatchObject({ UserName: 'Quinn-Case' });
      expect((await world.keysOf('Quinn-Case')).map((k) => k.id)).toEqual([current?.AccessKeyId]);
      const snapshot = JSON.parse(await world.snapshot()) as {
        secretVersions: Record<string, unknown>;
        locks: Array<{ userName: { S: string } }>;
      };
      expect(
        Object.keys(snapshot.secretVersions).filter((n) => n.toLowerCase() === 'rekey/quinn-case'),
      ).toEqual(['rekey/Quinn-Case']);
      expect(snapshot.locks.filter((l) => l.userName.S.toLowerCase() === 'quinn-case')).toHaveLength(1);
      await expectClean(second, await world.drainNotifications());
    });

    it("keeps a secret that already exists under the request's spelling, and says so", async () => {
      await world.createUser('Rita-Case');
      await world.secrets.send(new CreateSecretCommand({ Name: 'rekey/rita-case' }));

      const result = await asIamResolves({ 'rita-case': 'Rita-Case' }, () =>
        world.run({ userName: 'rita-case' }),
      );

      expect(outcomeStatus(result)).toBe('ROTATED');
      expect(result.output).toMatchObject({ userName: 'Rita-Case', secretName: 'rekey/rita-case' });
      expect((result.output as { message: string }).message).toContain(
        'IAM spells the user "Rita-Case"; its existing secret rekey/rita-case (named as requested) is kept',
      );
      expect((await world.storedCredential('rita-case')).UserName).toBe('Rita-Case');
      expect(await world.storedVersions('Rita-Case')).toEqual([]);
      await expectClean(result, await world.drainNotifications());
    });
  });
});

describe('verification after deactivation fails', () => {
  const scenarios: Array<
    [string, (user: string, old: { accessKeyId: string; secretAccessKey: string }) => Promise<void>]
  > = [
    ['the old key was used after deactivation', async (_user, old) => consumerOf(old)()],
    [
      'the old key was reactivated',
      async (user, old) => {
        await world.iam.send(
          new UpdateAccessKeyCommand({ UserName: user, AccessKeyId: old.accessKeyId, Status: 'Active' }),
        );
      },
    ],
    [
      'the new key no longer authenticates',
      async (user) => {
        const current = await world.storedCredential(user);
        await world.iam.send(
          new DeleteAccessKeyCommand({ UserName: user, AccessKeyId: current.AccessKeyId }),
        );
      },
    ],
  ];

  it.each(scenarios)('%s: reactivates the old key, alerts, and fails', async (what, disturb) => {
    const user = `carol-${scenarios.findIndex(([w]) => w === what)}`;
    const [old] = await world.createUser(user);
    if (!old) throw new Error('no key');
    const beforeVerify: TaskOverride = async (input, invoke) => {
      await disturb(user, old);
      return invoke(input);
    };

    const result = await world.run({ userName: user }, { handlers: { 'verify-rotation': beforeVerify } });

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('RotationRolledBack');
    expect(exitCodeFor(result)).toBe(1);
    expect(statesEntered(result)).toContain('Reactivate the old key');
    expect(statesEntered(result)).not.toContain('Report that the rotation is complete');
    const oldNow = (await world.keysOf(user)).find((k) => k.id === old.accessKeyId);
    expect(oldNow?.status).toBe('Active');
    const notifications = await world.drainNotifications();
    expect(detailTypes(notifications).at(-1)).toBe('Access Key Rolled Back');
    expect(notifications.events.at(-1)?.detail).toMatchObject({ reason: 'RotationVerificationFailed' });
    await expectClean(result, notifications);
  });
});

describe('extra keys', () => {
  it('removes an inactive, never-used extra key first, then rotates', async () => {
    const [active, extra] = await world.createUser('dave', { keys: 2, inactive: [1] });
    if (!active || !extra) throw new Error('no keys');

    const result = await world.run({ userName: 'dave' });

    expect(outcomeStatus(result)).toBe('ROTATED');
    expect(statesEntered(result)).toContain('Remove the unused extra key');
    const keys = await world.keysOf('dave');
    expect(keys).toHaveLength(1);
    expect([active.accessKeyId, extra.accessKeyId]).not.toContain(keys[0]?.id);
    expect((await world.storedCredential('dave')).AccessKeyId).toBe(keys[0]?.id);
    await expectClean(result, await world.drainNotifications());
  });

  it('stops with TwoActiveKeys, alerts, and changes nothing when both keys are active', async () => {
    await world.createUser('erin', { keys: 2 });
    const before = await world.snapshot();

    const result = await world.run({ userName: 'erin' });

    expect(outcomeStatus(result)).toBe('STOPPED');
    expect((result.output as { outcome: { reason: string } }).outcome.reason).toBe('TwoActiveKeys');
    expect(exitCodeFor(result)).toBe(2);
    expect(await world.snapshot()).toBe(before);
    const notifications = await world.drainNotifications();
    expect(detailTypes(notifications)).toEqual(['Access Key Rotation Stopped']);
    expect(notifications.events[0]?.detail).toMatchObject({ reason: 'TwoActiveKeys', userName: 'erin' });
    await expectClean(result, notifications);
  });
});

describe('refusals: a clear error and zero mutating calls', () => {
  // Malformed requests (missing or bad fields, wrong types, illegal characters) are the bad-input
  // corpus, run by bad-input.test.ts; these are well-formed requests that must still be refused.
  it.each([
    [
      'an unknown user',
      { userName: 'nobody-here' },
      'FAILED',
      'UserNotFound',
      /"nobody-here" does not exist/,
    ],
    ['a protected user', { userName: 'Break-Glass' }, 'STOPPED', 'UserProtected', /protected/],
    [
      'an exempt user',
      { userName: 'frank' },
      'STOPPED',
      'UserExempt',
      /exempt until 2099-12-31: vendor SMTP relay/,
    ],
    ['a user without keys', { userName: 'grace' }, 'STOPPED', 'NoAccessKeys', /no access keys/],
  ])('%s', async (_what, input, status, reason, message) => {
    await world
      .createUser('frank', { tags: { 'rekey:exempt': 'until=2099-12-31 vendor SMTP relay' } })
      .catch(() => {});
    await world.createUser('grace', { keys: 0 }).catch(() => {});
    await world.createUser('Break-Glass').catch(() => {});
    await world.drainNotifications();
    const before = await world.snapshot();

    const result = await world.run(input);

    if (status === 'FAILED') {
      expect(result.status).toBe('FAILED');
      expect(result.error).toBe('RotationRequestRejected');
      expect(causeOf(result)).toEqual({ errorType: reason, errorMessage: expect.stringMatching(message) });
      expect(exitCodeFor(result)).toBe(1);
    } else {
      expect(outcomeStatus(result)).toBe(status);
      const outcome = (result.output as { outcome: { reason: string; message: string } }).outcome;
      expect(outcome.reason).toBe(reason);
      expect(outcome.message).toMatch(message);
      expect(exitCodeFor(result)).toBe(2);
    }
    expect(await world.snapshot()).toBe(before);
    expect(await world.drainNotifications()).toEqual({ sns: [], events: [] });
  });
});

describe('dry run', () => {
  it('reports the full plan and makes no mutating call', async () => {
    await world.createUser('heidi', { keys: 2, inactive: [1] });
    const before = await world.snapshot();

    const result = await world.run({ userName: 'heidi', dryRun: true });

    expect(result.status).toBe('SUCCEEDED');
    expect(outcomeStatus(result)).toBe('DRY_RUN');
    expect(exitCodeFor(result)).toBe(0);
    const steps = (result.output as { steps: string[] }).steps;
    expect(steps.join('\n')).toMatch(/delete the inactive, never-used key/);
    expect(steps.join('\n')).toMatch(/create a second access key/);
    expect(steps.join('\n')).toMatch(/deactivate/);
    expect(await world.snapshot()).toBe(before);
    expect(await world.drainNotifications()).toEqual({ sns: [], events: [] });
  });
});

describe('crash and retry', () => {
  /** Makes CreateAccessKey succeed in the emulator but lose its response, `times` times. */
  function loseCreateResponses(times: number): TaskOverride {
    let left = times;
    return async (input, invoke) => {
      const { iam } = await import('../../lambdas/shared/clients.ts');
      const id = 'lose-create-response';
      iam.middlewareStack.remove(id);
      if (left > 0) {
        left--;
        iam.middlewareStack.add(
          (next, context) => async (args) => {
            const out = await next(args);
            if (context.commandName === 'CreateAccessKeyCommand') {
              const lost = new Error('socket hang up after the request was applied');
              lost.name = 'ECONNRESET';
              throw lost;
            }
            return out;
          },
          { step: 'deserialize', name: id },
        );
      }
      try {
        return await invoke(input);
      } finally {
        iam.middlewareStack.remove(id);
      }
    };
  }

  it('a lost CreateAccessKey response and a retried step: no third key, no key without a stored secret', async () => {
    const [old] = await world.createUser('ivan');
    if (!old) throw new Error('no key');
    let keysAtVerify: Array<{ id: string; status: string }> = [];
    const result = await world.run(
      { userName: 'ivan' },
      {
        handlers: {
          'create-second-key': loseCreateResponses(1),
          'verify-new-key': async (input, invoke) => {
            keysAtVerify = await world.keysOf('ivan');
            return invoke(input);
          },
        },
      },
    );

    expect(outcomeStatus(result)).toBe('ROTATED');
    expect(result.events.some((e) => e.type === 'StateRetried')).toBe(true);
    // While the new key was being verified: the old key and exactly one stored new key.
    expect(keysAtVerify).toHaveLength(2);
    const pending = await world.storedCredential('ivan');
    expect(keysAtVerify.map((k) => k.id).sort()).toEqual([old.accessKeyId, pending.AccessKeyId].sort());
    expect((await world.keysOf('ivan')).map((k) => k.id)).toEqual([pending.AccessKeyId]);
    await expectClean(result, await world.drainNotifications());
  });

  it('a create step that keeps crashing fails the run without leaving a key whose secret is not stored', async () => {
    const [old] = await world.createUser('judy');
    if (!old) throw new Error('no key');

    const result = await world.run(
      { userName: 'judy' },
      { handlers: { 'create-second-key': loseCreateResponses(100) } },
    );

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('RotationFailed');
    expect(await world.keysOf('judy')).toEqual([{ id: old.accessKeyId, status: 'Active' }]);
    expect(await world.drainNotifications().then(detailTypes)).toContain('Access Key Rotation Failed');
  });

  const failVerify: TaskOverride = () => {
    const outage = new Error('STS is down');
    outage.name = 'ServiceUnavailable';
    throw outage;
  };

  it('a failure before the hand-out removes the key it made; a re-run then rotates cleanly', async () => {
    // A second rotation: the secret exists, so the new key's version is only AWSPENDING until
    // verified (a secret's first version is AWSCURRENT at once, and so counts as handed out).
    await world.createUser('ken');
    expect(outcomeStatus(await world.run({ userName: 'ken' }))).toBe('ROTATED');
    const before = await world.storedCredential('ken');
    world.clock.advance(3600);
    await world.drainNotifications();

    const first = await world.run(
      { userName: 'ken' },
      { executionName: 'ken-rerun', handlers: { 'verify-new-key': failVerify } },
    );

    expect(first.status).toBe('FAILED');
    expect(statesEntered(first)).toContain('Clean up after the failure');
    const made = (first.tasks.find((t) => t.step === 'create-second-key')?.output as NewKey | undefined)
      ?.accessKeyId;
    // Never handed out: the failure path deleted it, dropped its AWSPENDING label, released the lock.
    expect(await world.keysOf('ken')).toEqual([{ id: before.AccessKeyId, status: 'Active' }]);
    expect((await world.storedVersions('ken')).find((v) => v.AccessKeyId === made)?.stages).toEqual([]);
    expect((await world.storedCredential('ken')).AccessKeyId).toBe(before.AccessKeyId);
    const cleanup = first.tasks.find((t) => t.state === 'Clean up after the failure')?.output;
    expect(cleanup).toMatchObject({ acted: true, releasedLock: true, removedKeyIds: [made] });
    const failed = (await world.drainNotifications()).events.at(-1)?.detail;
    expect(String(failed?.message)).toContain(`${made}, made by this run and never handed out, was deleted`);

    const second = await world.run({ userName: 'ken' }, { executionName: 'ken-rerun' });
    expect(outcomeStatus(second)).toBe('ROTATED');
    const current = await world.storedCredential('ken');
    expect(await world.keysOf('ken')).toEqual([{ id: current.AccessKeyId, status: 'Active' }]);
    expect([made, before.AccessKeyId]).not.toContain(current.AccessKeyId);
    await expectClean(second, await world.drainNotifications());
  });

  it('when no cleanup could run, a re-run of the same execution resumes with the key it already stored', async () => {
    const [old] = await world.createUser('ken2');
    if (!old) throw new Error('no key');
    const cleanupDown: TaskOverride = () => {
      throw new Error('the cleanup is down');
    };
    const first = await world.run(
      { userName: 'ken2' },
      { executionName: 'ken2-rerun', handlers: { 'verify-new-key': failVerify, cleanup: cleanupDown } },
    );
    expect(first.status).toBe('FAILED');
    const keysAfterFailure = await world.keysOf('ken2');
    expect(keysAfterFailure).toHaveLength(2);
    const pending = await world.storedCredential('ken2', 'AWSPENDING');
    expect(keysAfterFailure.map((k) => k.id)).toContain(pending.AccessKeyId);

    const second = await world.run({ userName: 'ken2' }, { executionName: 'ken2-rerun' });

    expect(outcomeStatus(second)).toBe('ROTATED');
    const keys = await world.keysOf('ken2');
    expect(keys.map((k) => k.id)).toEqual([pending.AccessKeyId]);
    const current = await world.storedCredential('ken2');
    expect(current.AccessKeyId).toBe(pending.AccessKeyId);
    expect(
      await world.whoAmI({ accessKeyId: current.AccessKeyId, secretAccessKey: current.SecretAccessKey }),
    ).toBe('arn:aws:iam::123456789012:user/ken2');
    await expectClean(second, await world.drainNotifications());
  });

  it('two concurrent rotations of one user: one proceeds, the other stops with RotationInProgress', async () => {
    await world.createUser('leo');
    let releaseWinner: () => void = () => {};
    const loserPlanned = new Promise<void>((resolve) => {
      releaseWinner = resolve;
    });
    const winner = world.run(
      { userName: 'leo' },
      {
        executionName: 'leo-winner',
        handlers: {
          'create-second-key': async (input, invoke) => {
            await loserPlanned;
            return invoke(input);
          },
        },
      },
    );
    // Start the rival once the winner holds the lock (its plan is done when create is reached).
    await new Promise((resolve) => setTimeout(resolve, 50));
    let loserResult: RotationResult | undefined;
    for (let i = 0; i < 100 && !loserResult; i++) {
      const lock = JSON.parse(await world.snapshot()).locks as Array<{ owner?: { S: string } }>;
      if (lock.some((l) => l.owner?.S.endsWith('leo-winner'))) {
        loserResult = await world.run({ userName: 'leo' }, { executionName: 'leo-loser' });
      } else {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    releaseWinner();
    const winnerResult = await winner;

    expect(outcomeStatus(winnerResult)).toBe('ROTATED');
    if (!loserResult) throw new Error('the rival rotation never started');
    expect(outcomeStatus(loserResult)).toBe('STOPPED');
    expect((loserResult.output as { outcome: { reason: string } }).outcome.reason).toBe('RotationInProgress');
    expect(loserResult.tasks.map((t) => t.step)).toEqual(['plan']);
    expect(await world.keysOf('leo')).toHaveLength(1);
  });
});

describe('the definition under test', () => {
  it('comes from the synthesized template and binds every Task to a handler', () => {
    const bound = Object.values(world.definition.bindings);
    expect(new Set(bound)).toEqual(
      new Set([
        'plan',
        'create-second-key',
        'verify-new-key',
        'check-last-used',
        'deactivate-old-key',
        'verify-rotation',
        'reactivate-old-key',
        'delete-key',
        'notify',
        'cleanup',
      ]),
    );
  });
});
