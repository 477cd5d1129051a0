/**
 * The demo's core (runDemo) against a moto server of this test, and the real `rekey demo` as a
 * child process. The outcomes are read back from the emulator (keys, their dates and status,
 * the secrets, the old key's last use), not from what the demo printed or returned.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  GetAccessKeyLastUsedCommand,
  IAMClient,
  ListAccessKeysCommand,
  ListRolesCommand,
  ListUsersCommand,
} from '@aws-sdk/client-iam';
import {
  GetSecretValueCommand,
  ListSecretsCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { BuildMiddleware } from '@smithy/types';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDefinition } from '../../cli/definition.ts';
import { type DemoReport, runDemo } from '../../cli/demo.ts';
import { DEMO_ADMIN, DEMO_MEMBERS, DEMO_USERS, SAME_NAMED_USER } from '../../cli/demo-seed.ts';
import { type MotoClockServer, startMotoWithClock } from '../../cli/emulator.ts';
import { STEP_NAMES } from '../../contract/functions.ts';
import { DEFAULT_MEMBER_ROLE_PREFIX, MEMBER_LAMBDAS } from '../../contract/organization.ts';
import { isRunning } from '../support/moto.ts';

const REGION = 'us-east-1';
const DAY_MS = 86_400_000;

let moto: MotoClockServer;
let report: DemoReport;
let iam: IAMClient;
let secrets: SecretsManagerClient;
const progress: string[] = [];

interface Key {
  id: string;
  status: string;
  ageDays: number;
}

/** A user's keys as IAM has them now, oldest first, with their age in whole days. */
async function keysOf(userName: string): Promise<Key[]> {
  const out = await iam.send(new ListAccessKeysCommand({ UserName: userName }));
  return (out.AccessKeyMetadata ?? [])
    .map((k) => ({
      id: k.AccessKeyId ?? '',
      status: k.Status ?? '',
      ageDays: Math.floor((Date.now() - (k.CreateDate?.getTime() ?? 0)) / DAY_MS),
    }))
    .sort((a, b) => b.ageDays - a.ageDays);
}

async function current(userName: string): Promise<{ AccessKeyId: string; SecretAccessKey: string } | null> {
  try {
    const out = await secrets.send(
      new GetSecretValueCommand({ SecretId: `rekey/${userName}`, VersionStage: 'AWSCURRENT' }),
    );
    return JSON.parse(out.SecretString ?? 'null');
  } catch (error) {
    if ((error as Error).name === 'ResourceNotFoundException') return null;
    throw error;
  }
}

/** sts:GetCallerIdentity signed with the key, with moto checking signatures for this call. */
async function whoAmI(accessKeyId: string, secretAccessKey: string): Promise<string> {
  await moto.enableAuth();
  const sts = new STSClient({
    endpoint: moto.endpoint,
    region: REGION,
    credentials: { accessKeyId, secretAccessKey },
    maxAttempts: 1,
  });
  try {
    return (await sts.send(new GetCallerIdentityCommand({}))).Arn ?? '';
  } catch (error) {
    return (error as Error).name;
  } finally {
    sts.destroy();
    await moto.disableAuth();
  }
}

const seededAge = (userName: string) =>
  (DEMO_USERS.find((u) => u.userName === userName)?.keys ?? [])
    .map((k) => k.createdDaysAgo)
    .sort((a, b) => b - a);

/** The same clients acting in another account of the emulator (request signing off: moto takes the header). */
function inAccount<T extends IAMClient | SecretsManagerClient>(client: T, accountId: string): T {
  const stack = client.middlewareStack as unknown as {
    add(middleware: BuildMiddleware<object, object>, options: { step: 'build'; name: string }): void;
  };
  stack.add(
    (next) => async (args) => {
      (args.request as { headers: Record<string, string> }).headers['x-moto-account-id'] = accountId;
      return next(args);
    },
    { step: 'build', name: 'motoAccountId' },
  );
  return client;
}

beforeAll(async () => {
  moto = await startMotoWithClock();
  report = await runDemo({
    emulator: moto,
    definition: loadDefinition({ synth: false, log: () => {} }),
    log: (line) => progress.push(line),
  });
  // Read back with request signing off (the demo left it on and keeps its admin's key to itself);
  // the checks that a key works turn it on for their call only.
  await moto.disableAuth();
  const anybody = { accessKeyId: 'AKIATESTREADER000000', secretAccessKey: 'testing' };
  iam = new IAMClient({ endpoint: moto.endpoint, region: REGION, credentials: anybody, maxAttempts: 1 });
  secrets = new SecretsManagerClient({
    endpoint: moto.endpoint,
    region: REGION,
    credentials: anybody,
    maxAttempts: 1,
  });
}, 240_000);

