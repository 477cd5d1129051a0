/**
 * The deployed-role harness without an emulator: which Lambdas and statements it takes from the
 * synthesized template, how it resolves their resources to a local run's, IAM's evaluation of a
 * call against them (Deny first, wildcards, the opt-in condition), what a call acts on, the roles
 * it makes (with the emulator's administrator mocked), and how it recognizes a local moto.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CreateRoleCommand,
  GetAccessKeyLastUsedCommand,
  GetUserCommand,
  IAMClient,
  ListUserTagsCommand,
  NoSuchEntityException,
  PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import { DescribeKeyCommand, KMSClient, NotFoundException } from '@aws-sdk/client-kms';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CfnTemplate } from '../../cli/definition.ts';
import {
  connectEmulator,
  DeployedRolesError,
  deployedRoles,
  evaluate,
  type LambdaRole,
  lambdaRoles,
  memberRoles,
  motoEndpoint,
  resourceMatches,
  synthesizeMemberTemplate,
  type Target,
} from '../../cli/deployed-roles.ts';
import { LAMBDA_METADATA_KEY, STEP_NAMES } from '../../contract/functions.ts';
import { MEMBER_LAMBDAS } from '../../contract/organization.ts';
import { AccessDenied, type AuthorizationRequest } from '../../lambdas/shared/clients/invocation.ts';
import { synth } from '../infra/helpers.ts';

const AT = { partition: 'aws', region: 'us-east-1', account: '123456789012' };
const USERS = (path: string) => `arn:aws:iam::123456789012:user${path}`;
const LOCAL = {
  REKEY_LOCK_TABLE: 'local-locks',
  REKEY_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:local-topic',
  REKEY_KMS_KEY_ID: 'arn:aws:kms:us-east-1:123456789012:key/1111-2222',
  REKEY_STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:123456789012:stateMachine:local-machine',
};

const templateOf = (config: Record<string, unknown> = {}): CfnTemplate => ({
  Resources: synth(config).resources as CfnTemplate['Resources'],
});
const roleOf = (roles: LambdaRole[], lambda: string): LambdaRole => {
  const role = roles.find((r) => r.lambda === lambda);
  if (!role) throw new Error(`no ${lambda}`);
  return role;
};
/** The error a call was refused with; an Error saying so when it was allowed. */
const denial = (promise: Promise<unknown>): Promise<Error> =>
  promise.then(
    () => new Error('allowed'),
    (e: unknown) => e as Error,
  );

describe('the Lambdas and their statements, from the template', () => {
  it('finds every rekey Lambda by its rekey:lambda metadata, the audit included, each with its role', () => {
    const roles = lambdaRoles(templateOf(), LOCAL, AT);

    expect(roles.map((r) => r.lambda).sort()).toEqual([...STEP_NAMES, 'audit'].sort());
    expect(new Set(roles.map((r) => r.roleId)).size).toBe(roles.length);
    for (const role of roles) expect(role.statements.length, role.lambda).toBeGreaterThan(0);
  });

  it('covers a Lambda added later without being told: the list is the template, not a hand list', () => {
    // Prepare: the template with one more function, a copy of notify's under a folder no STEPS
    // entry and no hand list names.
    const later = 'rotate-later';
    expect([...STEP_NAMES, 'audit']).not.toContain(later);
    const template = templateOf();
    const resources = { ...template.Resources };
    const [id, notify] = Object.entries(resources).find(
      ([, r]) => r.Metadata?.[LAMBDA_METADATA_KEY] === 'notify',
    ) as [string, NonNullable<CfnTemplate['Resources']>[string]];
    resources[`${id}Later`] = {
      ...notify,
      Metadata: { ...notify.Metadata, [LAMBDA_METADATA_KEY]: later },
    };

    // Act
    const roles = lambdaRoles({ Resources: resources }, LOCAL, AT);

    // Assess
    expect(roleOf(roles, later).statements).toEqual(roleOf(roles, 'notify').statements);
  });

  it("resolves resources to the run's own: table, topic, user path, secrets; unknown ones match nothing", () => {
    const roles = lambdaRoles(templateOf({ userPathPrefix: '/ci/', secretPrefix: 'keys/' }), LOCAL, AT);
    const resourcesOf = (lambda: string, action: string) =>
      roleOf(roles, lambda)
        .statements.filter((s) => s.actions.includes(action))
        .flatMap((s) => s.resources);

    expect(resourcesOf('plan', 'dynamodb:GetItem')).toEqual([
      'arn:aws:dynamodb:us-east-1:123456789012:table/local-locks',
    ]);
    expect(resourcesOf('notify', 'sns:Publish')).toEqual([LOCAL.REKEY_TOPIC_ARN]);
    expect(resourcesOf('create-second-key', 'iam:CreateAccessKey')).toEqual([USERS('/ci/*')]);
    expect(resourcesOf('create-second-key', 'secretsmanager:PutSecretValue')).toEqual([
      'arn:aws:secretsmanager:us-east-1:123456789012:secret:keys/*',
    ]);
    expect(resourcesOf('create-second-key', 'kms:Encrypt')).toEqual([LOCAL.REKEY_KMS_KEY_ID]);
    expect(resourcesOf('audit', 'states:DescribeExecution')).toEqual([
      'arn:aws:states:us-east-1:123456789012:execution:local-machine:*',
    ]);
    // The topic's key and the log groups have no counterpart in a local run: never '*'.
    expect(resourcesOf('notify', 'kms:GenerateDataKey')).toEqual([null]);
    expect(resourcesOf('plan', 'logs:PutLogEvents')).toEqual([null]);
  });

  it('refuses a role whose statements the template does not hold (a managed policy by ARN)', () => {
    const template = templateOf();
    const resources = structuredClone(template.Resources ?? {});
    const plan = roleOf(lambdaRoles(template, LOCAL, AT), 'plan');
    const role = resources[plan.roleId];
    if (!role?.Properties) throw new Error('no role');
    role.Properties.ManagedPolicyArns = ['arn:aws:iam::aws:policy/ReadOnlyAccess'];

    expect(() => lambdaRoles({ Resources: resources }, LOCAL, AT)).toThrow(DeployedRolesError);
  });
});

