/**
 * AWS Organizations in the templates (docs/organizations.md): the member stack's roles hold
 * exactly the member side of the hub roles' statements (one table), each trusts exactly its hub
 * Lambda's role from inside the organization; the hub roles may assume only their own member role;
 * the StackSet is service-managed, deploys automatically to the configured OUs and region, and
 * passes each hub role's ARN. moto evaluates neither trust policies nor conditions: these
 * assertions are what covers them. Each checker returns its problems, and a mutated template
 * shows that it finds them.
 */
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { LAMBDA_METADATA_KEY, STEP_NAMES } from '../../contract/functions.ts';
import {
  MEMBER_LAMBDAS,
  MEMBER_ROLE_METADATA_KEY,
  MEMBER_SECRETS_KEY_ALIAS,
  type MemberLambda,
  memberServices,
  type SecretsLocation,
} from '../../contract/organization.ts';
import { loadConfig } from '../../infra/config.ts';
import { MEMBER_STACK_SET_NAME, TEMPLATE_BODY_LIMIT_BYTES } from '../../infra/constructs/member-stack-set.ts';
import { hubRoleParameter, MEMBER_STACK_ID, RekeyMemberStack } from '../../infra/member-stack.ts';
import { RekeyStack } from '../../infra/rekey-stack.ts';
import {
  ACCOUNT,
  allow,
  getAttId,
  logicalIds,
  onlyLogicalId,
  PARTITION,
  REGION,
  type Resources,
  roleIdOf,
  rolePermissions,
  stepPermissions,
  synth,
} from './helpers.ts';

const ORGANIZATION_ID = 'o-exampleorg1';
const organization = (extra: Record<string, unknown> = {}) => ({
  organizationId: ORGANIZATION_ID,
  stackSetTargets: ['ou-ab12-cdefgh34', 'r-ab12'],
  stackSetRegions: [REGION],
  ...extra,
});

interface Synthesized {
  hub: Resources;
  member: Resources;
  memberTemplate: Record<string, unknown>;
  prefix: string;
}

const cache = new Map<string, Synthesized>();
/** The hub and the member stack of one configuration, in one app (no bundling). */
function synthBoth(raw: Record<string, unknown>): Synthesized {
  const key = JSON.stringify(raw);
  const hit = cache.get(key);
  if (hit) return hit;
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] }, builtinCloudFormationValidation: false });
  const config = loadConfig(raw);
  const hub = new RekeyStack(app, 'RekeyStack', { config });
  const member = new RekeyMemberStack(app, MEMBER_STACK_ID, { config });
  const memberTemplate = Template.fromStack(member).toJSON();
  const result = {
    hub: Template.fromStack(hub).toJSON().Resources as Resources,
    member: memberTemplate.Resources as Resources,
    memberTemplate,
    prefix: config.organization?.memberRolePrefix ?? '',
  };
  cache.set(key, result);
  return result;
}

/** The logical id of the member role of a Lambda (by its metadata). */
function memberRoleId(member: Resources, lambda: MemberLambda): string {
  const ids = logicalIds(member, 'AWS::IAM::Role').filter(
    (id) => member[id]?.Metadata?.[MEMBER_ROLE_METADATA_KEY] === lambda,
  );
  if (ids.length !== 1) throw new Error(`expected one member role of ${lambda}, found ${ids.length}`);
  return ids[0] as string;
}

/** The hub role of a Lambda: a step's function role, or the audit function's. */
function hubRoleId(hub: Resources, lambda: MemberLambda): string {
  const fn = logicalIds(hub, 'AWS::Lambda::Function').find(
    (id) => hub[id]?.Metadata?.[LAMBDA_METADATA_KEY] === lambda,
  );
  if (!fn) throw new Error(`no hub function of ${lambda}`);
  return roleIdOf(hub[fn] as never);
}

const keyByAlias = (resources: Resources, alias: string) =>
  getAttId(
    Object.values(resources).find((r) => r.Type === 'AWS::KMS::Alias' && r.Properties?.AliasName === alias)
      ?.Properties?.TargetKeyId,
  );

