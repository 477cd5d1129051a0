/**
 * The several-account harness on moto (request signing on): an organization seeded in the
 * emulator (cli/emulator-organization.ts), the hub Lambdas under their deployed roles, and in each
 * member account the member roles made from the synthesized member template. A hub role assumes
 * its member role (lambdas/shared/member-account.ts, inAccount) and acts in that account, each call
 * evaluated against the member role's statements for that account's ARNs (cli/deployed-roles.ts),
 * and moto checks its actions against the member role's policy. What moto does for a missing
 * member role and a suspended account is asserted as measured (docs/testing.md).
 */
import { CreateUserCommand, GetRoleCommand, IAMClient, ListAccessKeysCommand } from '@aws-sdk/client-iam';
import {
  DescribeAccountCommand,
  ListAccountsCommand,
  ListParentsCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeployedRoles } from '../../cli/deployed-roles.ts';
import type { OrganizationAccount } from '../../cli/emulator-organization.ts';
import type { MemberLambda } from '../../contract/organization.ts';
import { iam as lambdaIam } from '../../lambdas/shared/clients/iam.ts';
import { type InvocationContext, runInInvocation } from '../../lambdas/shared/clients/invocation.ts';
import { forgetMemberSessions, inAccount } from '../../lambdas/shared/member-account.ts';
import { startWorld, type World, type WorldAccount } from './harness.ts';

let world: World;
let hub: WorldAccount;
/** In the OU `workloads`. */
let a: WorldAccount;
let b: WorldAccount;
/** Lacks the plan member role; suspended by the last test. */
let c: WorldAccount;
let organizations: OrganizationsClient;

beforeAll(async () => {
  world = await startWorld({
    config: { userPathPrefix: '/ci/' },
    organization: {
      organizationalUnits: ['workloads'],
      members: [
        { name: 'workload-a', organizationalUnit: 'workloads' },
        { name: 'workload-b' },
        { name: 'workload-c' },
      ],
      withoutMemberRoles: { 2: ['plan'] },
    },
    quiet: true,
  });
  [hub, a, b, c] = world.accounts as [WorldAccount, WorldAccount, WorldAccount, WorldAccount];
  organizations = new OrganizationsClient({
    endpoint: world.moto.endpoint,
    region: 'us-east-1',
    credentials: world.admin,
  });
  // alice in the hub and in every member, each with one key of her own.
  for (const account of [hub, a, b, c]) await account.createUser('alice', { path: '/ci/' });
  await a.createUser('bob', { path: '/other/' });
  await b.createUser('carol', { path: '/ci/' });
}, 120_000);

afterAll(async () => {
  organizations?.destroy();
  await world?.stop();
});

/**
 * What `authorize` saw: `<account or hub> <action> <target or "refused">`, in the order asked (a call is
 * authorized before its credentials are resolved, so the AssumeRole comes after the first call).
 */
type Seen = string[];

/**
 * Runs `fn` inside an invocation of `lambda` (its hub role, as the local runner does) and inside
 * `inAccount` for `accountId`: rekey's member-side clients sign as the member role there.
 */
async function asMember<T>(
  roles: DeployedRoles,
  lambda: MemberLambda,
  accountId: string,
  fn: () => Promise<T>,
): Promise<{ outcome: PromiseSettledResult<T>; seen: Seen }> {
  const context = await roles.contextFor(lambda);
  // Each run assumes the member role afresh, so that `seen` always holds the AssumeRole.
  forgetMemberSessions();
  const seen: Seen = [];
  const recording: InvocationContext = {
    ...context,
    authorize: async (request) => {
      const asked = `${request.account ?? 'hub'} ${request.action}`;
      try {
        const target = await context.authorize?.(request);
        seen.push(`${asked} ${target}`);
        return target;
      } catch (error) {
        seen.push(`${asked} refused`);
        throw error;
      }
    },
  };
  const [outcome] = await Promise.allSettled([
    runInInvocation(recording, () => inAccount({ accountId, lambda }, fn)),
  ]);
  return { outcome: outcome as PromiseSettledResult<T>, seen };
}

const listKeys = (userName: string) => () =>
  lambdaIam
    .send(new ListAccessKeysCommand({ UserName: userName }))
    .then((out) => (out.AccessKeyMetadata ?? []).map((k) => k.AccessKeyId));
const keyIds = async (account: WorldAccount, userName: string) =>
  (await account.keysOf(userName)).map((k) => k.id);
const reason = (outcome: PromiseSettledResult<unknown>): Error =>
  outcome.status === 'rejected' ? (outcome.reason as Error) : new Error('it succeeded');