describe("IAM's evaluation of a call", () => {
  const roles = lambdaRoles(
    templateOf({ userPathPrefix: '/ci/', protectedUsers: ['break-glass'], optInTag: 'rekey:opt-in' }),
    LOCAL,
    AT,
  );
  const tagged =
    (tags: Record<string, string>): Target['keys'] =>
    async () =>
      Object.fromEntries(Object.entries(tags).map(([k, v]) => [`aws:resourcetag/${k}`, v]));

  it('allows an action on a resource a statement names', async () => {
    await expect(
      evaluate(roleOf(roles, 'plan'), 'dynamodb:GetItem', [
        { arn: 'arn:aws:dynamodb:us-east-1:123456789012:table/local-locks' },
      ]),
    ).resolves.toBeUndefined();
  });

  it('refuses an action the role lacks, naming the Lambda, the action and the resource', async () => {
    const error = await denial(
      evaluate(roleOf(roles, 'verify-new-key'), 'dynamodb:GetItem', [
        { arn: 'arn:aws:dynamodb:us-east-1:123456789012:table/local-locks' },
      ]),
    );

    expect(error).toBeInstanceOf(AccessDenied);
    expect((error as Error).message).toBe(
      "the verify-new-key Lambda's role does not allow dynamodb:GetItem on " +
        'arn:aws:dynamodb:us-east-1:123456789012:table/local-locks: no statement of the role has this action',
    );
  });

  it('refuses an allowed action on a resource outside its pattern (a user under another path)', async () => {
    const error = await denial(
      evaluate(roleOf(roles, 'create-second-key'), 'iam:ListAccessKeys', [{ arn: USERS('/other/alice') }]),
    );

    expect((error as Error).message).toMatch(
      /does not allow iam:ListAccessKeys on arn:aws:iam::123456789012:user\/other\/alice: no statement allowing it matches this resource and its conditions \(Allow on arn:aws:iam::123456789012:user\/ci\/\*\)$/,
    );
  });

  it('an explicit Deny wins over the Allow: a protected user, at any path', async () => {
    const create = roleOf(roles, 'create-second-key');
    const keys = tagged({ 'rekey:opt-in': 'yes' });

    const error = await denial(
      evaluate(create, 'iam:CreateAccessKey', [{ arn: USERS('/ci/team/break-glass'), keys }]),
    );

    expect((error as Error).message).toMatch(
      /explicitly denied by its statement Deny on .*NeverTouchProtectedUsers/,
    );
    // A user whose name merely ends alike is not protected.
    await expect(
      evaluate(create, 'iam:CreateAccessKey', [{ arn: USERS('/ci/xbreak-glass'), keys }]),
    ).resolves.toBeUndefined();
  });

  it('evaluates the opt-in condition on the target user: no tag, no key change', async () => {
    const create = roleOf(roles, 'create-second-key');
    const alice = USERS('/ci/alice');

    await expect(
      evaluate(create, 'iam:CreateAccessKey', [{ arn: alice, keys: tagged({ 'rekey:opt-in': '' }) }]),
    ).resolves.toBeUndefined();
    const untagged = await denial(
      evaluate(create, 'iam:CreateAccessKey', [{ arn: alice, keys: tagged({}) }]),
    );
    expect((untagged as Error).message).toMatch(/"Null":\{"aws:ResourceTag\/rekey:opt-in":\["false"\]\}/);
    // Reads carry no condition: the plan can refuse an untagged user cleanly.
    await expect(
      evaluate(roleOf(roles, 'plan'), 'iam:ListAccessKeys', [{ arn: alice, keys: tagged({}) }]),
    ).resolves.toBeUndefined();
  });

  it('an account-wide action needs Resource *; a scoped pattern never matches it', async () => {
    await expect(
      evaluate(roleOf(roles, 'audit'), 'iam:GetCredentialReport', [{ arn: '*' }]),
    ).resolves.toBeUndefined();
    expect(resourceMatches(USERS('/*'), '*')).toBe(false);
    expect(resourceMatches('*', USERS('/ci/alice'))).toBe(true);
    expect(resourceMatches(null, '*')).toBe(false);
    expect(resourceMatches(USERS('/ci/*'), USERS('/ci/team/alice'))).toBe(true);
    expect(resourceMatches(USERS('/ci/*'), USERS('/cix/alice'))).toBe(false);
  });

  it('refuses to guess a condition operator it does not evaluate', async () => {
    const role: LambdaRole = {
      lambda: 'probe',
      functionId: 'F',
      roleId: 'R',
      statements: [
        {
          effect: 'Allow',
          actions: ['iam:GetUser'],
          resources: ['*'],
          conditions: { DateGreaterThan: { 'aws:CurrentTime': ['2020-01-01T00:00:00Z'] } },
        },
      ],
    };

    await expect(evaluate(role, 'iam:GetUser', [{ arn: USERS('/a') }])).rejects.toThrow(DeployedRolesError);
  });
});

