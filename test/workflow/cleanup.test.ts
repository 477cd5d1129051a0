/**
 * Clean up what nobody has, on the emulator: after a failure, an abort (Ctrl-C of `rekey rotate`,
 * a console Stop) or a timeout, no lock stays held and no key rekey made and never handed out
 * stays behind, while a key already handed out is kept for the next run to resume with.
 *
 * The cleanup Lambda's own tests feed it the event the EventBridge rule would send (moto cannot
 * create the rule: test/infra/cleanup.test.ts covers it in the template).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitCodeFor, STATUS_CHANGE_RULE, type TaskOverride } from '../../cli/local-runner.ts';
import type { NewKey, Plan } from '../../contract/schemas.ts';
import { ACCOUNT } from '../../support/constants.ts';
import { expectCleanRun, outcomeStatus, startWorld, statesEntered, type World } from './harness.ts';

let world: World;

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.stop();
});

const executionArn = (name: string) => `arn:aws:states:us-east-1:${ACCOUNT}:execution:rekey-local:${name}`;

interface LockRow {
  userName: { S: string };
  owner?: { S: string };
}
const lockOf = async (user: string) =>
  (JSON.parse(await world.snapshot()).locks as LockRow[]).find((l) => l.userName.S === user.toLowerCase());

/**
 * What must hold after any end: the old key is still active, every other active key is the one
 * the secret holds as AWSCURRENT (nobody else has a key rekey made), and nobody holds the lock.
 */
async function expectNothingLeftBehind(user: string, oldKeyId: string): Promise<void> {
  const current = (await world.storedVersions(user)).find((v) => v.stages.includes('AWSCURRENT'));
  const keys = await world.keysOf(user);
  expect(keys.find((k) => k.id === oldKeyId)?.status).toBe('Active');
  for (const key of keys.filter((k) => k.id !== oldKeyId)) expect(key.id).toBe(current?.AccessKeyId);
  expect((await lockOf(user))?.owner).toBeUndefined();
}

/** A user whose key was rotated once already: its secret exists, so a new key is only AWSPENDING until verified. */
async function rotatedOnce(user: string): Promise<string> {
  await world.createUser(user);
  expect(outcomeStatus(await world.run({ userName: user }))).toBe('ROTATED');
  await world.drainNotifications();
  return (await world.storedCredential(user)).AccessKeyId;
}

const BIN = fileURLToPath(new URL('../../bin/rekey.mjs', import.meta.url));