/**
 * The member side of a hub role's permissions: the statements of the services that act in the
 * account a request names, on that account's resources (the hub's secrets key becomes the member
 * key; the topic key, which the audit uses through SNS in the hub, stays behind).
 */
function memberSideOf(s: Synthesized, lambda: MemberLambda, secrets: SecretsLocation): string[] {
  const services = memberServices(secrets);
  const topic = onlyLogicalId(s.hub, 'AWS::SNS::Topic');
  const topicKey = `${getAttId(s.hub[topic]?.Properties?.KmsMasterKeyId)}.Arn`;
  const hubKey = `${keyByAlias(s.hub, 'alias/rekey-secrets')}.Arn`;
  const memberKey = secrets === 'member' ? `${keyByAlias(s.member, MEMBER_SECRETS_KEY_ALIAS)}.Arn` : hubKey;
  return rolePermissions(s.hub, hubRoleId(s.hub, lambda))
    .filter((p) => services.includes(p.split(' ')[1]?.split(':')[0] ?? ''))
    .filter((p) => p.split(' ')[2] !== topicKey)
    .map((p) => p.replace(hubKey, memberKey))
    .sort();
}

/** JSON with every object's keys sorted: equal documents, equal strings. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );

/** What is wrong with a member role: its name, metadata, trust, and any policy but AWS::IAM::Policy. */
function memberRoleProblems(member: Resources, lambda: MemberLambda, prefix: string): string[] {
  const problems: string[] = [];
  const role = member[memberRoleId(member, lambda)];
  const props = role?.Properties ?? {};
  if (props.RoleName !== `${prefix}${lambda}`) problems.push(`RoleName ${String(props.RoleName)}`);
  for (const forbidden of ['ManagedPolicyArns', 'Policies', 'PermissionsBoundary']) {
    if (props[forbidden] !== undefined) problems.push(`has ${forbidden}`);
  }
  const expectedTrust = {
    Version: '2012-10-17',
    Statement: [
      {
        Action: 'sts:AssumeRole',
        Effect: 'Allow',
        Principal: { AWS: { Ref: hubRoleParameter(lambda) } },
        Condition: { StringEquals: { 'aws:PrincipalOrgID': ORGANIZATION_ID } },
      },
    ],
  };
  if (canonical(props.AssumeRolePolicyDocument) !== canonical(expectedTrust))
    problems.push(`trust ${JSON.stringify(props.AssumeRolePolicyDocument)}`);
  return problems;
}

