/**
 * The plan's check of a member account a request names (lambdas/shared/organization-membership.ts),
 * before any call into that account: Organizations is mocked (moto answers no ARN organization
 * mismatch, no throttling), IAM too, to prove none of its calls happen when the account is refused.
 */
import { GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { GetUserCommand, ListAccessKeysCommand } from '@aws-sdk/client-iam';
import {
  AccountNotFoundException,
  DescribeAccountCommand,
  ListParentsCommand,
  TooManyRequestsException,
} from '@aws-sdk/client-organizations';
import { AssumeRoleCommand } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AccountRefused } from '../../../../contract/errors.ts';
import { STEPS } from '../../../../contract/functions.ts';
import { Plan, RotationInput } from '../../../../contract/schemas.ts';
import { type PlanEnv, planRotation } from '../../../../lambdas/rotation/plan/plan.ts';
import { memberAccountFor } from '../../../../lambdas/shared/clients/account-context.ts';
import { memberSts } from '../../../../lambdas/shared/clients/member-sts.ts';
import { organizations } from '../../../../lambdas/shared/clients/organizations.ts';
import { dynamodb, iam, secretsManager } from '../../../../lambdas/shared/clients.ts';
import { lockSubject } from '../../../../lambdas/shared/lock.ts';
import { forgetMemberSessions } from '../../../../lambdas/shared/member-account.ts';
import { secretNameFor } from '../../../../lambdas/shared/secret.ts';
import {
  ACCOUNT,
  callOrder,
  daysAgo,
  EXECUTION_ID,
  fakeClock,
  LOCK_TABLE,
  OLD_KEY_ID,
  rejectionOf,
  silenceLogs,
  USER,
} from '../../../support/lambda-fixtures.ts';

const MEMBER = '210987654321';
const ORG = 'o-abcdefghij';
const ROOT = 'r-ab12';
const OU = 'ou-ab12-cdefghij';
const INNER_OU = 'ou-ab12-klmnopqr';

const iamMock = mockClient(iam);
const ddbMock = mockClient(dynamodb);
const smMock = mockClient(secretsManager);
const orgMock = mockClient(organizations);
const stsMock = mockClient(memberSts);

const scope = (s: { include?: string[]; exclude?: string[]; includeOus?: string[]; excludeOus?: string[] }) =>
  JSON.stringify({
    include: { accounts: s.include ?? [], organizationalUnits: s.includeOus ?? [] },
    exclude: { accounts: s.exclude ?? [], organizationalUnits: s.excludeOus ?? [] },
  });

const ENV: PlanEnv = {
  REKEY_SECRET_PREFIX: 'rekey/',
  REKEY_LOCK_TTL_SECONDS: 86_400,
  REKEY_EXEMPT_TAG: 'rekey:exempt',
  REKEY_OWNER_TAG: 'rekey:owner',
  REKEY_PROTECTED_USERS: [],
  REKEY_USER_PATH_PREFIX: '/',
  REKEY_OPT_IN_TAG: undefined,
  REKEY_HUB_ACCOUNT_ID: ACCOUNT,
  REKEY_SECRETS_LOCATION: 'member',
  REKEY_ORGANIZATION_ID: ORG,
  REKEY_ORGANIZATION_SCOPE: scope({}),
};

const deps = (env: Partial<PlanEnv> = {}) => ({
  iam,
  secretsManager,
  lock: { dynamodb, table: LOCK_TABLE },
  clock: fakeClock(),
  env: { ...ENV, ...env },
});
const request = (input: Record<string, unknown>) => ({
  input: { userName: USER, ...input },
  executionId: EXECUTION_ID,
});

function mockAccount(status = 'ACTIVE', organizationId = ORG): void {
  orgMock.on(DescribeAccountCommand).resolves({
    Account: {
      Id: MEMBER,
      Arn: `arn:aws:organizations::${ACCOUNT}:account/${organizationId}/${MEMBER}`,
      Status: status as never,
    },
  });
}