describe('Ctrl-C during `rekey rotate`', () => {
  it('stops the run, waits for the step in flight, cleans up: no lock held, no never-handed-out key, exit 130', async () => {
    const old = await rotatedOnce('uma');
    const child: ChildProcess = spawn(process.execPath, [BIN, 'rotate', '--user', 'uma'], {
      env: {
        PATH: process.env.PATH,
        AWS_ENDPOINT_URL: world.moto.endpoint,
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: world.admin.accessKeyId,
        AWS_SECRET_ACCESS_KEY: world.admin.secretAccessKey,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let interrupted = false;
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      // The create step has begun: a key is being made that nobody holds yet.
      if (!interrupted && stdout.includes('→ Create the second key')) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));

    expect(interrupted, stdout).toBe(true);
    expect(code, stderr).toBe(130);
    expect(stderr).toContain('rekey rotate: SIGINT: stopping the execution, then cleaning up');
    expect(stderr).toContain('rekey: the rotation was stopped (SIGINT) and cleaned up');
    expect(stdout).toMatch(/Cleanup: ABORTED: /);
    await expectNothingLeftBehind('uma', old);
    // The new key never became AWSCURRENT: the stopped run handed nothing out.
    expect((await world.storedCredential('uma')).AccessKeyId).toBe(old);
    expect((await world.keysOf('uma')).map((k) => k.id)).toEqual([old]);
  });
});

describe('the local runner stands in for the status change rule', () => {
  it('an aborted run (console Stop) waits for the step in flight, then removes the key it made', async () => {
    const old = await rotatedOnce('vera');
    const controller = new AbortController();
    let made = '';
    // The Stop comes while the create step runs; the step finishes all the same.
    const stopDuringCreate: TaskOverride = async (input, invoke) => {
      controller.abort();
      await new Promise((resolve) => setTimeout(resolve, 50));
      const output = await invoke(input);
      made = (output as NewKey).accessKeyId;
      return output;
    };

    const result = await world.run(
      { userName: 'vera' },
      { signal: controller.signal, handlers: { 'create-second-key': stopDuringCreate } },
    );

    expect(result.status).toBe('ABORTED');
    expect(exitCodeFor(result)).toBe(1);
    expect(made).not.toBe('');
    const rule = result.tasks.at(-1);
    expect(rule?.state).toBe(STATUS_CHANGE_RULE);
    expect(rule?.input).toEqual({
      executionArn: result.executionArn,
      status: 'ABORTED',
      input: JSON.stringify({ userName: 'vera' }),
    });
    expect(rule?.output).toMatchObject({ acted: true, releasedLock: true, removedKeyIds: [made] });
    await expectNothingLeftBehind('vera', old);
    expect((await world.keysOf('vera')).map((k) => k.id)).toEqual([old]);
    await expectCleanRun(world, result, await world.drainNotifications());
  });
});

describe('a failure after create, the secret store answers lost', () => {
  /**
   * PutSecretValue is applied but its answer is lost, and so is every DescribeSecret after it (the
   * step asks whether the store landed): the create step cannot tell, deletes nothing and fails.
   * The errors are not retried (neither by the SDK nor by the state machine), so the store is
   * applied exactly once.
   */
  const answersLost: TaskOverride = async (input, invoke) => {
    const { secretsManager } = await import('../../lambdas/shared/clients.ts');
    const id = 'secret-store-answers-lost';
    let stored = false;
    secretsManager.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        if (context.commandName === 'PutSecretValueCommand') stored = true;
        if (
          stored &&
          ['PutSecretValueCommand', 'DescribeSecretCommand'].includes(context.commandName ?? '')
        ) {
          const lost = new Error('the answer was lost after the request was applied');
          lost.name = 'SecretStoreAnswerLost';
          throw lost;
        }
        return out;
      },
      { step: 'deserialize', name: id },
    );
    try {
      return await invoke(input);
    } finally {
      secretsManager.middlewareStack.remove(id);
    }
  };

  it.each([
    ['a first rotation (the secret is new, its first version AWSCURRENT at once)', false],
    ['a later rotation (the new version only AWSPENDING)', true],
  ])(
    '%s: no key left that no secret holds as AWSCURRENT, the old key active; a new run rotates cleanly',
    async (_what, before) => {
      const user = before ? 'wanda' : 'xena';
      const old = before ? await rotatedOnce(user) : ((await world.createUser(user))[0]?.accessKeyId ?? '');

      const first = await world.run({ userName: user }, { handlers: { 'create-second-key': answersLost } });

      expect(first.status).toBe('FAILED');
      expect(first.tasks.find((t) => t.step === 'create-second-key')?.error?.name).toBe(
        'SecretStoreAnswerLost',
      );
      expect(statesEntered(first)).toContain('Clean up after the failure');
      await expectNothingLeftBehind(user, old);
      await world.drainNotifications();

      world.clock.advance(3600);
      const second = await world.run({ userName: user });

      expect(outcomeStatus(second)).toBe('ROTATED');
      const current = await world.storedCredential(user);
      expect(await world.keysOf(user)).toEqual([{ id: current.AccessKeyId, status: 'Active' }]);
      expect(current.AccessKeyId).not.toBe(old);
      expect(
        await world.whoAmI({ accessKeyId: current.AccessKeyId, secretAccessKey: current.SecretAccessKey }),
      ).toBe(`arn:aws:iam::${ACCOUNT}:user/${user}`);
      await expectCleanRun(world, second, await world.drainNotifications());
    },
  );
});

