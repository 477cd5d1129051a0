/**
 * `rekey audit --organization` (cli/audit-organization.ts) with mocked clients: the flags refused
 * before any AWS call, the accounts listed by listAccountsInScope and scanned each through its
 * own IAM client (the hub's with the caller's credentials, the others' with the role assumed
 * there), the --json shape, and a failing account reported while the others' findings still
 * print. The same command against moto's organization: test/workflow/audit-organization.test.ts.
 */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  GenerateCredentialReportCommand,
  GetAccountAuthorizationDetailsCommand,
  GetCredentialReportCommand,
  IAMClient,
  ListAccessKeysCommand,
} from '@aws-sdk/client-iam';
import {
  DescribeOrganizationCommand,
  ListAccountsCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentity } from '@smithy/types';
import { type AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import { Command, CommanderError } from 'commander';
import { beforeEach, describe, expect, it } from 'vitest';
import { auditCommand, parseAccountIds } from '../../cli/audit.ts';
import { SCAN_ROLE_ACTIONS } from '../../cli/audit-organization.ts';
import { ago, HEADER, reportRow } from '../lambdas/audit/helpers.ts';
import { fakeClock } from '../support/lambda-fixtures.ts';

const HUB = '111111111111';
const A = '222222222222';
const B = '333333333333';
const SUSPENDED = '444444444444';
const SECRET = 'assumed-secret-must-not-leak';

const organizations = new OrganizationsClient({ region: 'us-east-1' });
const organizationsMock = mockClient(organizations);
const sts = new STSClient({ region: 'us-east-1' });
const stsMock = mockClient(sts);

/** One IAM client (and its mock) per account: the client the command gets for that account's credentials. */
const iamOf = new Map<string, { client: IAMClient; mock: AwsClientStub<IAMClient> }>();
/** The account each IAM client was asked for: the caller's own (undefined credentials) is the hub. */
const asked: string[] = [];

function seedAccount(accountId: string, users: Array<{ user: string; created: number; used?: number }>) {
  const client = new IAMClient({ region: 'us-east-1' });
  const mock = mockClient(client);
  const csv = `${[
    HEADER,
    ...users.map((u) =>
      reportRow({
        user: u.user,
        arn: `arn:aws:iam::${accountId}:user/${u.user}`,
        key1: { created: u.created, ...(u.used === undefined ? {} : { used: u.used }) },
      }),
    ),
  ].join('\n')}\n`;
  mock.on(GenerateCredentialReportCommand).resolves({ State: 'COMPLETE' });
  mock.on(GetCredentialReportCommand).resolves({ Content: new TextEncoder().encode(csv) });
  mock
    .on(GetAccountAuthorizationDetailsCommand)
    .resolves({ UserDetailList: users.map((u) => ({ UserName: u.user })) });
  mock.on(ListAccessKeysCommand).callsFake((input: { UserName: string }) => ({
    AccessKeyMetadata: [
      {
        UserName: input.UserName,
        AccessKeyId: `AKIA${accountId.slice(0, 4)}${input.UserName.toUpperCase().padEnd(12, '0')}`,
        Status: 'Active',
        CreateDate: ago(users.find((u) => u.user === input.UserName)?.created ?? 0),
      },
    ],
  }));
  iamOf.set(accountId, { client, mock });
}

function iamClient(credentials: AwsCredentialIdentity | undefined): IAMClient {
  // The assumed role's key id names its account (see the AssumeRole mock below).
  const accountId = credentials ? credentials.accessKeyId.replace('ASIA', '') : HUB;
  asked.push(accountId);
  const entry = iamOf.get(accountId);
  if (!entry) throw new Error(`no IAM client for ${accountId}`);
  return entry.client;
}

beforeEach(() => {
  organizationsMock.reset();
  stsMock.reset();
  iamOf.clear();
  asked.length = 0;
  organizationsMock
    .on(DescribeOrganizationCommand)
    .resolves({ Organization: { Id: 'o-abcdefghij', MasterAccountId: HUB } });
  organizationsMock.on(ListAccountsCommand).resolves({
    Accounts: [
      { Id: B, Name: 'workload-b', Status: 'ACTIVE' },
      { Id: HUB, Name: 'hub', Status: 'ACTIVE' },
      { Id: SUSPENDED, Name: 'closed', Status: 'SUSPENDED' },
      { Id: A, Name: 'workload-a', Status: 'ACTIVE' },
    ],
  });
  stsMock.on(GetCallerIdentityCommand).resolves({ Account: HUB, Arn: `arn:aws:iam::${HUB}:user/auditor` });
  stsMock.on(AssumeRoleCommand).callsFake((input: { RoleArn: string }) => ({
    Credentials: {
      AccessKeyId: `ASIA${input.RoleArn.split(':')[4]}`,
      SecretAccessKey: SECRET,
      SessionToken: 'token',
      Expiration: new Date(Date.now() + 3_600_000),
    },
  }));
  seedAccount(HUB, [{ user: 'hub-old', created: 120, used: 1 }]);
  seedAccount(A, [
    { user: 'a-old', created: 100, used: 1 },
    { user: 'a-fresh', created: 5, used: 1 },
  ]);
  seedAccount(B, [{ user: 'b-unused', created: 60 }]);
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `rekey audit ...args` as a subcommand of the `rekey` program, as cli/main.ts runs it. */
async function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  let code = 0;
  const command = auditCommand({
    organizations,
    sts,
    iamClient,
    clock: fakeClock(),
    env,
    setExitCode: (c) => {
      code = c;
    },
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
  }).configureOutput({
    writeOut: (t) => {
      stdout += t;
    },
    writeErr: (t) => {
      stderr += t;
    },
  });
  const program = new Command('rekey').exitOverride().addCommand(command);
  try {
    await program.parseAsync(['node', 'rekey', 'audit', ...args]);
    return { code, stdout, stderr };
  } catch (error) {
    if (error instanceof CommanderError) return { code: error.exitCode, stdout, stderr };
    throw error;
  }
}

const noAwsCall = () => {
  expect(organizationsMock.calls()).toHaveLength(0);
  expect(stsMock.calls()).toHaveLength(0);
  expect(asked).toEqual([]);
};

describe('rekey audit --organization: the flags', () => {
  it.each([
    [['--accounts', '12345'], 'not an account id (12 digits): "12345"'],
    [['--accounts', `${A},abc,${B}`], 'not an account id (12 digits): "abc"'],
    [['--accounts', ' , '], 'name at least one account id'],
    [['--role-name', 'a/b'], 'must be an IAM role name'],
    [['--concurrency', '0'], 'must be between 1 and 32'],
  ])('%j is refused with exit 1 before any AWS call', async (flags, message) => {
    const { code, stderr, stdout } = await run(['--organization', ...flags]);
    expect(code).toBe(1);
    expect(stderr).toContain(message);
    expect(stdout).toBe('');
    noAwsCall();
  });

  it('--accounts, --role-name and --concurrency without --organization are refused', async () => {
    const { code, stderr } = await run(['--accounts', A, '--concurrency', '2']);
    expect(code).toBe(1);
    expect(stderr).toContain('--accounts, --concurrency only with --organization');
    noAwsCall();
  });

  it('parseAccountIds trims, drops empty entries and duplicates', () => {
    expect(parseAccountIds(` ${A}, ${B},,${A} `)).toEqual([A, B]);
  });

  it('ids not in the organization or not scannable are refused, named, before any scan', async () => {
    await expect(run(['--organization', '--accounts', `${A},${SUSPENDED},999999999999`])).rejects.toThrow(
      `not audited, out of scope: ${SUSPENDED} (account ${SUSPENDED} is SUSPENDED, not ACTIVE); ` +
        '999999999999 (account 999999999999 is not in the organization)',
    );
    expect(stsMock.commandCalls(AssumeRoleCommand)).toHaveLength(0);
    expect(asked).toEqual([]);
  });

  it('REKEY_ORGANIZATION_SCOPE narrows the organization as the deployed Lambdas read it', async () => {
    const scope = {
      include: { accounts: [], organizationalUnits: [] },
      exclude: { accounts: [B], organizationalUnits: [] },
    };
    const { code, stdout, stderr } = await run(['--organization', '--json', '--no-service-credentials'], {
      REKEY_ORGANIZATION_SCOPE: JSON.stringify(scope),
    });
    expect(code).toBe(0);
    expect(JSON.parse(stdout).accounts.map((a: { accountId: string }) => a.accountId)).toEqual([HUB, A]);
    expect(stderr).toContain(`Not scanned: ${B} (account ${B} is excluded)`);
    await expect(
      run(['--organization', '--accounts', B], { REKEY_ORGANIZATION_SCOPE: JSON.stringify(scope) }),
    ).rejects.toThrow(`${B} (account ${B} is excluded)`);
  });
});

describe('rekey audit --organization: the scan', () => {
  it('--json: every finding with its accountId, one entry per account; the hub with the caller, the others as the role', async () => {
    const { code, stdout, stderr } = await run(['--organization', '--json', '--no-service-credentials']);

    expect(code).toBe(0);
    const document = JSON.parse(stdout);
    expect(Object.keys(document)).toEqual(['findings', 'accounts']);
    expect(document.findings).toEqual([
      {
        accountId: HUB,
        type: 'OLD_KEY',
        userName: 'hub-old',
        accessKeyId: `AKIA1111HUB-OLD00000`,
        ageDays: 120,
        lastUsedDate: ago(1).toISOString(),
      },
      {
        accountId: A,
        type: 'OLD_KEY',
        userName: 'a-old',
        accessKeyId: 'AKIA2222A-OLD0000000',
        ageDays: 100,
        lastUsedDate: ago(1).toISOString(),
      },
      {
        accountId: B,
        type: 'UNUSED_KEY',
        userName: 'b-unused',
        accessKeyId: 'AKIA3333B-UNUSED0000',
        ageDays: 60,
        lastUsedDate: null,
      },
    ]);
    expect(document.accounts).toEqual([
      { accountId: HUB, usersScanned: 1, findings: 1 },
      { accountId: A, usersScanned: 2, findings: 1 },
      { accountId: B, usersScanned: 1, findings: 1 },
    ]);
    // The hub with the caller's own credentials; A and B as OrganizationAccountAccessRole there.
    expect(asked.sort()).toEqual([HUB, A, B].sort());
    expect(
      stsMock
        .commandCalls(AssumeRoleCommand)
        .map((c) => c.args[0].input.RoleArn)
        .sort(),
    ).toEqual([
      `arn:aws:iam::${A}:role/OrganizationAccountAccessRole`,
      `arn:aws:iam::${B}:role/OrganizationAccountAccessRole`,
    ]);
    for (const accountId of [HUB, A, B])
      expect(iamOf.get(accountId)?.mock.commandCalls(GetCredentialReportCommand)).toHaveLength(1);
    expect(stderr).toContain(`Not scanned: ${SUSPENDED} (account ${SUSPENDED} is SUSPENDED, not ACTIVE)`);
    expect(stderr).toMatch(new RegExp(`\\[\\d/3\\] ${A}: 2 users, 1 findings`));
    expect(stderr).toContain('3 of 3 account(s) scanned, 3 findings, 0 failed');
    expect(stdout + stderr).not.toContain(SECRET);
  });

  it('--accounts and --role-name: only those accounts, through that role', async () => {
    const { code, stdout } = await run([
      '--organization',
      '--json',
      '--no-service-credentials',
      '--accounts',
      B,
      '--role-name',
      'auditor',
    ]);
    expect(code).toBe(0);
    expect(JSON.parse(stdout).accounts).toEqual([{ accountId: B, usersScanned: 1, findings: 1 }]);
    expect(stsMock.commandCalls(AssumeRoleCommand).map((c) => c.args[0].input.RoleArn)).toEqual([
      `arn:aws:iam::${B}:role/auditor`,
    ]);
    expect(asked).toEqual([B]);
  });

  it('an account whose role is refused: reported, the others still printed, exit 1', async () => {
    stsMock
      .on(AssumeRoleCommand, { RoleArn: `arn:aws:iam::${A}:role/OrganizationAccountAccessRole` })
      .rejects(
        Object.assign(new Error(`User auditor is not authorized to perform sts:AssumeRole on ${A}`), {
          name: 'AccessDenied',
        }),
      );
    const { code, stdout, stderr } = await run(['--organization', '--json', '--no-service-credentials']);

    expect(code).toBe(1);
    const document = JSON.parse(stdout);
    expect(document.findings.map((f: { accountId: string }) => f.accountId)).toEqual([HUB, B]);
    expect(document.accounts[1]).toEqual({
      accountId: A,
      usersScanned: 0,
      findings: 0,
      error: {
        name: 'ScanRoleUnavailable',
        message: expect.stringContaining(
          `cannot scan account ${A}: the role arn:aws:iam::${A}:role/OrganizationAccountAccessRole is missing or cannot be assumed (AccessDenied: User auditor is not authorized`,
        ),
      },
    });
    expect(stderr).toMatch(new RegExp(`\\[\\d/3\\] ${A}: failed: cannot scan account ${A}`));
    expect(stderr).toContain(`rekey: 1 account(s) not scanned: ${A}`);
  });

  it('an IAM error in one account fails that account only; the table shows each account', async () => {
    iamOf
      .get(B)
      ?.mock.on(GetAccountAuthorizationDetailsCommand)
      .rejects(
        Object.assign(new Error('not authorized to perform iam:GetAccountAuthorizationDetails'), {
          name: 'AccessDenied',
        }),
      );
    const { code, stdout } = await run(['--organization', '--no-service-credentials']);
    expect(code).toBe(1);
    expect(stdout).toContain(`Account ${HUB} (hub)\nTYPE`);
    expect(stdout).toContain(`\n\nAccount ${A} (workload-a)\nTYPE`);
    expect(stdout).toContain('a-old');
    expect(stdout).toContain(
      `\n\nAccount ${B} (workload-b)\nNot scanned: AccessDenied: not authorized to perform iam:GetAccountAuthorizationDetails\n`,
    );
  });

  it('--fail-on counts the findings of every account: exit 3', async () => {
    const { code, stderr } = await run([
      '--organization',
      '--no-service-credentials',
      '--fail-on',
      'UNUSED_KEY',
    ]);
    expect(code).toBe(3);
    expect(stderr).toContain('rekey: 1 finding(s) of type UNUSED_KEY (--fail-on)');
  });

  it('--concurrency 1 scans one account at a time, in order', async () => {
    const { code, stderr } = await run(['--organization', '--no-service-credentials', '--concurrency', '1']);
    expect(code).toBe(0);
    const lines = stderr.split('\n').filter((l) => /^\[\d\/3\]/.test(l));
    expect(lines).toEqual([
      `[1/3] ${HUB}: 1 users, 1 findings`,
      `[2/3] ${A}: 2 users, 1 findings`,
      `[3/3] ${B}: 1 users, 1 findings`,
    ]);
  });
});

describe('docs/cli.md', () => {
  it('lists every IAM action the scan role needs', () => {
    const doc = readFileSync(join(import.meta.dirname, '../../docs/cli.md'), 'utf8');
    for (const action of SCAN_ROLE_ACTIONS) expect(doc).toContain(action);
  });
});