/** The plan hub role's credentials, then its member role's in `account`, as moto hands them out. */
async function memberCredentials(account: OrganizationAccount) {
  const { credentials } = await world.roles.contextFor('plan');
  const sts = new STSClient({
    endpoint: world.moto.endpoint,
    region: 'us-east-1',
    credentials,
    maxAttempts: 1,
  });
  try {
    const out = await sts.send(
      new AssumeRoleCommand({
        RoleArn: `arn:aws:iam::${account.accountId}:role/rekey-member-plan`,
        RoleSessionName: 'probe',
      }),
    );
    return {
      accessKeyId: out.Credentials?.AccessKeyId ?? '',
      secretAccessKey: out.Credentials?.SecretAccessKey ?? '',
      sessionToken: out.Credentials?.SessionToken ?? '',
    };
  } finally {
    sts.destroy();
  }
}

const memberIam = (credentials: Awaited<ReturnType<typeof memberCredentials>>, headerAccount?: string) => {
  const client = new IAMClient({
    endpoint: world.moto.endpoint,
    region: 'us-east-1',
    credentials,
    maxAttempts: 1,
  });
  if (headerAccount) {
    client.middlewareStack.add(
      (next) => async (args) => {
        (args.request as { headers: Record<string, string> }).headers['x-moto-account-id'] = headerAccount;
        return next(args);
      },
      { step: 'build', name: 'motoAccountId' },
    );
  }
  return client;
};

describe('an organization in the emulator', () => {
  it('has the hub as management account, members in their OUs, and each account its own administrator and users', async () => {
    const org = world.organization;
    expect(org?.organizationId).toMatch(/^o-[a-z0-9]{10,32}$/);
    expect(world.env.REKEY_HUB_ACCOUNT_ID).toBe(hub.accountId);
    expect(world.env.REKEY_ORGANIZATION_ID).toBe(org?.organizationId);
    const described = await organizations.send(new DescribeAccountCommand({ AccountId: a.accountId }));
    expect(described.Account).toMatchObject({ Status: 'ACTIVE', Name: 'workload-a' });
    expect(described.Account?.Arn).toBe(
      `arn:aws:organizations::${hub.accountId}:account/${org?.organizationId}/${a.accountId}`,
    );
    const parentsOf = async (id: string) =>
      (await organizations.send(new ListParentsCommand({ ChildId: id }))).Parents?.map((p) => [p.Id, p.Type]);
    expect(await parentsOf(a.accountId)).toEqual([
      [org?.organizationalUnits.workloads, 'ORGANIZATIONAL_UNIT'],
    ]);
    expect(await parentsOf(org?.organizationalUnits.workloads ?? '')).toEqual([[org?.rootId, 'ROOT']]);
    expect(await parentsOf(b.accountId)).toEqual([[org?.rootId, 'ROOT']]);

    // Each administrator acts in its own account: four alices, four different keys.
    for (const account of [hub, a, b, c]) {
      const who = await account.sts.send(new GetCallerIdentityCommand({}));
      expect(who.Account).toBe(account.accountId);
    }
    const keys = await Promise.all([hub, a, b, c].map((account) => keyIds(account, 'alice')));
    expect(new Set(keys.flat()).size).toBe(4);

    // The member roles are in the member accounts under their fixed names, but C's plan role.
    await expect(a.iam.send(new GetRoleCommand({ RoleName: 'rekey-member-plan' }))).resolves.toBeDefined();
    await expect(c.iam.send(new GetRoleCommand({ RoleName: 'rekey-member-plan' }))).rejects.toMatchObject({
      name: 'NoSuchEntityException',
      message: 'Role rekey-member-plan not found',
    });
    await expect(
      c.iam.send(new GetRoleCommand({ RoleName: 'rekey-member-create-second-key' })),
    ).resolves.toBeDefined();
    // And the member secrets key (secrets: member, the default).
    expect(a.memberKeyArn).toMatch(new RegExp(`^arn:aws:kms:us-east-1:${a.accountId}:key/`));
  });
});