describe.each(['member', 'hub'] as const)('with organization, secrets: %s', (secrets) => {
  const raw = { protectedUsers: ['break-glass'], organization: organization({ secrets }) };
  const s = synthBoth(raw);

  it.each(MEMBER_LAMBDAS)(
    "the member role of %s holds exactly the hub role's member-side statements",
    (lambda) => {
      const actual = rolePermissions(s.member, memberRoleId(s.member, lambda));
      expect(actual.length).toBeGreaterThan(0);
      expect(actual).toEqual(memberSideOf(s, lambda, secrets));
    },
  );

  it.each(MEMBER_LAMBDAS)('the member role of %s is named, marked and trusted as designed', (lambda) => {
    expect(memberRoleProblems(s.member, lambda, s.prefix)).toEqual([]);
  });

  it('has one member role per member Lambda, each with its HubRole parameter, and nothing else IAM', () => {
    const roles = logicalIds(s.member, 'AWS::IAM::Role');
    expect(roles.map((id) => s.member[id]?.Metadata?.[MEMBER_ROLE_METADATA_KEY]).sort()).toEqual(
      [...MEMBER_LAMBDAS].sort(),
    );
    expect(Object.keys(s.memberTemplate.Parameters as object).sort()).toEqual(
      MEMBER_LAMBDAS.map(hubRoleParameter).sort(),
    );
    expect(logicalIds(s.member, 'AWS::IAM::ManagedPolicy')).toEqual([]);
    expect(logicalIds(s.member, 'AWS::IAM::User')).toEqual([]);
    // No bootstrap rule: the accounts a StackSet deploys to are not CDK-bootstrapped.
    expect(s.memberTemplate.Rules).toBeUndefined();
  });

  it('the member roles that change keys carry the protected users Deny', () => {
    for (const lambda of ['create-second-key', 'deactivate-old-key', 'delete-key'] as const) {
      expect(rolePermissions(s.member, memberRoleId(s.member, lambda))).toContain(
        `Deny iam:DeleteAccessKey arn:${PARTITION}:iam::${ACCOUNT}:user/break-glass`,
      );
    }
    expect(rolePermissions(s.member, memberRoleId(s.member, 'plan')).some((p) => p.startsWith('Deny'))).toBe(
      false,
    );
  });

  it.each(MEMBER_LAMBDAS)(
    'the hub role of %s may assume only its own member role, in the organization',
    (lambda) => {
      const assume = rolePermissions(s.hub, hubRoleId(s.hub, lambda)).filter((p) => p.includes('sts:'));
      expect(assume).toEqual(
        allow(['sts:AssumeRole'], [`arn:${PARTITION}:iam::*:role/${s.prefix}${lambda}`], {
          StringEquals: { 'aws:ResourceOrgID': ORGANIZATION_ID },
        }),
      );
    },
  );

  it('notify assumes nothing; only the plan reads Organizations', () => {
    expect(stepPermissions(s.hub, 'notify').filter((p) => p.includes('sts:'))).toEqual([]);
    const org = (p: string) => p.includes('organizations:');
    expect(stepPermissions(s.hub, 'plan').filter(org)).toEqual([
      `Allow organizations:DescribeAccount arn:${PARTITION}:organizations::*:account/${ORGANIZATION_ID}/*`,
      `Allow organizations:ListParents arn:${PARTITION}:organizations::*:account/${ORGANIZATION_ID}/*`,
      `Allow organizations:ListParents arn:${PARTITION}:organizations::*:ou/${ORGANIZATION_ID}/*`,
    ]);
    for (const step of STEP_NAMES.filter((x) => x !== 'plan')) {
      expect(stepPermissions(s.hub, step).filter(org), step).toEqual([]);
    }
  });

  it('the StackSet is service-managed, deploys automatically to the targets and region, with each hub role', () => {
    const stackSet = s.hub[onlyLogicalId(s.hub, 'AWS::CloudFormation::StackSet')]?.Properties ?? {};
    expect(stackSet.StackSetName).toBe(MEMBER_STACK_SET_NAME);
    expect(stackSet.PermissionModel).toBe('SERVICE_MANAGED');
    expect(stackSet.AutoDeployment).toEqual({ Enabled: true, RetainStacksOnAccountRemoval: false });
    expect(stackSet.CallAs).toBe('DELEGATED_ADMIN');
    expect(stackSet.Capabilities).toEqual(['CAPABILITY_NAMED_IAM']);
    expect(stackSet.ManagedExecution).toEqual({ Active: true });
    expect(stackSet.StackInstancesGroup).toEqual([
      { DeploymentTargets: { OrganizationalUnitIds: ['ou-ab12-cdefgh34', 'r-ab12'] }, Regions: [REGION] },
    ]);
    const preferences = stackSet.OperationPreferences as Record<string, number>;
    expect(preferences.FailureTolerancePercentage).toBeLessThan(preferences.MaxConcurrentPercentage ?? 0);
    expect(stackSet.Parameters).toEqual(
      MEMBER_LAMBDAS.map((lambda) => ({
        ParameterKey: hubRoleParameter(lambda),
        ParameterValue: { 'Fn::GetAtt': [hubRoleId(s.hub, lambda), 'Arn'] },
      })),
    );
    // The body is the member stack's template, byte for byte what cdk.out holds.
    expect(JSON.parse(stackSet.TemplateBody as string)).toEqual(s.memberTemplate);
  });

  it(secrets === 'member' ? 'holds the member secrets key' : 'holds no key and no secret access', () => {
    const keys = logicalIds(s.member, 'AWS::KMS::Key');
    if (secrets === 'hub') {
      expect(keys).toEqual([]);
      const all = MEMBER_LAMBDAS.flatMap((l) => rolePermissions(s.member, memberRoleId(s.member, l)));
      expect(all.filter((p) => /secretsmanager:|kms:/.test(p))).toEqual([]);
      return;
    }
    const key = keyByAlias(s.member, MEMBER_SECRETS_KEY_ALIAS);
    expect(s.member[key]?.Properties?.EnableKeyRotation).toBe(true);
    const policy = s.member[key]?.Properties?.KeyPolicy as { Statement: Record<string, unknown>[] };
    const statements = policy.Statement;
    const bySid = (sid: string) => statements.find((st) => st.Sid === sid);
    expect(bySid('CreateSecondKeyEncrypts')?.Principal).toEqual({
      AWS: { 'Fn::GetAtt': [memberRoleId(s.member, 'create-second-key'), 'Arn'] },
    });
    expect(bySid('CreateSecondKeyEncrypts')?.Action).toEqual(['kms:Encrypt', 'kms:GenerateDataKey']);
    for (const [sid, lambda] of [
      ['VerifyNewKeyDecrypts', 'verify-new-key'],
      ['VerifyRotationDecrypts', 'verify-rotation'],
    ] as const) {
      expect(bySid(sid)?.Principal).toEqual({
        AWS: { 'Fn::GetAtt': [memberRoleId(s.member, lambda), 'Arn'] },
      });
      expect(bySid(sid)?.Action).toBe('kms:Decrypt');
    }
    // Only through Secrets Manager, for every statement that lets a principal use the key.
    for (const st of statements.filter((x) => x.Sid !== 'AccountAdministersTheKey')) {
      expect(JSON.stringify(st.Condition), String(st.Sid)).toContain('kms:ViaService');
    }
  });
});