afterAll(async () => {
  iam?.destroy();
  secrets?.destroy();
  await moto?.stop();
});

describe('runDemo against the emulator', () => {
  it('runs the audit and every step as its deployed role, not as its admin', async () => {
    const roles = ((await iam.send(new ListRolesCommand({}))).Roles ?? []).map((r) => r.RoleName ?? '');
    const lambdas = roles
      .filter((name) => name.startsWith('rekey-local-'))
      .map((name) => name.replace(/^rekey-local-|-[0-9a-f]{10}$/g, ''));

    // The rotations walked every step but the rollback (no verification failed) and the cleanup
    // (no execution failed, was stopped or timed out: the demo's users end rotated, stopped
    // safely, refused or reported).
    expect(lambdas.sort()).toEqual(
      [...STEP_NAMES.filter((step) => step !== 'reactivate-old-key' && step !== 'cleanup'), 'audit'].sort(),
    );
    expect(progress.join('\n')).toMatch(/Each of the \d+ Lambdas runs as its deployed role/);
  });

  it('seeds at least 20 users', async () => {
    const users = (await iam.send(new ListUsersCommand({}))).Users ?? [];

    expect(users.length).toBeGreaterThanOrEqual(21);
    expect(DEMO_USERS.length).toBeGreaterThanOrEqual(20);
    expect(users.map((u) => u.UserName).sort()).toEqual(
      [...DEMO_USERS.map((u) => u.userName), DEMO_ADMIN].sort(),
    );
  });

  it('completes rotations: the old key is gone, one new key is active, AWSCURRENT holds it and it works', async () => {
    const rotated = ['payments-api', 'orders-worker', 'legacy-ftp', 'old-unused-bot'];

    for (const userName of rotated) {
      const keys = await keysOf(userName);
      const stored = await current(userName);
      expect(keys, userName).toEqual([{ id: expect.any(String), status: 'Active', ageDays: 0 }]);
      expect(seededAge(userName)[0]).toBeGreaterThan(90);
      expect(stored?.AccessKeyId, userName).toBe(keys[0]?.id);
      expect(await whoAmI(stored?.AccessKeyId ?? '', stored?.SecretAccessKey ?? '')).toBe(
        `arn:aws:iam::123456789012:user/${userName}`,
      );
    }
    // Signing really is checked: a wrong secret for the same key id is refused.
    const stored = await current('payments-api');
    expect(await whoAmI(stored?.AccessKeyId ?? '', `x${stored?.SecretAccessKey}`)).toBe(
      'SignatureDoesNotMatch',
    );
  });

  it('removes an inactive, never-used extra key before rotating (ci-runner)', async () => {
    expect(seededAge('ci-runner')).toEqual([140, 30]);

    const keys = await keysOf('ci-runner');

    expect(keys).toEqual([{ id: (await current('ci-runner'))?.AccessKeyId, status: 'Active', ageDays: 0 }]);
  });

  it('stops safely when the consumer keeps using the old key: both keys active, the old one used after hand-out', async () => {
    const keys = await keysOf('billing-app');
    const stored = await current('billing-app');
    const [old, fresh] = keys;

    expect(keys.map((k) => [k.status, k.ageDays])).toEqual([
      ['Active', 160],
      ['Active', 0],
    ]);
    expect(stored?.AccessKeyId).toBe(fresh?.id);
    // The consumer's real, signed calls: the old key was last used after the new key existed.
    const lastUsed = await iam.send(new GetAccessKeyLastUsedCommand({ AccessKeyId: old?.id }));
    const newKeyCreated = (
      await iam.send(new ListAccessKeysCommand({ UserName: 'billing-app' }))
    ).AccessKeyMetadata?.find((k) => k.AccessKeyId === fresh?.id)?.CreateDate;
    expect(lastUsed.AccessKeyLastUsed?.LastUsedDate?.getTime()).toBeGreaterThanOrEqual(
      newKeyCreated?.getTime() ?? Infinity,
    );
    expect(lastUsed.AccessKeyLastUsed?.ServiceName).toBe('sts');
  });

  it('refuses a user with two active keys: both stay, both active, no secret', async () => {
    expect(await keysOf('ci-legacy')).toEqual([
      { id: expect.any(String), status: 'Active', ageDays: 300 },
      { id: expect.any(String), status: 'Active', ageDays: 110 },
    ]);
    expect(await current('ci-legacy')).toBeNull();
  });

  it.each([
    ['smtp-relay', 500],
    ['break-glass', 365],
  ])('leaves the exempt/protected user %s untouched', async (userName, age) => {
    expect(await keysOf(userName)).toEqual([{ id: expect.any(String), status: 'Active', ageDays: age }]);
    expect(await current(userName)).toBeNull();
  });

  it('stores secrets only for the users whose rotation created a key', async () => {
    const names = ((await secrets.send(new ListSecretsCommand({}))).SecretList ?? [])
      .map((s) => s.Name)
      .sort();

    expect(names).toEqual(
      [
        'payments-api',
        'orders-worker',
        'crm-sync',
        'etl-nightly',
        'legacy-ftp',
        'partner-gateway',
        'slack-notifier',
        'marketing-export',
        'old-unused-bot',
        'ci-runner',
        'billing-app',
      ]
        .map((u) => `rekey/${u}`)
        .sort(),
    );
  });

  it('reports what the emulator shows, with key ids masked in every printed line', async () => {
    const outcome = (userName: string) => report.users.find((u) => u.userName === userName);

    expect(outcome('payments-api')?.outcome).toBe('rotated');
    expect(outcome('billing-app')).toMatchObject({ outcome: 'stopped safely', why: 'old key still in use' });
    expect(outcome('ci-legacy')?.outcome).toBe('refused');
    expect(outcome('smtp-relay')).toMatchObject({
      outcome: 'refused',
      why: expect.stringMatching(/^exempt until 2099-12-31/),
    });
    expect(outcome('break-glass')).toMatchObject({ outcome: 'refused', why: 'protected user' });
    expect(report.checks.every((c) => c.ok)).toBe(true);
    expect(report.consumer?.calls).toBeGreaterThan(0);
    expect(report.consumer?.failures).toBe(0);
    expect(progress.join('\n')).not.toMatch(/AKIA[A-Z0-9]{16}/);
  });
});