describe('a hub Lambda acting in a member account, under the deployed permissions', () => {
  it("assumes its member role in A and reads A's alice, authorized against the member role for A's ARN", async () => {
    const { outcome, seen } = await asMember(world.roles, 'plan', a.accountId, listKeys('alice'));

    expect(outcome).toEqual({ status: 'fulfilled', value: await keyIds(a, 'alice') });
    expect(seen).toEqual([
      `${a.accountId} iam:ListAccessKeys arn:aws:iam::${a.accountId}:user/ci/alice`,
      `hub sts:AssumeRole arn:aws:iam::${a.accountId}:role/rekey-member-plan`,
    ]);
  });

  it("refuses a user of A outside the path, naming A's member role, before the call", async () => {
    const { outcome, seen } = await asMember(world.roles, 'plan', a.accountId, listKeys('bob'));

    expect(reason(outcome).name).toBe('AccessDenied');
    expect(reason(outcome).message).toBe(
      `the plan Lambda's member role arn:aws:iam::${a.accountId}:role/rekey-member-plan does not allow ` +
        `iam:ListAccessKeys on arn:aws:iam::${a.accountId}:user/other/bob: no statement allowing it matches ` +
        `this resource and its conditions (Allow on arn:aws:iam::${a.accountId}:user/ci/*)`,
    );
    // Refused before any credentials were asked for: no AssumeRole, no call to the emulator.
    expect(seen).toEqual([`${a.accountId} iam:ListAccessKeys refused`]);
  });

  it("fails the call when one action is dropped from A's member role, and only A's", async () => {
    const roles = world.rolesWith((lambda, statements, account) =>
      lambda === 'plan' && account === a.accountId
        ? statements.map((s) => ({ ...s, actions: s.actions.filter((x) => x !== 'iam:ListAccessKeys') }))
        : statements,
    );

    const inA = await asMember(roles, 'plan', a.accountId, listKeys('alice'));
    const inB = await asMember(roles, 'plan', b.accountId, listKeys('alice'));

    expect(reason(inA.outcome).name).toBe('AccessDenied');
    expect(reason(inA.outcome).message).toMatch(
      new RegExp(
        `^the plan Lambda's member role arn:aws:iam::${a.accountId}:role/rekey-member-plan does not allow iam:ListAccessKeys on .*: no statement of the role has this action$`,
      ),
    );
    expect(inB.outcome).toEqual({ status: 'fulfilled', value: await keyIds(b, 'alice') });
  });

  it("moto checks the member role's actions, and A's credentials act in A only", async () => {
    const credentials = await memberCredentials(a);
    const inA = memberIam(credentials);
    const toB = memberIam(credentials, b.accountId);
    try {
      // An action the member template does not give the plan role: moto refuses it.
      await expect(inA.send(new CreateUserCommand({ UserName: 'mallory' }))).rejects.toMatchObject({
        name: 'AccessDenied',
        message: `User: arn:aws:sts::${a.accountId}:assumed-role/rekey-member-plan/probe is not authorized to perform: iam:CreateUser`,
      });
      // B's carol does not exist for A's credentials: they act in A.
      await expect(inA.send(new ListAccessKeysCommand({ UserName: 'carol' }))).rejects.toMatchObject({
        name: 'NoSuchEntityException',
      });
      // Pointed at B (moto's account header), moto does not know the key there.
      await expect(toB.send(new ListAccessKeysCommand({ UserName: 'alice' }))).rejects.toMatchObject({
        name: 'InvalidClientTokenId',
        $metadata: { httpStatusCode: 403 },
      });
    } finally {
      inA.destroy();
      toB.destroy();
    }
    // And rekey's own route to B goes through B's member role, never A's.
    const { seen } = await asMember(world.roles, 'plan', b.accountId, listKeys('carol'));
    expect(seen).toContain(`hub sts:AssumeRole arn:aws:iam::${b.accountId}:role/rekey-member-plan`);
  });
});

describe('what moto does for a missing member role and a suspended account (measured)', () => {
  it('hands out credentials for the missing role, whose identity looks right, and answers the next call with an HTML 500', async () => {
    const credentials = await memberCredentials(c);
    expect(credentials.accessKeyId).toMatch(/^ASIA/);
    const sts = new STSClient({
      endpoint: world.moto.endpoint,
      region: 'us-east-1',
      credentials,
      maxAttempts: 1,
    });
    const client = memberIam(credentials);
    try {
      // GetCallerIdentity does not tell: it answers the assumed role's ARN as for a real role.
      await expect(sts.send(new GetCallerIdentityCommand({}))).resolves.toMatchObject({
        Account: c.accountId,
        Arn: `arn:aws:sts::${c.accountId}:assumed-role/rekey-member-plan/probe`,
      });
      await expect(client.send(new ListAccessKeysCommand({ UserName: 'alice' }))).rejects.toMatchObject({
        name: 'Error',
        $metadata: { httpStatusCode: 500 },
        message: expect.stringMatching(/XML parse error: mismatched tags <html>/),
      });
    } finally {
      sts.destroy();
      client.destroy();
    }
  });

  it('rekey names the missing role (MemberRoleUnavailable) and changes nothing in the account', async () => {
    const before = await keyIds(c, 'alice');

    const { outcome } = await asMember(world.roles, 'plan', c.accountId, listKeys('alice'));

    expect(reason(outcome).name).toBe('MemberRoleUnavailable');
    expect(reason(outcome).message).toContain(
      `cannot act in account ${c.accountId}: its member role arn:aws:iam::${c.accountId}:role/rekey-member-plan is missing`,
    );
    expect(await keyIds(c, 'alice')).toEqual(before);
  });

  it('suspends an account with CloseAccount: SUSPENDED at once, its IAM still answering', async () => {
    await world.organization?.suspend(c.accountId);

    const described = await organizations.send(new DescribeAccountCommand({ AccountId: c.accountId }));
    expect(described.Account).toMatchObject({ Status: 'SUSPENDED', State: 'SUSPENDED' });
    const listed = (await organizations.send(new ListAccountsCommand({}))).Accounts ?? [];
    expect(listed.map((x) => [x.Id, x.Status])).toContainEqual([c.accountId, 'SUSPENDED']);
    // moto keeps the account's IAM working: a suspended account must be refused by rekey's own check.
    await expect(keyIds(c, 'alice')).resolves.toHaveLength(1);
  });
});