describe('one table: the member roles of a configuration with every option', () => {
  const raw = {
    cloudTrailLookup: true,
    userPathPrefix: '/ci/',
    secretPrefix: 'keys/',
    optInTag: 'rekey:opt-in',
    protectedUsers: ['break-glass', 'terraform'],
    deactivateUnused: true,
    securityHub: true,
    organization: organization({ memberRolePrefix: 'org-rekey-' }),
  };
  const s = synthBoth(raw);
  const users = `arn:${PARTITION}:iam::${ACCOUNT}:user/ci/*`;
  const memberKey = `${keyByAlias(s.member, MEMBER_SECRETS_KEY_ALIAS)}.Arn`;
  const secrets = `arn:${PARTITION}:secretsmanager:${REGION}:${ACCOUNT}:secret:keys/*`;

  it.each(MEMBER_LAMBDAS)('%s: the member side of the hub role', (lambda) => {
    expect(rolePermissions(s.member, memberRoleId(s.member, lambda))).toEqual(
      memberSideOf(s, lambda, 'member'),
    );
    expect(memberRoleProblems(s.member, lambda, 'org-rekey-')).toEqual([]);
  });

  it('written out for the plan, the create step, check-last-used and the audit', () => {
    const role = (lambda: MemberLambda) => rolePermissions(s.member, memberRoleId(s.member, lambda));
    expect(role('plan')).toEqual(
      [
        ...allow(['iam:GetUser'], [`arn:${PARTITION}:iam::${ACCOUNT}:user/*`]),
        ...allow(
          [
            'iam:ListUserTags',
            'iam:ListAccessKeys',
            'iam:GetAccessKeyLastUsed',
            'iam:ListServiceSpecificCredentials',
          ],
          [users],
        ),
        ...allow(['secretsmanager:DescribeSecret'], [secrets]),
      ].sort(),
    );
    const create = role('create-second-key');
    expect(create).toContain(
      `Allow iam:CreateAccessKey ${users} if ${JSON.stringify({ Null: { 'aws:ResourceTag/rekey:opt-in': 'false' } })}`,
    );
    expect(create).toContain(
      `Allow kms:GenerateDataKey ${memberKey} if ${JSON.stringify({ StringEquals: { 'kms:ViaService': `secretsmanager.${REGION}.amazonaws.com` } })}`,
    );
    expect(create.filter((p) => p.includes('dynamodb:'))).toEqual([]);
    expect(role('check-last-used')).toEqual(
      [...allow(['iam:GetAccessKeyLastUsed'], [users]), ...allow(['cloudtrail:LookupEvents'], ['*'])].sort(),
    );
    const audit = role('audit');
    expect(audit).toContain(`Allow iam:GetCredentialReport *`);
    expect(audit).toContain(
      `Allow securityhub:BatchImportFindings arn:${PARTITION}:securityhub:${REGION}:${ACCOUNT}:product/${ACCOUNT}/default`,
    );
    expect(audit).toContain(`Deny iam:UpdateAccessKey arn:${PARTITION}:iam::${ACCOUNT}:user/terraform`);
    expect(audit.filter((p) => /sns:|kms:|dynamodb:|states:|events:|s3:/.test(p))).toEqual([]);
  });

  it('fits a TemplateBody', () => {
    const stackSet = s.hub[onlyLogicalId(s.hub, 'AWS::CloudFormation::StackSet')]?.Properties ?? {};
    const bytes = Buffer.byteLength(stackSet.TemplateBody as string, 'utf8');
    console.info(`member template: ${bytes} bytes of ${TEMPLATE_BODY_LIMIT_BYTES}`);
    expect(bytes).toBeLessThan(TEMPLATE_BODY_LIMIT_BYTES);
  });
});