/** MEMBER in INNER_OU, in OU, under ROOT. */
function mockParents(): void {
  orgMock
    .on(ListParentsCommand, { ChildId: MEMBER })
    .resolves({ Parents: [{ Id: INNER_OU, Type: 'ORGANIZATIONAL_UNIT' }] });
  orgMock
    .on(ListParentsCommand, { ChildId: INNER_OU })
    .resolves({ Parents: [{ Id: OU, Type: 'ORGANIZATIONAL_UNIT' }] });
  orgMock.on(ListParentsCommand, { ChildId: OU }).resolves({ Parents: [{ Id: ROOT, Type: 'ROOT' }] });
}

/** The member account context each IAM call ran in (lambdas/shared/clients/account-context.ts). */
let contexts: { accountId: string; roleArn: string }[] = [];
function seen(): void {
  const context = memberAccountFor('iam');
  contexts.push(
    context ? { accountId: context.accountId, roleArn: context.roleArn } : { accountId: 'hub', roleArn: '' },
  );
}

/** An active member: only the scope can refuse it. */
function activeMember(): void {
  mockAccount();
  mockParents();
}

function mockMemberUser(): void {
  stsMock.on(AssumeRoleCommand).resolves({
    Credentials: {
      AccessKeyId: 'ASIAMEMBER0000000001',
      SecretAccessKey: 'member-secret-test',
      SessionToken: 'token',
      Expiration: new Date(Date.now() + 3_600_000),
    },
  });
  iamMock.on(GetUserCommand).callsFake(() => {
    seen();
    return { User: { UserName: USER, Arn: `arn:aws:iam::${MEMBER}:user/${USER}`, Path: '/' } };
  });
  iamMock.on(ListAccessKeysCommand).callsFake(() => {
    seen();
    return {
      AccessKeyMetadata: [
        { UserName: USER, AccessKeyId: OLD_KEY_ID, Status: 'Active', CreateDate: daysAgo(100) },
      ],
    };
  });
  ddbMock.on(GetItemCommand).resolves({});
  ddbMock.on(UpdateItemCommand).resolves({
    Attributes: {
      userName: { S: `${MEMBER}:${USER}` },
      owner: { S: EXECUTION_ID },
      expiresAt: { N: '9999999999' },
    },
  });
}

beforeEach(() => {
  silenceLogs();
  for (const m of [iamMock, ddbMock, smMock, orgMock, stsMock]) m.reset();
  forgetMemberSessions();
  contexts = [];
  // inAccount reads these itself (lambdas/shared/member-account.ts).
  vi.stubEnv('REKEY_HUB_ACCOUNT_ID', ACCOUNT);
  vi.stubEnv('REKEY_MEMBER_ROLE_PREFIX', 'rekey-member-');
  vi.stubEnv('REKEY_SECRETS_LOCATION', 'member');
});
afterEach(() => {
  vi.unstubAllEnvs();
});

describe('RotationInput accountId', () => {
  it.each([
    ['11 digits', '21098765432'],
    ['13 digits', '2109876543210'],
    ['letters', '21098765432a'],
    ['a number', 210987654321],
    ['empty', ''],
  ])('refuses %s', (_label, accountId) => {
    const parsed = RotationInput.safeParse({ userName: USER, accountId });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(['accountId']);
    expect(parsed.error?.issues[0]?.message).toMatch(/accountId must be (a string of )?12 digits/);
  });

  it('accepts 12 digits', () => {
    expect(RotationInput.parse({ userName: USER, accountId: MEMBER }).accountId).toBe(MEMBER);
  });
});

