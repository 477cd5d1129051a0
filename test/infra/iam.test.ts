/**
 * Least privilege, role by role: every role of the template has exactly the permissions listed
 * here (an added action, resource, condition or role fails a test until it is justified here),
 * key-changing actions carry the scoping conditions, protected users are denied explicitly, and
 * only the verify steps can read a secret.
 */
import { App, type CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { describe, expect, it } from 'vitest';
import type { StepName } from '../../contract/functions.ts';
import { loadConfig } from '../../infra/config.ts';
import { RekeyStack } from '../../infra/rekey-stack.ts';
import {
  ACCOUNT_WIDE_IAM_READS,
  ALL_USERS_IAM_READS,
  auditIds,
  EVERY_USER_AUDIT_READS,
  expectedAuditRoles,
} from './audit-helpers.ts';
import {
  ACCOUNT,
  allow,
  functionOf,
  getAttId,
  lambdaArn,
  logicalIds,
  onlyLogicalId,
  PARTITION,
  REGION,
  type Resources,
  roleIdOf,
  rolePermissions,
  STEP_NAMES,
  stepPermissions,
  synth,
} from './helpers.ts';

/** The actions that change a user's keys: written out here, not imported, as the spec. */
const KEY_CHANGES = ['iam:CreateAccessKey', 'iam:UpdateAccessKey', 'iam:DeleteAccessKey'];
/** The same for service-specific credentials (Keyspaces, CodeCommit): only the rotation steps use them. */
const SERVICE_CREDENTIAL_CHANGES = [
  'iam:CreateServiceSpecificCredential',
  'iam:UpdateServiceSpecificCredential',
  'iam:DeleteServiceSpecificCredential',
];
const CREDENTIAL_CHANGES = [...KEY_CHANGES, ...SERVICE_CREDENTIAL_CHANGES];
const LIST_SSC = 'iam:ListServiceSpecificCredentials';

interface ScopeConfig {
  userPathPrefix: string;
  secretPrefix: string;
  cloudTrailLookup: boolean;
  optInTag?: string | undefined;
  protectedUsers: string[];
}

/** The scoped resources of a synthesized stack, as rolePermissions renders them. */
function scope(resources: Resources, config: ScopeConfig, stack: RekeyStack) {
  // The lock table (the audit's key-id cache is the other table, audit-helpers.ts).
  const [table, ...others] = logicalIds(resources, 'AWS::DynamoDB::Table').filter(
    (id) => id !== auditIds(stack).keyIdCache,
  );
  if (!table || others.length) throw new Error('expected one lock table');
  const topic = onlyLogicalId(resources, 'AWS::SNS::Topic');
  const alias = Object.values(resources).find(
    (r) => r.Type === 'AWS::KMS::Alias' && r.Properties?.AliasName === 'alias/rekey-secrets',
  );
  const secretsKey = getAttId(alias?.Properties?.TargetKeyId);
  const topicKey = getAttId(resources[topic]?.Properties?.KmsMasterKeyId);
  const users = `arn:${PARTITION}:iam::${ACCOUNT}:user${config.userPathPrefix}*`;
  const everyUser = `arn:${PARTITION}:iam::${ACCOUNT}:user/*`;
  const optIn = config.optInTag ? { Null: { [`aws:ResourceTag/${config.optInTag}`]: 'false' } } : undefined;
  return {
    users,
    everyUser,
    /** Reads on the users in scope; key changes only with the opt-in tag, when one is configured. */
    onUsers: (actions: string[]) => [
      ...allow(
        actions.filter((a) => !CREDENTIAL_CHANGES.includes(a)),
        [users],
      ),
      ...allow(
        actions.filter((a) => CREDENTIAL_CHANGES.includes(a)),
        [users],
        optIn,
      ),
    ],
    /** The explicit Deny on protected users: the name at the root path and under any path. */
    protectedDeny: config.protectedUsers.flatMap((name) =>
      CREDENTIAL_CHANGES.flatMap((action) => [
        `Deny ${action} arn:${PARTITION}:iam::${ACCOUNT}:user/${name}`,
        `Deny ${action} arn:${PARTITION}:iam::${ACCOUNT}:user/*/${name}`,
      ]),
    ),
    secrets: `arn:${PARTITION}:secretsmanager:${REGION}:${ACCOUNT}:secret:${config.secretPrefix}*`,
    table: `${table}.Arn`,
    topic,
    secretsKey: `${secretsKey}.Arn`,
    topicKey: `${topicKey}.Arn`,
    bus: `arn:${PARTITION}:events:${REGION}:${ACCOUNT}:event-bus/default`,
    cleanupQueue: stack.resolve(
      stack.getLogicalId(stack.cleanup.deadLetterQueue.node.defaultChild as CfnElement),
    ) as string,
    viaSecretsManager: { StringEquals: { 'kms:ViaService': `secretsmanager.${REGION}.amazonaws.com` } },
    viaSns: { StringEquals: { 'kms:ViaService': `sns.${REGION}.amazonaws.com` } },
  };
}

/** What every function may do regardless of its step: write its own logs, send traces. */
function baseline(resources: Resources, step: StepName): string[] {
  const logGroup = functionOf(resources, step).Properties.LoggingConfig.LogGroup.Ref;
  return [
    ...allow(['logs:CreateLogStream', 'logs:PutLogEvents'], [`${logGroup}.Arn`]),
    // X-Ray has no resource type.
    ...allow(['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], ['*']),
  ];
}

function expectedPermissions(
  resources: Resources,
  config: ScopeConfig,
  stack: RekeyStack,
): Record<StepName, string[]> {
  const s = scope(resources, config, stack);
  const expected: Record<StepName, string[]> = {
    plan: [
      // Any user's path and tags: the plan must see a user outside the path to refuse it.
      ...allow(['iam:GetUser'], [s.everyUser]),
      ...s.onUsers(['iam:ListUserTags', 'iam:ListAccessKeys', 'iam:GetAccessKeyLastUsed', LIST_SSC]),
      ...allow(['dynamodb:GetItem', 'dynamodb:UpdateItem'], [s.table]),
      // Which secret exists and which of its versions is current: metadata, never a value.
      ...allow(['secretsmanager:DescribeSecret'], [s.secrets]),
    ],
    'create-second-key': [
      ...s.onUsers([
        // The eligibility re-check right before CreateAccessKey.
        'iam:GetUser',
        'iam:ListAccessKeys',
        'iam:CreateAccessKey',
        'iam:DeleteAccessKey',
        'iam:GetAccessKeyLastUsed',
        LIST_SSC,
        'iam:CreateServiceSpecificCredential',
        'iam:DeleteServiceSpecificCredential',
      ]),
      ...allow(
        [
          'secretsmanager:CreateSecret',
          'secretsmanager:PutResourcePolicy',
          'secretsmanager:PutSecretValue',
          'secretsmanager:DescribeSecret',
          'secretsmanager:TagResource',
          // Drops the AWSPENDING label of a never-handed-out key it removes.
          'secretsmanager:UpdateSecretVersionStage',
        ],
        [s.secrets],
      ),
      ...allow(['kms:Encrypt', 'kms:GenerateDataKey'], [s.secretsKey], s.viaSecretsManager),
      ...allow(['dynamodb:GetItem', 'dynamodb:UpdateItem'], [s.table]),
    ],
    'verify-new-key': [
      ...allow(
        [
          'secretsmanager:GetSecretValue',
          'secretsmanager:DescribeSecret',
          'secretsmanager:UpdateSecretVersionStage',
        ],
        [s.secrets],
      ),
      ...allow(['kms:Decrypt'], [s.secretsKey], s.viaSecretsManager),
      ...s.onUsers([
        'iam:DeleteAccessKey',
        'iam:ListAccessKeys',
        LIST_SSC,
        'iam:DeleteServiceSpecificCredential',
      ]),
    ],
    'check-last-used': [
      ...s.onUsers(['iam:GetAccessKeyLastUsed']),
      ...(config.cloudTrailLookup ? allow(['cloudtrail:LookupEvents'], ['*']) : []),
    ],
    'deactivate-old-key': s.onUsers([
      'iam:GetUser',
      'iam:UpdateAccessKey',
      'iam:ListAccessKeys',
      'iam:GetAccessKeyLastUsed',
      LIST_SSC,
      'iam:UpdateServiceSpecificCredential',
    ]),
    'verify-rotation': [
      ...s.onUsers([
        'iam:GetUser',
        'iam:ListAccessKeys',
        'iam:GetAccessKeyLastUsed',
        'iam:DeleteAccessKey',
        LIST_SSC,
        'iam:DeleteServiceSpecificCredential',
      ]),
      ...allow(['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], [s.secrets]),
      ...allow(['kms:Decrypt'], [s.secretsKey], s.viaSecretsManager),
    ],
    'reactivate-old-key': s.onUsers([
      'iam:UpdateAccessKey',
      'iam:ListAccessKeys',
      LIST_SSC,
      'iam:UpdateServiceSpecificCredential',
    ]),
    'delete-key': s.onUsers([
      'iam:GetUser',
      'iam:DeleteAccessKey',
      'iam:ListAccessKeys',
      'iam:GetAccessKeyLastUsed',
      LIST_SSC,
      'iam:DeleteServiceSpecificCredential',
    ]),
    cleanup: [
      ...allow(['dynamodb:GetItem', 'dynamodb:UpdateItem'], [s.table]),
      ...s.onUsers([
        'iam:ListAccessKeys',
        'iam:GetAccessKeyLastUsed',
        'iam:DeleteAccessKey',
        LIST_SSC,
        'iam:DeleteServiceSpecificCredential',
      ]),
      ...allow(['secretsmanager:DescribeSecret', 'secretsmanager:UpdateSecretVersionStage'], [s.secrets]),
      // The on-failure destination of the rule's asynchronous invocations.
      ...allow(['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'], [`${s.cleanupQueue}.Arn`]),
    ],
    notify: [
      ...allow(['sns:Publish'], [s.topic]),
      ...allow(['kms:GenerateDataKey', 'kms:Decrypt'], [s.topicKey], s.viaSns),
      ...allow(['events:PutEvents'], [s.bus]),
      ...allow(['dynamodb:UpdateItem'], [s.table]),
    ],
  };
  // Every step that can change a credential carries the Deny on the protected users, for both kinds.
  for (const step of STEP_NAMES) {
    if (expected[step].some((p) => CREDENTIAL_CHANGES.some((a) => p.startsWith(`Allow ${a} `)))) {
      expected[step].push(...s.protectedDeny);
    }
  }
  return expected;
}

/** The state machine's role: invoke exactly the rekey functions, deliver its logs, send traces. */
function stateMachinePermissions(): string[] {
  const invokes = STEP_NAMES.flatMap((step) =>
    allow(['lambda:InvokeFunction'], [lambdaArn(step), `${lambdaArn(step)}:*`]),
  );
  return [
    ...invokes,
    // Log delivery and X-Ray have no resource types.
    ...allow(
      [
        'logs:CreateLogDelivery',
        'logs:GetLogDelivery',
        'logs:UpdateLogDelivery',
        'logs:DeleteLogDelivery',
        'logs:ListLogDeliveries',
        'logs:PutResourcePolicy',
        'logs:DescribeResourcePolicies',
        'logs:DescribeLogGroups',
      ],
      ['*'],
    ),
    ...allow(
      [
        'xray:PutTraceSegments',
        'xray:PutTelemetryRecords',
        'xray:GetSamplingRules',
        'xray:GetSamplingTargets',
      ],
      ['*'],
    ),
  ].sort();
}

/** Every role of the template with the permissions it must have, exactly. */
function expectedRoles(resources: Resources, config: ScopeConfig, stack: RekeyStack): Map<string, string[]> {
  const expected = expectedPermissions(resources, config, stack);
  const roles = new Map<string, string[]>();
  for (const step of STEP_NAMES) {
    roles.set(
      roleIdOf(functionOf(resources, step)),
      [...baseline(resources, step), ...expected[step]].sort(),
    );
  }
  const machine = resources[onlyLogicalId(resources, 'AWS::StepFunctions::StateMachine')];
  roles.set(getAttId(machine?.Properties?.RoleArn), stateMachinePermissions());
  return roles;
}

const CONFIGS: Array<[string, Record<string, unknown>]> = [
  ['the defaults', {}],
  [
    'a path, a prefix and CloudTrail lookups',
    { userPathPrefix: '/ci/', secretPrefix: 'keys/', cloudTrailLookup: true },
  ],
  [
    'an opt-in tag and protected users',
    { optInTag: 'rekey:opt-in', protectedUsers: ['break-glass', 'terraform'], userPathPrefix: '/rotated/' },
  ],
  [
    'every audit option',
    {
      deactivateUnused: true,
      securityHub: true,
      optInTag: 'rekey:opt-in',
      protectedUsers: ['break-glass'],
      userPathPrefix: '/rotated/',
    },
  ],
  ['no automatic rotation', { autoRotate: false }],
  ['no audit of service-specific credentials', { auditServiceCredentials: false }],
];

describe.each(CONFIGS)('least privilege with %s', (_name, raw) => {
  const { resources, config, stack } = synth(raw);
  // The audit's two roles: test/infra/audit-helpers.ts (and audit.test.ts, for each policy toggle).
  const expected = new Map([
    ...expectedRoles(resources, config, stack),
    ...expectedAuditRoles(resources, stack, config),
  ]);

  it('every role of the template is one this test knows, and has exactly its permissions', () => {
    expect(logicalIds(resources, 'AWS::IAM::Role').sort()).toEqual([...expected.keys()].sort());
    for (const [roleId, permissions] of expected) {
      expect(rolePermissions(resources, roleId), roleId).toEqual(permissions);
    }
  });

  it.each(STEP_NAMES)('%s has exactly its permissions, nothing more', (step) => {
    expect(stepPermissions(resources, step)).toEqual(expected.get(roleIdOf(functionOf(resources, step))));
  });

  it('lets only the Lambda service assume each function role', () => {
    for (const step of STEP_NAMES) {
      expect(
        resources[roleIdOf(functionOf(resources, step))]?.Properties?.AssumeRolePolicyDocument,
        step,
      ).toEqual({
        Version: '2012-10-17',
        Statement: [
          { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
        ],
      });
    }
    expect(resources[auditIds(stack).role]?.Properties?.AssumeRolePolicyDocument).toEqual({
      Version: '2012-10-17',
      Statement: [
        { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
      ],
    });
  });

  it('gives every function a role of its own', () => {
    const roles = STEP_NAMES.map((step) => roleIdOf(functionOf(resources, step)));
    expect(new Set(roles).size).toBe(STEP_NAMES.length);
  });

  it('scopes every IAM user permission to the configured path and every secret one to the prefix', () => {
    const everyUserReads = new Map([
      [roleIdOf(functionOf(resources, 'plan')), ['iam:GetUser']],
      [auditIds(stack).role, EVERY_USER_AUDIT_READS],
    ]);
    for (const roleId of logicalIds(resources, 'AWS::IAM::Role')) {
      for (const p of rolePermissions(resources, roleId)) {
        const [effect, action = '', resource = ''] = p.split(' ');
        // (Except the audit's account-wide reads, which have no resource type, its listing of
        // every user's service-specific credentials at once, and the reads of any user that
        // decide or report whether it is in scope: the plan's GetUser, the audit's key ids.)
        const everyUser = everyUserReads.get(roleId)?.includes(action) ?? false;
        if (everyUser) expect(resource, p).toBe(`arn:${PARTITION}:iam::${ACCOUNT}:user/*`);
        if (
          effect === 'Allow' &&
          action.startsWith('iam:') &&
          !everyUser &&
          !ACCOUNT_WIDE_IAM_READS.includes(action) &&
          !ALL_USERS_IAM_READS.includes(action)
        ) {
          expect(resource, p).toBe(`arn:${PARTITION}:iam::${ACCOUNT}:user${config.userPathPrefix}*`);
        }
        if (action.startsWith('secretsmanager:')) {
          expect(resource, p).toBe(
            `arn:${PARTITION}:secretsmanager:${REGION}:${ACCOUNT}:secret:${config.secretPrefix}*`,
          );
        }
      }
    }
  });

  it('only the verify steps can read a secret: no other role has GetSecretValue or kms:Decrypt on its key', () => {
    const s = scope(resources, config, stack);
    const readers = logicalIds(resources, 'AWS::IAM::Role').filter((roleId) =>
      rolePermissions(resources, roleId).some((p) => {
        const [effect, action = '', resource = ''] = p.split(' ');
        const reads =
          (matches(action, 'secretsmanager:GetSecretValue') &&
            (resource === s.secrets || resource === '*')) ||
          (matches(action, 'kms:Decrypt') && (resource === s.secretsKey || resource === '*'));
        return effect === 'Allow' && reads;
      }),
    );
    expect(readers.sort()).toEqual(
      (['verify-new-key', 'verify-rotation'] as const)
        .map((step) => roleIdOf(functionOf(resources, step)))
        .sort(),
    );
  });
});

/** IAM action matching: `*` in a granted action matches any characters. */
function matches(granted: string, action: string): boolean {
  const pattern = new RegExp(`^${granted.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`, 'i');
  return pattern.test(action);
}

describe('scoping conditions', () => {
  it('key changes require the opt-in tag when one is configured; reads do not', () => {
    // Prepare: the audit deactivates unused keys too.
    const { resources } = synth({
      optInTag: 'rekey:opt-in',
      protectedUsers: ['break-glass'],
      deactivateUnused: true,
    });
    const users = `arn:${PARTITION}:iam::${ACCOUNT}:user/*`;
    const tagged = ` if ${JSON.stringify({ Null: { 'aws:ResourceTag/rekey:opt-in': 'false' } })}`;

    // Act
    const create = stepPermissions(resources, 'create-second-key');

    // Assess
    expect(create).toContain(`Allow iam:CreateAccessKey ${users}${tagged}`);
    expect(create).toContain(`Allow iam:DeleteAccessKey ${users}${tagged}`);
    expect(create).toContain(`Allow iam:ListAccessKeys ${users}`);
    expect(stepPermissions(resources, 'deactivate-old-key')).toContain(
      `Allow iam:UpdateAccessKey ${users}${tagged}`,
    );
    expect(create).toContain(`Allow iam:CreateServiceSpecificCredential ${users}${tagged}`);
    expect(create).toContain(`Allow iam:DeleteServiceSpecificCredential ${users}${tagged}`);
    expect(create).toContain(`Allow iam:ListServiceSpecificCredentials ${users}`);
    expect(stepPermissions(resources, 'deactivate-old-key')).toContain(
      `Allow iam:UpdateServiceSpecificCredential ${users}${tagged}`,
    );
    // Every credential change of every role is conditioned; the plan reads the tags of any user in scope.
    for (const roleId of logicalIds(resources, 'AWS::IAM::Role')) {
      for (const p of rolePermissions(resources, roleId)) {
        if (CREDENTIAL_CHANGES.some((a) => p.startsWith(`Allow ${a} `)))
          expect(p.endsWith(tagged), p).toBe(true);
      }
    }
    expect(stepPermissions(resources, 'plan')).toContain(`Allow iam:ListUserTags ${users}`);
  });

  it('without an opt-in tag, key changes carry no condition', () => {
    const { resources } = synth();
    expect(stepPermissions(resources, 'delete-key')).toContain(
      `Allow iam:DeleteAccessKey arn:${PARTITION}:iam::${ACCOUNT}:user/*`,
    );
  });

  it('every role that can change a key denies it on each protected user, at any path', () => {
    // Prepare: the audit deactivates unused keys too.
    const { resources, stack } = synth({
      protectedUsers: ['break-glass', 'terraform'],
      deactivateUnused: true,
    });
    const changers = logicalIds(resources, 'AWS::IAM::Role').filter((roleId) =>
      rolePermissions(resources, roleId).some((p) => KEY_CHANGES.some((a) => p.startsWith(`Allow ${a} `))),
    );

    // Assess: the key-changing steps and the audit, and all of them carry the whole Deny.
    expect(changers.sort()).toEqual(
      [
        ...(
          [
            'create-second-key',
            'verify-new-key',
            'deactivate-old-key',
            'reactivate-old-key',
            'verify-rotation',
            'delete-key',
            'cleanup',
          ] as const
        ).map((step) => roleIdOf(functionOf(resources, step))),
        auditIds(stack).role,
      ].sort(),
    );
    const rotationSteps = [
      'create-second-key',
      'verify-new-key',
      'deactivate-old-key',
      'reactivate-old-key',
      'verify-rotation',
      'delete-key',
      'cleanup',
    ] as const;
    const rotationRoles = rotationSteps.map((step) => roleIdOf(functionOf(resources, step)));
    for (const roleId of changers) {
      const permissions = rolePermissions(resources, roleId);
      // The rotation steps change service-specific credentials too: their Deny covers those actions.
      const denied = rotationRoles.includes(roleId) ? CREDENTIAL_CHANGES : KEY_CHANGES;
      for (const name of ['break-glass', 'terraform']) {
        for (const action of denied) {
          expect(permissions, roleId).toContain(
            `Deny ${action} arn:${PARTITION}:iam::${ACCOUNT}:user/${name}`,
          );
          expect(permissions, roleId).toContain(
            `Deny ${action} arn:${PARTITION}:iam::${ACCOUNT}:user/*/${name}`,
          );
        }
      }
    }
    // The Deny matches whole names only: no pattern like user/*break-glass (which would hit xbreak-glass).
    const denied = changers.flatMap((roleId) =>
      rolePermissions(resources, roleId).filter((p) => p.startsWith('Deny ')),
    );
    for (const p of denied) expect(p).toMatch(/:user\/(\*\/)?(break-glass|terraform)$/);
  });

  it('no protected users, no Deny', () => {
    const { resources } = synth();
    for (const roleId of logicalIds(resources, 'AWS::IAM::Role')) {
      expect(
        rolePermissions(resources, roleId).filter((p) => p.startsWith('Deny ')),
        roleId,
      ).toEqual([]);
    }
  });
});

describe('the permission detector', () => {
  it('sees a permission added by any route, so an exact comparison fails on it', () => {
    // Prepare: grants through a role's default policy, a separate policy, a managed policy that
    // names the role, and an AWS managed policy attached by ARN.
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new RekeyStack(app, 'RekeyStack', { config: loadConfig({}) });
    const plan = stack.functions.plan.role;
    plan.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['iam:DeleteUser'], resources: ['*'] }));
    new iam.Policy(stack, 'Extra', {
      roles: [stack.functions.notify.role],
      statements: [new iam.PolicyStatement({ actions: ['sns:DeleteTopic'], resources: ['*'] })],
    });
    new iam.ManagedPolicy(stack, 'Sneaky', {
      roles: [stack.functions['delete-key'].role],
      statements: [new iam.PolicyStatement({ actions: ['iam:CreateUser'], resources: ['*'] })],
    });
    stack.functions['check-last-used'].role.addManagedPolicy(
      iam.ManagedPolicy.fromAwsManagedPolicyName('ReadOnlyAccess'),
    );

    // Act
    const resources = Template.fromStack(stack).toJSON().Resources as Resources;
    const config = loadConfig({});
    const expected = expectedRoles(resources, config, stack);

    // Assess
    expect(stepPermissions(resources, 'plan')).toContain('Allow iam:DeleteUser *');
    expect(stepPermissions(resources, 'notify')).toContain('Allow sns:DeleteTopic *');
    expect(stepPermissions(resources, 'delete-key')).toContain('Allow iam:CreateUser *');
    expect(stepPermissions(resources, 'check-last-used')).toContain(
      `Managed arn:${PARTITION}:iam::aws:policy/ReadOnlyAccess`,
    );
    for (const step of ['plan', 'notify', 'delete-key', 'check-last-used'] as const) {
      expect(stepPermissions(resources, step), step).not.toEqual(
        expected.get(roleIdOf(functionOf(resources, step))),
      );
    }
    expect(stepPermissions(resources, 'deactivate-old-key')).toEqual(
      expected.get(roleIdOf(functionOf(resources, 'deactivate-old-key'))),
    );
  });
});