describe('the roles in the emulator and what each call acts on', () => {
  const iam = new IAMClient({ region: 'us-east-1' });
  const sts = new STSClient({ region: 'us-east-1' });
  const iamMock = mockClient(iam);
  const stsMock = mockClient(sts);
  const request = (action: string, input: Record<string, unknown>): AuthorizationRequest => ({
    step: 'x',
    service: action.split(':')[0] as AuthorizationRequest['service'],
    action,
    input,
  });

  beforeEach(() => {
    iamMock.reset();
    stsMock.reset();
    stsMock
      .on(GetCallerIdentityCommand)
      .resolves({ Account: '123456789012', Arn: 'arn:aws:iam::123456789012:user/admin' });
    stsMock.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: 'ASIAROLE',
        SecretAccessKey: 's',
        SessionToken: 't',
        Expiration: new Date(),
      },
    });
    iamMock.on(CreateRoleCommand).resolves({});
    iamMock.on(PutRolePolicyCommand).resolves({});
    iamMock.on(GetUserCommand, { UserName: 'alice' }).resolves({
      User: { UserName: 'alice', UserId: 'A', Path: '/ci/', Arn: USERS('/ci/alice'), CreateDate: new Date() },
    });
    iamMock.on(GetUserCommand, { UserName: 'bob' }).resolves({
      User: {
        UserName: 'bob',
        UserId: 'B',
        Path: '/other/',
        Arn: USERS('/other/bob'),
        CreateDate: new Date(),
      },
    });
    iamMock.on(ListUserTagsCommand).resolves({ Tags: [] });
    iamMock.on(GetAccessKeyLastUsedCommand).resolves({ UserName: 'bob' });
  });

  it('makes one role per Lambda with its Allow actions on * (all moto matches), assumed once', async () => {
    const emulator = await connectEmulator({ iam, sts }, 'us-east-1');
    const roles = deployedRoles(emulator, { template: templateOf(), env: LOCAL });

    const first = await roles.contextFor('plan');
    const again = await roles.contextFor('plan');

    expect(again.credentials).toEqual(first.credentials);
    expect(first).toMatchObject({
      step: 'plan',
      credentials: { accessKeyId: 'ASIAROLE', sessionToken: 't' },
    });
    expect(stsMock.commandCalls(AssumeRoleCommand)).toHaveLength(1);
    const policy = JSON.parse(
      iamMock.commandCalls(PutRolePolicyCommand)[0]?.args[0].input.PolicyDocument ?? '{}',
    );
    expect(policy.Statement).toEqual([
      {
        Effect: 'Allow',
        Action: [
          'dynamodb:GetItem',
          'dynamodb:UpdateItem',
          'iam:GetAccessKeyLastUsed',
          'iam:GetUser',
          'iam:ListAccessKeys',
          'iam:ListServiceSpecificCredentials',
          'iam:ListUserTags',
          'logs:CreateLogStream',
          'logs:PutLogEvents',
          'secretsmanager:DescribeSecret',
          'xray:PutTelemetryRecords',
          'xray:PutTraceSegments',
        ],
        Resource: '*',
      },
    ]);
  });

  it('a changed role is another role: a mutation never changes the unmutated run', async () => {
    const emulator = await connectEmulator({ iam, sts }, 'us-east-1');
    const template = templateOf();
    await deployedRoles(emulator, { template, env: LOCAL }).contextFor('plan');
    await deployedRoles(emulator, {
      template,
      env: LOCAL,
      mutate: (_lambda, statements) =>
        statements.map((s) => ({ ...s, actions: s.actions.filter((a) => a !== 'dynamodb:GetItem') })),
    }).contextFor('plan');

    const names = iamMock.commandCalls(CreateRoleCommand).map((c) => c.args[0].input.RoleName);
    expect(names).toHaveLength(2);
    expect(names[0]).toMatch(/^rekey-local-plan-[0-9a-f]{10}$/);
    expect(names[1]).not.toBe(names[0]);
  });

  it('checks the target the call names: the user by its path, a key by its owner, a secret, bus, finding product', async () => {
    const emulator = await connectEmulator({ iam, sts }, 'us-east-1');
    const roles = deployedRoles(emulator, { template: templateOf({ userPathPrefix: '/ci/' }), env: LOCAL });
    const create = await roles.contextFor('create-second-key');
    const authorize = create.authorize ?? (() => Promise.resolve(undefined));

    await expect(authorize(request('iam:CreateAccessKey', { UserName: 'alice' }))).resolves.toBe(
      USERS('/ci/alice'),
    );
    expect((await denial(authorize(request('iam:CreateAccessKey', { UserName: 'bob' })))).message).toContain(
      `on ${USERS('/other/bob')}`,
    );
    // GetAccessKeyLastUsed names a key; IAM authorizes it on the key's user.
    expect(
      (await denial(authorize(request('iam:GetAccessKeyLastUsed', { AccessKeyId: 'AKIABOB' })))).message,
    ).toContain(`on ${USERS('/other/bob')}`);
    await expect(
      authorize(request('secretsmanager:PutSecretValue', { SecretId: 'rekey/alice' })),
    ).resolves.toBe('arn:aws:secretsmanager:us-east-1:123456789012:secret:rekey/alice-XXXXXX');
    // A user that does not exist is authorized on its name at the root path.
    iamMock
      .on(GetUserCommand, { UserName: 'ghost' })
      .rejects(new NoSuchEntityException({ message: 'no', $metadata: {} }));
    expect((await denial(authorize(request('iam:ListAccessKeys', { UserName: 'ghost' })))).message).toContain(
      `on ${USERS('/ghost')}`,
    );

    const notify = await roles.contextFor('notify');
    await expect(
      notify.authorize?.(request('events:PutEvents', { Entries: [{ Source: 'rekey' }] })),
    ).resolves.toBe('arn:aws:events:us-east-1:123456789012:event-bus/default');
    const audit = await deployedRoles(emulator, {
      template: templateOf({ securityHub: true }),
      env: LOCAL,
    }).contextFor('audit');
    await expect(
      audit.authorize?.(
        request('securityhub:BatchImportFindings', {
          Findings: [
            { ProductArn: 'arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default' },
          ],
        }),
      ),
    ).resolves.toBe('arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default');
    // GetCallerIdentity needs no permission.
    await expect(create.authorize?.(request('sts:GetCallerIdentity', {}))).resolves.toBeUndefined();
  });

  it('checks an S3 object by bucket and key: the audit puts reports under the report prefix only', async () => {
    const emulator = await connectEmulator({ iam, sts }, 'us-east-1');
    const audit = await deployedRoles(emulator, {
      template: templateOf({ auditReports: true }),
      env: { ...LOCAL, REKEY_REPORT_BUCKET: 'local-reports' },
    }).contextFor('audit');
    const put = (Bucket: string, Key: string) =>
      audit.authorize?.(request('s3:PutObject', { Bucket, Key, Body: 'x' })) ??
      Promise.resolve('no authorize');

    await expect(put('local-reports', 'audit-reports/123456789012/2026-12-02/x.html')).resolves.toBe(
      'arn:aws:s3:::local-reports/audit-reports/123456789012/2026-12-02/x.html',
    );
    expect((await denial(put('local-reports', 'elsewhere/x.html'))).message).toContain(
      'on arn:aws:s3:::local-reports/elsewhere/x.html',
    );
    expect((await denial(put('another-bucket', 'audit-reports/x.html'))).message).toContain(
      'on arn:aws:s3:::another-bucket/audit-reports/x.html',
    );
    // Without auditReports the role has no S3 action at all.
    const plain = await deployedRoles(emulator, { template: templateOf(), env: LOCAL }).contextFor('audit');
    expect(
      (
        await denial(
          plain.authorize?.(request('s3:PutObject', { Bucket: 'local-reports', Key: 'audit-reports/x' })) ??
            Promise.resolve(),
        )
      ).message,
    ).toContain('s3:PutObject');
  });

  it('refuses a call whose target it cannot tell, rather than let it through', async () => {
    const emulator = await connectEmulator({ iam, sts }, 'us-east-1');
    const plan = await deployedRoles(emulator, { template: templateOf(), env: LOCAL }).contextFor('plan');

    await expect(plan.authorize?.(request('iam:ListAccessKeys', {}))).rejects.toThrow(
      /cannot tell what iam:ListAccessKeys \(from the x Lambda\) acts on/,
    );
    await expect(
      deployedRoles(emulator, { template: templateOf(), env: LOCAL }).contextFor('nope'),
    ).rejects.toThrow(/the template has no Lambda "nope"/);
  });
});