describe('runDemo across the accounts of its organization', () => {
  const readers: Array<{ destroy(): void }> = [];
  afterAll(() => {
    for (const client of readers) client.destroy();
  });
  /** Read-back clients acting in a member account. */
  const member = (accountId: string) => {
    const config = {
      endpoint: moto.endpoint,
      region: REGION,
      credentials: { accessKeyId: 'AKIATESTREADER000000', secretAccessKey: 'testing' },
      maxAttempts: 1,
    };
    const clients = {
      iam: inAccount(new IAMClient(config), accountId),
      secrets: inAccount(new SecretsManagerClient(config), accountId),
    };
    readers.push(clients.iam, clients.secrets);
    return clients;
  };
  const accountOf = (name: string) => {
    const account = report.acrossAccounts.accounts.find((a) => a.name === name);
    if (!account) throw new Error(`no account ${name} in the report`);
    return account;
  };
  const due: Record<string, string[]> = {
    'workload-a': [SAME_NAMED_USER, 'orders-worker'],
    'workload-b': [SAME_NAMED_USER, 'data-lake-loader'],
  };

  it('audits both member accounts (not the hub), each scanned through its member audit role', () => {
    expect(report.acrossAccounts.hubAccountId).toBe('123456789012');
    expect(report.acrossAccounts.organizationId).toMatch(/^o-[a-z0-9]{10,32}$/);
    expect(report.acrossAccounts.accounts.map((a) => a.name).sort()).toEqual(['workload-a', 'workload-b']);
    for (const account of report.acrossAccounts.accounts) {
      expect(account.accountId).toMatch(/^\d{12}$/);
      expect(account.accountId).not.toBe('123456789012');
      // Its users and its administrator.
      expect(account).toMatchObject({ usersScanned: 4 });
      expect(account.error).toBeUndefined();
    }
    expect(progress.join('\n')).toMatch(/each member as its rekey-member-audit role/);
  });

  it('made the member roles of the synthesized member template in each member account', async () => {
    for (const { accountId } of report.acrossAccounts.accounts) {
      const roles = ((await member(accountId).iam.send(new ListRolesCommand({}))).Roles ?? []).map(
        (r) => r.RoleName,
      );
      expect(roles, accountId).toEqual(
        expect.arrayContaining(MEMBER_LAMBDAS.map((l) => `${DEFAULT_MEMBER_ROLE_PREFIX}${l}`)),
      );
    }
  });

  it.each(Object.entries(due))(
    'rotates the due users of %s in that account: one new active key, its secret there holds it and works',
    async (name, userNames) => {
      const { accountId } = accountOf(name);
      const { iam: memberIam, secrets: memberSecrets } = member(accountId);
      for (const userName of userNames) {
        const keys = (await memberIam.send(new ListAccessKeysCommand({ UserName: userName })))
          .AccessKeyMetadata;
        expect(
          keys?.map((k) => [k.Status, Math.floor((Date.now() - (k.CreateDate?.getTime() ?? 0)) / DAY_MS)]),
        ).toEqual([['Active', 0]]);
        const stored = JSON.parse(
          (
            await memberSecrets.send(
              new GetSecretValueCommand({ SecretId: `rekey/${userName}`, VersionStage: 'AWSCURRENT' }),
            )
          ).SecretString ?? '{}',
        );
        expect(stored.AccessKeyId, `${name} ${userName}`).toBe(keys?.[0]?.AccessKeyId);
        expect(await whoAmI(stored.AccessKeyId, stored.SecretAccessKey)).toBe(
          `arn:aws:iam::${accountId}:user/${userName}`,
        );
        expect(
          report.acrossAccounts.users.find((u) => u.accountId === accountId && u.userName === userName),
        ).toMatchObject({
          outcome: 'rotated',
          newKeyId: stored.AccessKeyId,
        });
      }
    },
  );

  it("leaves the members' users without a due rotation untouched: the seeded key, no secret", async () => {
    for (const spec of DEMO_MEMBERS) {
      const { accountId } = accountOf(spec.name);
      const { iam: memberIam, secrets: memberSecrets } = member(accountId);
      const names = ((await memberSecrets.send(new ListSecretsCommand({}))).SecretList ?? [])
        .map((s) => s.Name)
        .sort();
      expect(names, spec.name).toEqual((due[spec.name] ?? []).map((u) => `rekey/${u}`).sort());
      for (const user of spec.users.filter((u) => !due[spec.name]?.includes(u.userName))) {
        const keys = (await memberIam.send(new ListAccessKeysCommand({ UserName: user.userName })))
          .AccessKeyMetadata;
        expect(
          keys?.map((k) => Math.floor((Date.now() - (k.CreateDate?.getTime() ?? 0)) / DAY_MS)),
          `${spec.name} ${user.userName}`,
        ).toEqual(user.keys.map((k) => k.createdDaysAgo));
        expect(
          report.acrossAccounts.users.find((u) => u.accountId === accountId && u.userName === user.userName)
            ?.outcome,
        ).toBe('nothing to do');
      }
    }
  });

  it("leaves the hub's user of the same name as the single-account run left it", async () => {
    const hubUser = report.users.find((u) => u.userName === SAME_NAMED_USER);
    expect(hubUser?.outcome).toBe('rotated');
    const keys = await keysOf(SAME_NAMED_USER);
    expect(keys.map((k) => [k.id, k.status])).toEqual([[hubUser?.newKeyId, 'Active']]);
    expect((await current(SAME_NAMED_USER))?.AccessKeyId).toBe(hubUser?.newKeyId);
    // Not any member's key: each member's user of that name has a key of its own.
    const memberKeys = report.acrossAccounts.users
      .filter((u) => u.userName === SAME_NAMED_USER)
      .map((u) => u.newKeyId);
    expect(memberKeys).toHaveLength(2);
    expect(memberKeys).not.toContain(hubUser?.newKeyId);
    expect(report.acrossAccounts.checks.every((c) => c.ok)).toBe(true);
    expect(report.acrossAccounts.checks.map((c) => c.text).join('\n')).toMatch(
      /hub users' keys are as they were before the run across accounts$/m,
    );
  });
});