describe('the checks can fail', () => {
  const s = synthBoth({ organization: organization() });

  it('a member role with an action its hub role lacks, or without one it has, differs', () => {
    const member = structuredClone(s.member);
    const policyId = logicalIds(member, 'AWS::IAM::Policy').find((id) =>
      JSON.stringify(member[id]?.Properties?.Roles).includes(memberRoleId(member, 'plan')),
    ) as string;
    const document = member[policyId]?.Properties?.PolicyDocument as { Statement: { Action: unknown }[] };
    (document.Statement[0] as { Action: unknown }).Action = 'iam:DeleteUser';
    expect(rolePermissions(member, memberRoleId(member, 'plan'))).not.toEqual(
      memberSideOf(s, 'plan', 'member'),
    );
  });

  it('a trust without the organization condition, or naming another role, is reported', () => {
    const member = structuredClone(s.member);
    const role = member[memberRoleId(member, 'delete-key')]?.Properties as Record<string, unknown>;
    const trust = role.AssumeRolePolicyDocument as { Statement: Record<string, unknown>[] };
    delete trust.Statement[0]?.Condition;
    expect(memberRoleProblems(member, 'delete-key', s.prefix)).toHaveLength(1);
    const other = structuredClone(s.member);
    const otherRole = other[memberRoleId(other, 'audit')]?.Properties as Record<string, unknown>;
    const otherTrust = otherRole.AssumeRolePolicyDocument as { Statement: Record<string, unknown>[] };
    (otherTrust.Statement[0] as Record<string, unknown>).Principal = {
      AWS: { Ref: hubRoleParameter('plan') },
    };
    expect(memberRoleProblems(other, 'audit', s.prefix)).toHaveLength(1);
  });
});

describe('configuration', () => {
  it('without organization: no StackSet, nothing assumed, no Organizations call', () => {
    const { resources } = synth({});
    expect(logicalIds(resources, 'AWS::CloudFormation::StackSet')).toEqual([]);
    for (const step of STEP_NAMES) {
      expect(
        stepPermissions(resources, step).filter((p) => /sts:|organizations:/.test(p)),
        step,
      ).toEqual([]);
    }
  });

  it('creates the StackSet as SELF from the management account when told so', () => {
    const { hub } = synthBoth({ organization: organization({ stackSetCallAs: 'SELF' }) });
    expect(hub[onlyLogicalId(hub, 'AWS::CloudFormation::StackSet')]?.Properties?.CallAs).toBe('SELF');
  });

  it('refuses a second StackSet region (the member role names are global)', () => {
    expect(() =>
      loadConfig({ organization: organization({ stackSetRegions: [REGION, 'eu-west-1'] }) }),
    ).toThrow(/organization.stackSetRegions: must name one region/);
  });

  it('refuses a member stack without organization', () => {
    const app = new App();
    expect(() => new RekeyMemberStack(app, MEMBER_STACK_ID, { config: loadConfig({}) })).toThrow(
      /organization/,
    );
  });
});