describe('the cleanup Lambda, given the status change event', () => {
  /** The plan and create steps of an execution that then ends without its own cleanup. */
  async function plannedAndCreated(user: string, name: string): Promise<{ plan: Plan; newKey: NewKey }> {
    const plan = (await world.invokeStep('plan', {
      input: { userName: user },
      executionId: executionArn(name),
    })) as Plan;
    expect(plan.action).toBe('ROTATE');
    const newKey = (await world.invokeStep('create-second-key', plan)) as NewKey;
    return { plan, newKey };
  }
  const aborted = (name: string, user: string) => ({
    executionArn: executionArn(name),
    status: 'ABORTED',
    input: JSON.stringify({ userName: user }),
  });

  it("ABORTED for the lock's owner: releases the lock and removes the key it never handed out", async () => {
    const old = await rotatedOnce('yara');
    const { newKey } = await plannedAndCreated('yara', 'yara-stopped');
    expect((await lockOf('yara'))?.owner?.S).toBe(executionArn('yara-stopped'));
    expect(
      (await world.storedVersions('yara')).find((v) => v.AccessKeyId === newKey.accessKeyId)?.stages,
    ).toEqual(['AWSPENDING']);

    const result = await world.invokeStep('cleanup', aborted('yara-stopped', 'yara'));

    expect(result).toMatchObject({
      acted: true,
      releasedLock: true,
      removedKeyIds: [newKey.accessKeyId],
      keptKeyId: null,
    });
    expect(await world.keysOf('yara')).toEqual([{ id: old, status: 'Active' }]);
    expect(
      (await world.storedVersions('yara')).find((v) => v.AccessKeyId === newKey.accessKeyId)?.stages,
    ).toEqual([]);
    expect((await world.storedCredential('yara')).AccessKeyId).toBe(old);
    await expectNothingLeftBehind('yara', old);
  });

  it("ABORTED for the lock's owner after the hand-out: releases the lock and keeps the handed-out key", async () => {
    const old = await rotatedOnce('zoe');
    const { plan, newKey } = await plannedAndCreated('zoe', 'zoe-stopped');
    await world.invokeStep('verify-new-key', { ...plan, newKey });
    expect((await world.storedCredential('zoe')).AccessKeyId).toBe(newKey.accessKeyId);

    const result = await world.invokeStep('cleanup', aborted('zoe-stopped', 'zoe'));

    expect(result).toMatchObject({
      acted: true,
      releasedLock: true,
      removedKeyIds: [],
      keptKeyId: newKey.accessKeyId,
    });
    const keys = (await world.keysOf('zoe')).map((k) => k.id).sort();
    expect(keys).toEqual([old, newKey.accessKeyId].sort());
    expect((await lockOf('zoe'))?.owner).toBeUndefined();
    // The next run resumes with it.
    world.clock.advance(3600);
    const next = await world.run({ userName: 'zoe' });
    expect(next.output).toMatchObject({ action: 'RESUME', resumeStage: 'ADOPTION' });
    expect(await world.keysOf('zoe')).toEqual([{ id: newKey.accessKeyId, status: 'Active' }]);
    await world.drainNotifications();
  });

  it('the same event after a newer execution took the lock changes nothing', async () => {
    await rotatedOnce('abe');
    const { newKey } = await plannedAndCreated('abe', 'abe-stopped');
    // The stopped execution's lock expires (the state machine's timeout) and a newer one takes it.
    world.clock.advance(30 * 86_400);
    const newer = (await world.invokeStep('plan', {
      input: { userName: 'abe' },
      executionId: executionArn('abe-newer'),
    })) as Plan;
    // It marked the stopped one's never-handed-out key for its own create step to remove.
    expect(newer).toMatchObject({ action: 'ROTATE', orphanKey: { accessKeyId: newKey.accessKeyId } });
    const before = await world.snapshot();

    const result = await world.invokeStep('cleanup', aborted('abe-stopped', 'abe'));

    expect(result).toMatchObject({ acted: false, releasedLock: false, removedKeyIds: [] });
    expect(await world.snapshot()).toBe(before);
    expect((await lockOf('abe'))?.owner?.S).toBe(executionArn('abe-newer'));
  });
});