describe('planRotation: the account it acts in', () => {
  it('the hub account, named or not: no Organizations call, no AssumeRole, the hub in the plan', async () => {
    mockMemberUser();
    for (const input of [{}, { accountId: ACCOUNT }]) {
      const plan = await planRotation(deps(), request({ ...input, dryRun: true }));
      expect(Plan.parse(plan).accountId).toBe(ACCOUNT);
      expect(plan.secretName).toBe(`rekey/${USER}`);
    }
    expect(orgMock.calls()).toHaveLength(0);
    expect(stsMock.calls()).toHaveLength(0);
  });

  it('a member account without the organization option: AccountRefused, no call at all', async () => {
    const error = await rejectionOf(
      planRotation(deps({ REKEY_ORGANIZATION_ID: undefined }), request({ accountId: MEMBER })),
    );
    expect(error).toBeInstanceOf(AccountRefused);
    expect(error.name).toBe('AccountRefused');
    expect(error.message).toContain(MEMBER);
    expect(error.message).toContain('the organization option is not set');
    expect(orgMock.calls()).toHaveLength(0);
    expect(iamMock.calls()).toHaveLength(0);
    expect(stsMock.calls()).toHaveLength(0);
    expect(ddbMock.calls()).toHaveLength(0);
  });

  const refusals: [string, () => void, Partial<PlanEnv>, string][] = [
    [
      'an account unknown to the organization',
      () =>
        orgMock
          .on(DescribeAccountCommand)
          .rejects(new AccountNotFoundException({ message: 'no', $metadata: {} })),
      {},
      `account ${MEMBER} is not in the organization ${ORG}`,
    ],
    ['a suspended account', () => mockAccount('SUSPENDED'), {}, `account ${MEMBER} is suspended, not active`],
    [
      'an account of another organization',
      () => mockAccount('ACTIVE', 'o-zzzzzzzzzz'),
      {},
      `account ${MEMBER} is in the organization o-zzzzzzzzzz, not ${ORG}`,
    ],
    [
      'an excluded account',
      activeMember,
      { REKEY_ORGANIZATION_SCOPE: scope({ exclude: [MEMBER] }) },
      `account ${MEMBER} is excluded`,
    ],
    [
      'an account below an excluded OU (an ancestor, not its parent)',
      activeMember,
      { REKEY_ORGANIZATION_SCOPE: scope({ excludeOus: [OU] }) },
      `account ${MEMBER} is in the excluded organizational unit ${OU}`,
    ],
    [
      'an account in none of the included accounts and OUs',
      activeMember,
      { REKEY_ORGANIZATION_SCOPE: scope({ include: ['111111111111'], includeOus: ['ou-ab12-zzzzzzzz'] }) },
      `account ${MEMBER} is in none of the included accounts and organizational units`,
    ],
  ];
  it.each(refusals)(
    '%s: AccountRefused naming the reason, no call into the account',
    async (_l, prepare, env, reason) => {
      prepare();
      const error = await rejectionOf(planRotation(deps(env), request({ accountId: MEMBER })));
      expect(error).toBeInstanceOf(AccountRefused);
      expect(error.message).toBe(`rekey does not act in account ${MEMBER}: ${reason}`);
      expect(iamMock.calls()).toHaveLength(0);
      expect(smMock.calls()).toHaveLength(0);
      expect(stsMock.calls()).toHaveLength(0);
      // Nothing locked.
      expect(ddbMock.calls()).toHaveLength(0);
    },
  );

  it('throttling by Organizations stays what it is (the state machine retries it), not AccountRefused', async () => {
    orgMock
      .on(DescribeAccountCommand)
      .rejects(new TooManyRequestsException({ message: 'slow down', $metadata: {} }));
    const error = await rejectionOf(planRotation(deps(), request({ accountId: MEMBER })));
    expect(error).not.toBeInstanceOf(AccountRefused);
    expect(error.name).toBe('TooManyRequestsException');
    expect(iamMock.calls()).toHaveLength(0);
  });

  it('an account in scope (an included ancestor OU): plans as its member role, the lock and secret per account', async () => {
    mockAccount();
    mockParents();
    mockMemberUser();
    const plan = await planRotation(
      deps({ REKEY_ORGANIZATION_SCOPE: scope({ includeOus: [OU] }) }),
      request({ accountId: MEMBER }),
    );
    expect(plan.action).toBe('ROTATE');
    expect(plan.accountId).toBe(MEMBER);
    // secrets: member: the usual name, in the member account.
    expect(plan.secretName).toBe(`rekey/${USER}`);
    // A mocked client never signs, so no AssumeRole is made here (the workflow tests make it):
    // every IAM call ran inside the member account's context, with the plan's member role.
    expect(contexts.length).toBeGreaterThan(0);
    for (const context of contexts) {
      expect(context).toEqual({
        accountId: MEMBER,
        roleArn: `arn:aws:iam::${MEMBER}:role/rekey-member-plan`,
      });
    }
    const lockKeys = ddbMock.calls().map((c) => (c.args[0].input as { Key?: unknown }).Key);
    expect(lockKeys).toContainEqual({ userName: { S: `${MEMBER}:${USER}` } });
  });

  it('its member path makes exactly STEPS.plan.calls calls: the account check and AssumeRole added to the hub path', async () => {
    mockAccount();
    // Five OUs deep: six ListParents to the root.
    const chain = [
      'ou-ab12-aaaaaaa1',
      'ou-ab12-aaaaaaa2',
      'ou-ab12-aaaaaaa3',
      'ou-ab12-aaaaaaa4',
      'ou-ab12-aaaaaaa5',
    ];
    let child = MEMBER;
    for (const ou of chain) {
      orgMock
        .on(ListParentsCommand, { ChildId: child })
        .resolves({ Parents: [{ Id: ou, Type: 'ORGANIZATIONAL_UNIT' }] });
      child = ou;
    }
    orgMock.on(ListParentsCommand, { ChildId: child }).resolves({ Parents: [{ Id: ROOT, Type: 'ROOT' }] });
    mockMemberUser();
    await planRotation(deps(), request({ accountId: MEMBER }));
    // DescribeAccount and six ListParents; the AssumeRole, the eighth, is made when a client signs,
    // which a mocked one never does (test/lambdas/shared/member-account.test.ts counts it).
    const member = callOrder(orgMock);
    expect(member).toEqual(['DescribeAccount', ...Array(6).fill('ListParents')]);
    expect(member).toHaveLength(STEPS.plan.memberAccountCalls - 1);
  });
});

