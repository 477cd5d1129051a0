import { describe, expect, it } from 'vitest';
import type { StepName } from '../../lambdas/shared/steps.ts';
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

/** The scoped resources of a synthesized stack, as rolePermissions renders them. */
function scope(resources: Resources, config: { userPathPrefix: string; secretPrefix: string }) {
  const table = onlyLogicalId(resources, 'AWS::DynamoDB::Table');
  const topic = onlyLogicalId(resources, 'AWS::SNS::Topic');
  const alias = Object.values(resources).find(
    (r) => r.Type === 'AWS::KMS::Alias' && r.Properties?.AliasName === 'alias/rekey-secrets',
  );
  const secretsKey = getAttId(alias?.Properties?.TargetKeyId);
  const topicKey = getAttId(resources[topic]?.Properties?.KmsMasterKeyId);
  return {
    users: `arn:${PARTITION}:iam::${ACCOUNT}:user${config.userPathPrefix}*`,
    secrets: `arn:${PARTITION}:secretsmanager:${REGION}:${ACCOUNT}:secret:${config.secretPrefix}*`,
    table: `${table}.Arn`,
    topic,
    secretsKey: `${secretsKey}.Arn`,
    topicKey: `${topicKey}.Arn`,
    bus: `arn:${PARTITION}:events:${REGION}:${ACCOUNT}:event-bus/default`,
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
  config: { userPathPrefix: string; secretPrefix: string; cloudTrailLookup: boolean },
): Record<StepName, string[]> {
  const s = scope(resources, config);
  return {
    plan: [
      ...allow(
        ['iam:GetUser', 'iam:ListUserTags', 'iam:ListAccessKeys', 'iam:GetAccessKeyLastUsed'],
        [s.users],
      ),
      ...allow(['dynamodb:UpdateItem'], [s.table]),
    ],
    'create-second-key': [
      ...allow(
        ['iam:ListAccessKeys', 'iam:CreateAccessKey', 'iam:DeleteAccessKey', 'iam:GetAccessKeyLastUsed'],
        [s.users],
      ),
      ...allow(
        [
          'secretsmanager:CreateSecret',
          'secretsmanager:PutSecretValue',
          'secretsmanager:DescribeSecret',
          'secretsmanager:TagResource',
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
      ...allow(['iam:DeleteAccessKey', 'iam:ListAccessKeys'], [s.users]),
    ],
    'check-last-used': [
      ...allow(['iam:GetAccessKeyLastUsed'], [s.users]),
      ...(config.cloudTrailLookup ? allow(['cloudtrail:LookupEvents'], ['*']) : []),
    ],
    'deactivate-old-key': allow(['iam:UpdateAccessKey', 'iam:ListAccessKeys'], [s.users]),
    'verify-rotation': [
      ...allow(['iam:ListAccessKeys', 'iam:GetAccessKeyLastUsed'], [s.users]),
      ...allow(['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], [s.secrets]),
      ...allow(['kms:Decrypt'], [s.secretsKey], s.viaSecretsManager),
    ],
    'reactivate-old-key': allow(['iam:UpdateAccessKey', 'iam:ListAccessKeys'], [s.users]),
    'delete-key': allow(['iam:DeleteAccessKey', 'iam:ListAccessKeys', 'iam:GetAccessKeyLastUsed'], [s.users]),
    notify: [
      ...allow(['sns:Publish'], [s.topic]),
      ...allow(['kms:GenerateDataKey', 'kms:Decrypt'], [s.topicKey], s.viaSns),
      ...allow(['events:PutEvents'], [s.bus]),
      ...allow(['dynamodb:UpdateItem'], [s.table]),
    ],
  };
}

describe('least-privilege function roles', () => {
  const { resources, config } = synth();
  const expected = expectedPermissions(resources, config);

  it.each(STEP_NAMES)('%s has exactly its permissions, nothing more', (step) => {
    expect(stepPermissions(resources, step)).toEqual(
      [...baseline(resources, step), ...expected[step]].sort(),
    );
  });

  it('gives every function a role of its own', () => {
    const roles = STEP_NAMES.map((step) => roleIdOf(functionOf(resources, step)));
    expect(new Set(roles).size).toBe(STEP_NAMES.length);
  });

  it('adds cloudtrail:LookupEvents to check-last-used only when the lookup is enabled', () => {
    // Prepare
    const { resources: withLookup, config: lookupConfig } = synth({ cloudTrailLookup: true });
    const expectedWithLookup = expectedPermissions(withLookup, lookupConfig);

    // Assess
    expect(stepPermissions(withLookup, 'check-last-used')).toContain('Allow cloudtrail:LookupEvents *');
    for (const step of STEP_NAMES) {
      expect(stepPermissions(withLookup, step), step).toEqual(
        [...baseline(withLookup, step), ...expectedWithLookup[step]].sort(),
      );
    }
    expect(stepPermissions(resources, 'check-last-used')).not.toContain('Allow cloudtrail:LookupEvents *');
  });

  it('scopes users and secrets to the configured path and prefix', () => {
    // Prepare
    const { resources: custom, config: customConfig } = synth({
      userPathPrefix: '/ci/',
      secretPrefix: 'keys/',
    });

    // Act
    const plan = stepPermissions(custom, 'plan');
    const create = stepPermissions(custom, 'create-second-key');

    // Assess
    expect(plan).toContain(`Allow iam:GetUser arn:aws:iam::${ACCOUNT}:user/ci/*`);
    expect(plan.join('\n')).not.toContain(':user/*');
    expect(create).toContain(
      `Allow secretsmanager:CreateSecret arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:keys/*`,
    );
    const expectedCustom = expectedPermissions(custom, customConfig);
    for (const step of STEP_NAMES) {
      expect(stepPermissions(custom, step), step).toEqual(
        [...baseline(custom, step), ...expectedCustom[step]].sort(),
      );
    }
  });
});

describe('the state machine role', () => {
  const { resources } = synth();

  it('may invoke exactly the rekey functions, write its logs and traces', () => {
    const machine = resources[onlyLogicalId(resources, 'AWS::StepFunctions::StateMachine')];
    const roleId = getAttId(machine?.Properties?.RoleArn);
    const invokes = STEP_NAMES.flatMap((step) =>
      allow(['lambda:InvokeFunction'], [lambdaArn(step), `${lambdaArn(step)}:*`]),
    );
    expect(rolePermissions(resources, roleId)).toEqual(
      [
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
      ].sort(),
    );
  });

  it('is the only role besides the function roles', () => {
    const functionRoles = STEP_NAMES.map((step) => roleIdOf(functionOf(resources, step)));
    const others = logicalIds(resources, 'AWS::IAM::Role').filter((id) => !functionRoles.includes(id));
    expect(others).toHaveLength(1);
  });
});