describe('several accounts: the member roles of the member template, in each member account', () => {
  const MEMBER = '210987654321';
  const ORG = 'o-exampleorgid';
  const MEMBER_KEY = `arn:aws:kms:us-east-1:${MEMBER}:key/member-key`;
  const memberUsers = (path: string) => `arn:aws:iam::${MEMBER}:user${path}`;
  const hub = { iam: new IAMClient({ region: 'us-east-1' }), sts: new STSClient({ region: 'us-east-1' }) };
  const member = {
    iam: new IAMClient({ region: 'us-east-1' }),
    sts: new STSClient({ region: 'us-east-1' }),
    kms: new KMSClient({ region: 'us-east-1' }),
  };
  const mocks = {
    hubIam: mockClient(hub.iam),
    hubSts: mockClient(hub.sts),
    iam: mockClient(member.iam),
    sts: mockClient(member.sts),
    kms: mockClient(member.kms),
  };
  const config = {
    userPathPrefix: '/ci/',
    organization: { organizationId: ORG, stackSetTargets: ['r-abcd'], stackSetRegions: ['us-east-1'] },
  };
  const hubTemplate = templateOf(config);
  let memberTemplate: CfnTemplate;
  beforeAll(async () => {
    memberTemplate = await synthesizeMemberTemplate(config);
  });
  const request = (
    action: string,
    input: Record<string, unknown>,
    account?: string,
  ): AuthorizationRequest => ({
    step: 'plan',
    service: action.split(':')[0] as AuthorizationRequest['service'],
    action,
    input,
    ...(account ? { account } : {}),
  });
  const connect = () => connectEmulator(hub, 'us-east-1', { organizationId: ORG, members: [member] });
  const user = (arn: string) => ({
    User: { UserName: 'x', UserId: 'X', Path: '/', Arn: arn, CreateDate: new Date() },
  });

  beforeEach(() => {
    for (const mock of Object.values(mocks)) mock.reset();
    mocks.hubSts
      .on(GetCallerIdentityCommand)
      .resolves({ Account: '123456789012', Arn: 'arn:aws:iam::123456789012:user/admin' });
    mocks.sts
      .on(GetCallerIdentityCommand)
      .resolves({ Account: MEMBER, Arn: `arn:aws:iam::${MEMBER}:user/admin` });
    mocks.hubSts.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: 'ASIAHUB',
        SecretAccessKey: 's',
        SessionToken: 't',
        Expiration: new Date(),
      },
    });
    mocks.kms.on(DescribeKeyCommand).resolves({ KeyMetadata: { KeyId: 'member-key', Arn: MEMBER_KEY } });
    // alice exists in both accounts, under /ci/ in the member and under /other/ in the hub.
    mocks.iam.on(GetUserCommand, { UserName: 'alice' }).resolves(user(memberUsers('/ci/alice')));
    mocks.iam.on(GetUserCommand, { UserName: 'bob' }).resolves(user(memberUsers('/other/bob')));
    mocks.iam.on(ListUserTagsCommand).resolves({ Tags: [] });
    mocks.hubIam.on(GetUserCommand, { UserName: 'alice' }).resolves(user(USERS('/other/alice')));
  });

  it("resolves each member role in its account: that account's ARNs and that account's member key", () => {
    const at = { ...AT, account: MEMBER };
    const roles = memberRoles(memberTemplate, at, MEMBER_KEY);
    const resourcesOf = (lambda: string, action: string, list = roles) =>
      roleOf(list, lambda)
        .statements.filter((s) => s.actions.includes(action))
        .flatMap((s) => s.resources);

    expect(roles.map((r) => r.lambda)).toEqual([...MEMBER_LAMBDAS]);
    expect(roleOf(roles, 'create-second-key').memberRoleArn).toBe(
      `arn:aws:iam::${MEMBER}:role/rekey-member-create-second-key`,
    );
    expect(resourcesOf('plan', 'iam:ListAccessKeys')).toEqual([memberUsers('/ci/*')]);
    expect(resourcesOf('plan', 'secretsmanager:DescribeSecret')).toEqual([
      `arn:aws:secretsmanager:us-east-1:${MEMBER}:secret:rekey/*`,
    ]);
    expect(resourcesOf('create-second-key', 'kms:Encrypt')).toEqual([MEMBER_KEY]);
    // An account without the member key: the key's ARN matches nothing, never everything.
    expect(resourcesOf('create-second-key', 'kms:Encrypt', memberRoles(memberTemplate, at))).toEqual([null]);
  });

  it('resolves Fn::Sub as CloudFormation does: pseudo parameters, resources, a literal placeholder', () => {
    const template = structuredClone(memberTemplate);
    const policy = Object.values(template.Resources ?? {}).find(
      (r) => r.Type === 'AWS::IAM::Policy' && JSON.stringify(r).includes('iam:GetUser'),
    );
    const document = policy?.Properties?.PolicyDocument as { Statement: Array<Record<string, unknown>> };
    document.Statement = [
      {
        Effect: 'Allow',
        Action: 'iam:GetUser',
        // biome-ignore-start lint/suspicious/noTemplateCurlyInString: CloudFormation's Fn::Sub placeholders
        Resource: [
          { 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:user/${!aws:username}' },
          { 'Fn::Sub': ['arn:aws:iam::${Account}:user/ci/*', { Account: { Ref: 'AWS::AccountId' } }] },
          { 'Fn::Sub': 'arn:aws:kms:${AWS::Region}:${AWS::AccountId}:key/${NoSuchKey}' },
        ],
        // biome-ignore-end lint/suspicious/noTemplateCurlyInString: CloudFormation's Fn::Sub placeholders
      },
    ];

    const roles = memberRoles(template, { ...AT, account: MEMBER });

    expect(roles[0]?.statements[0]?.resources).toEqual([
      `arn:aws:iam::${MEMBER}:user/\${aws:username}`,
      memberUsers('/ci/*'),
      null,
    ]);
  });

  it("evaluates a call for a member account against the Lambda's member role there, its target read in that account", async () => {
    const roles = deployedRoles(await connect(), { template: hubTemplate, env: LOCAL, memberTemplate });
    const plan = await roles.contextFor('plan');
    const authorize = plan.authorize ?? (() => Promise.resolve('no authorize'));

    await expect(authorize(request('iam:ListAccessKeys', { UserName: 'alice' }, MEMBER))).resolves.toBe(
      memberUsers('/ci/alice'),
    );
    expect(mocks.iam.commandCalls(GetUserCommand)).toHaveLength(1);
    expect(mocks.hubIam.commandCalls(GetUserCommand)).toHaveLength(0);
    const outside = await denial(authorize(request('iam:ListAccessKeys', { UserName: 'bob' }, MEMBER)));
    expect(outside).toBeInstanceOf(AccessDenied);
    expect(outside.message).toBe(
      `the plan Lambda's member role arn:aws:iam::${MEMBER}:role/rekey-member-plan does not allow ` +
        `iam:ListAccessKeys on ${memberUsers('/other/bob')}: no statement allowing it matches this resource ` +
        `and its conditions (Allow on ${memberUsers('/ci/*')})`,
    );
    // The member role has only the member template's actions (the hub role's lock table is not there).
    expect(
      (await denial(authorize(request('dynamodb:GetItem', { TableName: 'local-locks' }, MEMBER)))).message,
    ).toContain('no statement of the role has this action');
    // The hub's own account, named or not, is the Lambda's own role, as before: alice is outside its path there.
    for (const account of [undefined, '123456789012']) {
      const hubCall = await denial(authorize(request('iam:ListAccessKeys', { UserName: 'alice' }, account)));
      expect(hubCall.message).toMatch(
        /^the plan Lambda's role does not allow iam:ListAccessKeys on arn:aws:iam::123456789012:user\/other\/alice/,
      );
    }
  });

  it('a mutation reaches the member roles too, told which account each is in', async () => {
    const seen: Array<[string, string | undefined]> = [];
    const roles = deployedRoles(await connect(), {
      template: hubTemplate,
      env: LOCAL,
      memberTemplate,
      mutate: (lambda, statements, account) => {
        seen.push([lambda, account]);
        if (account !== MEMBER) return statements;
        return statements.map((s) => ({
          ...s,
          actions: s.actions.filter((a) => a !== 'iam:ListAccessKeys'),
        }));
      },
    });
    const authorize = (await roles.contextFor('plan')).authorize ?? (() => Promise.resolve(''));

    const error = await denial(authorize(request('iam:ListAccessKeys', { UserName: 'alice' }, MEMBER)));

    expect(error.message).toMatch(
      new RegExp(
        `member role arn:aws:iam::${MEMBER}:role/rekey-member-plan does not allow iam:ListAccessKeys on .*: no statement of the role has this action$`,
      ),
    );
    expect(seen).toContainEqual(['plan', undefined]);
    expect(seen).toContainEqual(['plan', MEMBER]);
  });

  it("checks a hub role's sts:AssumeRole on the member role's organization (aws:ResourceOrgID), and its Organizations reads", async () => {
    const roles = deployedRoles(await connect(), { template: hubTemplate, env: LOCAL, memberTemplate });
    const authorize = (await roles.contextFor('plan')).authorize ?? (() => Promise.resolve(''));
    const assumeInto = (account: string) =>
      authorize(request('sts:AssumeRole', { RoleArn: `arn:aws:iam::${account}:role/rekey-member-plan` }));

    await expect(assumeInto(MEMBER)).resolves.toBe(`arn:aws:iam::${MEMBER}:role/rekey-member-plan`);
    // The plan's Organizations reads act on the organization's accounts and OUs.
    await expect(authorize(request('organizations:DescribeAccount', { AccountId: MEMBER }))).resolves.toBe(
      `arn:aws:organizations::123456789012:account/${ORG}/${MEMBER}`,
    );
    await expect(
      authorize(request('organizations:ListParents', { ChildId: 'ou-abcd-12345678' })),
    ).resolves.toBe(`arn:aws:organizations::123456789012:ou/${ORG}/ou-abcd-12345678`);
    // Another Lambda's member role is not plan's to assume.
    expect(
      (
        await denial(
          authorize(
            request('sts:AssumeRole', { RoleArn: `arn:aws:iam::${MEMBER}:role/rekey-member-delete-key` }),
          ),
        )
      ).message,
    ).toContain('no statement allowing it matches this resource');
    expect((await denial(assumeInto('999999999999'))).message).toContain(
      `if {"StringEquals":{"aws:ResourceOrgID":["${ORG}"]}}`,
    );
  });

  it('makes each member role in the member account under its fixed name, with its Allow actions on *', async () => {
    const roles = deployedRoles(await connect(), { template: hubTemplate, env: LOCAL, memberTemplate });

    const made = await roles.installMemberRoles(MEMBER, {
      except: MEMBER_LAMBDAS.filter((lambda) => lambda !== 'plan'),
    });

    expect(made).toEqual([`arn:aws:iam::${MEMBER}:role/rekey-member-plan`]);
    expect(mocks.hubIam.commandCalls(CreateRoleCommand)).toHaveLength(0);
    expect(mocks.iam.commandCalls(CreateRoleCommand).map((c) => c.args[0].input.RoleName)).toEqual([
      'rekey-member-plan',
    ]);
    const policy = JSON.parse(
      mocks.iam.commandCalls(PutRolePolicyCommand)[0]?.args[0].input.PolicyDocument ?? '{}',
    );
    expect(policy.Statement).toEqual([
      {
        Effect: 'Allow',
        Action: [
          'iam:GetAccessKeyLastUsed',
          'iam:GetUser',
          'iam:ListAccessKeys',
          'iam:ListServiceSpecificCredentials',
          'iam:ListUserTags',
          'secretsmanager:DescribeSecret',
        ],
        Resource: '*',
      },
    ]);
  });

  it('fails by name: a member role the hub lacks, a wrong role name, a Lambda without one, an unknown account', async () => {
    const emulator = await connect();
    const withRole = (edit: (resources: NonNullable<CfnTemplate['Resources']>) => void): CfnTemplate => {
      const template = structuredClone(memberTemplate);
      edit(template.Resources ?? {});
      return template;
    };
    const planRole = (resources: NonNullable<CfnTemplate['Resources']>) => {
      const found = Object.values(resources).find((r) => r.Metadata?.['rekey:member-role'] === 'plan');
      if (!found?.Properties) throw new Error('no plan role');
      return found;
    };
    const make = (template: CfnTemplate) => () =>
      deployedRoles(emulator, { template: hubTemplate, env: LOCAL, memberTemplate: template });

    expect(
      make(
        withRole((r) => {
          planRole(r).Metadata = { 'rekey:member-role': 'notify' };
        }),
      ),
    ).toThrow(/role .* is for "notify", which is no Lambda of the hub template with a member role/);
    expect(
      make(
        withRole((r) => {
          (planRole(r).Properties as Record<string, unknown>).RoleName = 'other-plan';
        }),
      ),
    ).toThrow(/names the plan role other-plan, not rekey-member-plan/);
    const roles = make(
      withRole((r) => {
        for (const [id, resource] of Object.entries(r)) {
          if (resource.Metadata?.['rekey:member-role'] === 'verify-new-key') delete r[id];
        }
      }),
    )();
    const verify = (await roles.contextFor('verify-new-key')).authorize ?? (() => Promise.resolve(''));
    await expect(verify(request('iam:ListAccessKeys', { UserName: 'alice' }, MEMBER))).rejects.toThrow(
      new RegExp(`the member template has no member role for the verify-new-key Lambda .*account ${MEMBER}`),
    );
    const plan = (await roles.contextFor('plan')).authorize ?? (() => Promise.resolve(''));
    await expect(plan(request('iam:ListAccessKeys', { UserName: 'alice' }, '999999999999'))).rejects.toThrow(
      DeployedRolesError,
    );
    // Without a member template, a call for a member account cannot be evaluated.
    const hubOnly = (await deployedRoles(emulator, { template: hubTemplate, env: LOCAL }).contextFor('plan'))
      .authorize;
    await expect(hubOnly?.(request('iam:ListAccessKeys', { UserName: 'alice' }, MEMBER))).rejects.toThrow(
      /no member template/,
    );
  });

  it('an account without the member secrets key resolves the key to nothing', async () => {
    mocks.kms.on(DescribeKeyCommand).rejects(new NotFoundException({ message: 'no alias', $metadata: {} }));
    const roles = deployedRoles(await connect(), { template: hubTemplate, env: LOCAL, memberTemplate });

    const role = await roles.memberRole(MEMBER, 'create-second-key');

    expect(role.statements.find((s) => s.actions.includes('kms:Encrypt'))?.resources).toEqual([null]);
  });
});

describe('recognizing a local moto server', () => {
  let server: Server;
  let port = 0;
  beforeAll(async () => {
    server = createServer((req, res) => res.writeHead(req.url === '/moto-api/' ? 200 : 404).end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('is a loopback endpoint that answers /moto-api/; anything else keeps the caller as is', async () => {
    await expect(motoEndpoint({ AWS_ENDPOINT_URL: `http://127.0.0.1:${port}` })).resolves.toBe(
      `http://127.0.0.1:${port}`,
    );
    await expect(motoEndpoint({ AWS_ENDPOINT_URL: `http://localhost:${port}` })).resolves.toBe(
      `http://localhost:${port}`,
    );
    await expect(motoEndpoint({})).resolves.toBeUndefined();
    await expect(motoEndpoint({ AWS_ENDPOINT_URL: 'https://iam.amazonaws.com' })).resolves.toBeUndefined();
    await expect(motoEndpoint({ AWS_ENDPOINT_URL: 'not a url' })).resolves.toBeUndefined();
    // Loopback, but nothing listening there.
    await expect(motoEndpoint({ AWS_ENDPOINT_URL: 'http://127.0.0.1:1' })).resolves.toBeUndefined();
  });
});