describe('per-account names', () => {
  it('the hub account keeps the single-account names exactly', () => {
    const hub = { accountId: ACCOUNT, hubAccountId: ACCOUNT, secrets: 'hub' as const };
    expect(lockSubject(USER, undefined, hub)).toBe(USER);
    expect(lockSubject(USER, 'cassandra.amazonaws.com', hub)).toBe(`${USER}/cassandra.amazonaws.com`);
    expect(secretNameFor('rekey/', USER, undefined, hub)).toBe(`rekey/${USER}`);
    expect(lockSubject(USER)).toBe(USER);
  });

  it('a member account: the lock names the account; the secret is per account only in the hub', () => {
    const place = { accountId: MEMBER, hubAccountId: ACCOUNT };
    expect(lockSubject(USER, undefined, place)).toBe(`${MEMBER}:${USER}`);
    expect(lockSubject(USER, 'codecommit.amazonaws.com', place)).toBe(
      `${MEMBER}:${USER}/codecommit.amazonaws.com`,
    );
    expect(secretNameFor('rekey/', USER, undefined, { ...place, secrets: 'member' })).toBe(`rekey/${USER}`);
    expect(secretNameFor('rekey/', USER, undefined, { ...place, secrets: 'hub' })).toBe(
      `rekey/accounts/${MEMBER}/${USER}`,
    );
    expect(secretNameFor('rekey/', USER, 'cassandra.amazonaws.com', { ...place, secrets: 'hub' })).toBe(
      `rekey/accounts/${MEMBER}/${USER}/cassandra.amazonaws.com`,
    );
  });
});
