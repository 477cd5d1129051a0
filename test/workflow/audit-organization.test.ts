/**
 * `rekey audit --organization` against moto's organization (request signing on), as a user runs
 * it: the hub administrator's credentials and AWS_ENDPOINT_URL in the environment, the command's
 * clients from the SDK's default chain. Two members hold a role of only the scan's IAM reads
 * (SCAN_ROLE_ACTIONS, made here with each member's administrator: moto does not check trust
 * policies), and users whose keys were made 120 days ago (moto's clock moved back); the third
 * member has no such role. The findings of each member must carry that member's account id, and
 * the member without the role must be reported, with exit 1, while the others' findings print.
 */
import { CreateRoleCommand, PutRolePolicyCommand } from '@aws-sdk/client-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditCommand } from '../../cli/audit.ts';
import { SCAN_ROLE_ACTIONS } from '../../cli/audit-organization.ts';
import { startWorld, type World, type WorldAccount } from './harness.ts';

const ROLE = 'rekey-cli-auditor';
const DAY = 86_400;

let world: World;
let hub: WorldAccount;
let a: WorldAccount;
let b: WorldAccount;
/** Has no ROLE. */
let c: WorldAccount;

beforeAll(async () => {
  world = await startWorld({ organization: { members: 3 }, quiet: true });
  [hub, a, b, c] = world.accounts as [WorldAccount, WorldAccount, WorldAccount, WorldAccount];
  for (const member of [a, b]) {
    await member.iam.send(
      new CreateRoleCommand({
        RoleName: ROLE,
        AssumeRolePolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Principal: { AWS: `arn:aws:iam::${hub.accountId}:root` },
              Action: 'sts:AssumeRole',
            },
          ],
        }),
      }),
    );
    await member.iam.send(
      new PutRolePolicyCommand({
        RoleName: ROLE,
        PolicyName: 'scan',
        PolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: [...SCAN_ROLE_ACTIONS], Resource: '*' }],
        }),
      }),
    );
  }
  // Keys made 120 days ago (never used since): OLD_KEY and UNUSED_KEY.
  world.clock.advance(-120 * DAY);
  try {
    await a.createUser('alice');
    await b.createUser('bob');
    await c.createUser('carol');
    await hub.createUser('hubert');
  } finally {
    world.clock.advance(120 * DAY);
  }
}, 180_000);

afterAll(async () => {
  await world?.stop();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function rekeyAudit(args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  let code = 0;
  // No clients given: the command's own, from the environment startWorld set (endpoint, hub admin).
  await auditCommand({
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    setExitCode: (n) => {
      code = n;
    },
  }).parseAsync(args, { from: 'user' });
  return { code, stdout, stderr };
}

interface Document {
  findings: Array<{
    accountId: string;
    type: string;
    userName: string;
    accessKeyId: string;
    ageDays: number;
  }>;
  accounts: Array<{
    accountId: string;
    usersScanned: number;
    findings: number;
    error?: { name: string; message: string };
  }>;
}

describe('rekey audit --organization against moto', () => {
  it('scans the two members through the role, each finding with its account; the member without it fails, exit 1', async () => {
    const { code, stdout, stderr } = await rekeyAudit([
      '--organization',
      '--json',
      '--no-service-credentials',
      '--role-name',
      ROLE,
    ]);

    expect(code).toBe(1);
    const document = JSON.parse(stdout) as Document;
    // Each member's administrator (cli/emulator-organization.ts) last used its key while the clock
    // was 120 days back (it made the users): UNUSED_KEY too, in that member's account.
    expect(document.findings.map((f) => `${f.accountId} ${f.type} ${f.userName} ${f.ageDays}`)).toEqual([
      `${hub.accountId} OLD_KEY hubert 120`,
      `${hub.accountId} UNUSED_KEY hubert 120`,
      ...[a, b]
        .sort((x, y) => x.accountId.localeCompare(y.accountId))
        .flatMap((m) => {
          const user = m === a ? 'alice' : 'bob';
          return [
            `${m.accountId} OLD_KEY ${user} 120`,
            `${m.accountId} UNUSED_KEY ${user} 120`,
            `${m.accountId} UNUSED_KEY rekey-demo-admin 0`,
          ];
        }),
    ]);
    const oldKeys = document.findings.filter((f) => f.type === 'OLD_KEY');
    expect(oldKeys.find((f) => f.userName === 'alice')?.accessKeyId).toBe((await a.keysOf('alice'))[0]?.id);
    expect(oldKeys.find((f) => f.userName === 'bob')?.accessKeyId).toBe((await b.keysOf('bob'))[0]?.id);
    expect(document.findings.some((f) => f.userName === 'carol')).toBe(false);

    // The hub first, then the members by id.
    expect(document.accounts.map((x) => x.accountId)).toEqual([
      hub.accountId,
      ...[a, b, c].map((x) => x.accountId).sort(),
    ]);
    const failed = document.accounts.filter((x) => x.error);
    expect(failed).toEqual([
      {
        accountId: c.accountId,
        usersScanned: 0,
        findings: 0,
        error: {
          name: 'ScanRoleUnavailable',
          message: expect.stringContaining(
            `cannot scan account ${c.accountId}: the role arn:aws:iam::${c.accountId}:role/${ROLE} is missing`,
          ),
        },
      },
    ]);
    for (const member of [a, b])
      expect(document.accounts.find((x) => x.accountId === member.accountId)).toEqual({
        accountId: member.accountId,
        usersScanned: 2,
        findings: 3,
      });
    expect(stderr).toMatch(new RegExp(`\\[\\d/4\\] ${c.accountId}: failed: cannot scan account`));
    expect(stderr).toContain(`rekey: 1 account(s) not scanned: ${c.accountId}`);
    expect(stderr).toContain('3 of 4 account(s) scanned');
    const secrets = await world.knownSecrets();
    for (const secret of secrets) expect(stdout + stderr).not.toContain(secret);
  });

  it('--accounts: only those members; an id not in the organization is refused before any scan', async () => {
    const only = await rekeyAudit([
      '--organization',
      '--json',
      '--no-service-credentials',
      '--role-name',
      ROLE,
      '--accounts',
      `${b.accountId},${a.accountId}`,
    ]);
    expect(only.code).toBe(0);
    const document = JSON.parse(only.stdout) as Document;
    expect(document.accounts.map((x) => x.accountId)).toEqual([a.accountId, b.accountId].sort());
    expect([...new Set(document.findings.map((f) => f.accountId))]).toEqual(
      [a.accountId, b.accountId].sort(),
    );

    await expect(
      rekeyAudit(['--organization', '--no-service-credentials', '--accounts', `${a.accountId},999999999999`]),
    ).rejects.toThrow('999999999999 (account 999999999999 is not in the organization)');
  });
});