const BIN = fileURLToPath(new URL('../../bin/rekey.mjs', import.meta.url));

describe('rekey demo (child process)', () => {
  it('exits 0, prints the report table on stdout and progress on stderr, and leaves no emulator behind', async () => {
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [BIN, 'demo'],
        { env: process.env, timeout: 200_000 },
        (error, stdout, stderr) =>
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr }),
      );
    });

    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^\nUSER +FINDINGS +ACTION +KEY +NEW KEY +OUTCOME\n/);
    expect(run.stdout).toMatch(/^billing-app .* stopped safely: old key still in use$/m);
    expect(run.stdout).toMatch(
      /^Across accounts \(organization o-[a-z0-9]+, hub 123456789012\):\nACCOUNT +USER +FINDINGS/m,
    );
    expect(run.stdout).toMatch(/^workload-a \d{12} +payments-api +OLD_KEY 120d +rotation .* rotated$/m);
    expect(run.stdout).toMatch(/^workload-b \d{12} +data-lake-loader .* rotated$/m);
    expect(run.stdout).toMatch(
      /^6 users in 2 member accounts: 4 rotated, .* 2 with nothing to do, 0 failed\.$/m,
    );
    expect(run.stdout).not.toMatch(/AKIA[A-Z0-9]{16}/);
    // The handlers' metrics stay off a local run's stdout (no EMF line among the report).
    expect(run.stdout).not.toContain('CloudWatchMetrics');
    const pid = Number(/Emulator up at http:\/\/127\.0\.0\.1:\d+ \(pid (\d+)\)/.exec(run.stderr)?.[1]);
    expect(pid).toBeGreaterThan(0);
    expect(run.stderr).toMatch(new RegExp(`Emulator stopped \\(pid ${pid}\\)`));
    expect(isRunning(pid)).toBe(false);
  }, 210_000);
});
