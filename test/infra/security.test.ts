/**
 * Encryption and resource policies, by property: the secrets key's policy names every user of the
 * key and grants the account no cryptographic use; the create step tells each secret's policy who
 * may read it; every log group is encrypted and kept for the configured time; the topic refuses
 * plain HTTP and lets only this account's alarms publish besides rekey.
 */
import { describe, expect, it } from 'vitest';
import { LOG_RETENTION_DAYS } from '../../infra/config.ts';
import {
  ACCOUNT,
  functionOf,
  getAttId,
  logicalIds,
  onlyLogicalId,
  PARTITION,
  policyStatements,
  REGION,
  type Resources,
  roleIdOf,
  synth,
} from './helpers.ts';

const CONSUMER_ROLE = `arn:${PARTITION}:iam::${ACCOUNT}:role/ci/deployer`;
const CONSUMER_ACCOUNT = `arn:${PARTITION}:iam::210987654321:role/reader`;
const ROOT = `arn:${PARTITION}:iam::${ACCOUNT}:root`;

function secretsKeyId(resources: Resources): string {
  const alias = Object.values(resources).find(
    (r) => r.Type === 'AWS::KMS::Alias' && r.Properties?.AliasName === 'alias/rekey-secrets',
  );
  return getAttId(alias?.Properties?.TargetKeyId);
}

const roleArn = (resources: Resources, step: Parameters<typeof functionOf>[1]) =>
  `${roleIdOf(functionOf(resources, step))}.Arn`;

describe('the secrets key policy', () => {
  const { resources } = synth({
    consumerPrincipals: [CONSUMER_ROLE, CONSUMER_ACCOUNT],
    userPathPrefix: '/rotated/',
    secretPrefix: 'keys/',
  });
  const withoutTags = synth({
    consumerPrincipals: [CONSUMER_ROLE, CONSUMER_ACCOUNT],
    userPathPrefix: '/rotated/',
    secretPrefix: 'keys/',
    consumerTag: false,
  }).resources;
  const statements = policyStatements(resources[secretsKeyId(resources)]?.Properties?.KeyPolicy, resources);
  const viaSecretsManager = {
    StringEquals: { 'kms:ViaService': `secretsmanager.${REGION}.amazonaws.com` },
    StringLike: {
      'kms:EncryptionContext:SecretARN': `arn:${PARTITION}:secretsmanager:${REGION}:${ACCOUNT}:secret:keys/*`,
    },
  };

  it('names exactly the account (to administer), the create step, the verify steps, the consumers and the users and roles of the account', () => {
    const bySid = Object.fromEntries(statements.map((s) => [s.Sid, s]));
    expect(Object.keys(bySid).sort()).toEqual(
      [
        'AccountAdministersTheKey',
        'ConsumersDecrypt',
        'CreateStepEncrypts',
        'UsersAndRolesOfTheAccountDecrypt',
        'VerifyNewKeyStepDecrypts',
        'VerifyRotationStepDecrypts',
      ].sort(),
    );
    expect(statements).toHaveLength(6);
    expect(bySid.CreateStepEncrypts).toEqual({
      Sid: 'CreateStepEncrypts',
      Effect: 'Allow',
      Principal: { AWS: roleArn(resources, 'create-second-key') },
      Action: ['kms:Encrypt', 'kms:GenerateDataKey'],
      Resource: '*',
      Condition: viaSecretsManager,
    });
    for (const [sid, step] of [
      ['VerifyNewKeyStepDecrypts', 'verify-new-key'],
      ['VerifyRotationStepDecrypts', 'verify-rotation'],
    ] as const) {
      expect(bySid[sid]).toEqual({
        Sid: sid,
        Effect: 'Allow',
        Principal: { AWS: roleArn(resources, step) },
        Action: 'kms:Decrypt',
        Resource: '*',
        Condition: viaSecretsManager,
      });
    }
    expect(bySid.ConsumersDecrypt).toEqual({
      Sid: 'ConsumersDecrypt',
      Effect: 'Allow',
      Principal: { AWS: [CONSUMER_ROLE, CONSUMER_ACCOUNT] },
      Action: 'kms:Decrypt',
      Resource: '*',
      Condition: viaSecretsManager,
    });
    // Consumer tags name principals at run time: any IAM user or role of this account may
    // decrypt through Secrets Manager, for rekey's secrets; each secret's own Deny does the rest.
    expect(bySid.UsersAndRolesOfTheAccountDecrypt).toEqual({
      Sid: 'UsersAndRolesOfTheAccountDecrypt',
      Effect: 'Allow',
      Principal: { AWS: '*' },
      Action: 'kms:Decrypt',
      Resource: '*',
      Condition: {
        StringEquals: { ...viaSecretsManager.StringEquals, 'kms:CallerAccount': ACCOUNT },
        StringLike: viaSecretsManager.StringLike,
        ArnLike: {
          'aws:PrincipalArn': [
            `arn:${PARTITION}:iam::${ACCOUNT}:user/*`,
            `arn:${PARTITION}:iam::${ACCOUNT}:role/*`,
          ],
        },
      },
    });
  });

  it('with consumer tags turned off, lets only the users under the path decrypt, besides the named principals', () => {
    const narrow = policyStatements(
      withoutTags[secretsKeyId(withoutTags)]?.Properties?.KeyPolicy,
      withoutTags,
    );
    expect(narrow.map((s) => s.Sid).sort()).toEqual(
      [
        'AccountAdministersTheKey',
        'ConsumersDecrypt',
        'CreateStepEncrypts',
        'UsersUnderThePathDecrypt',
        'VerifyNewKeyStepDecrypts',
        'VerifyRotationStepDecrypts',
      ].sort(),
    );
    expect(narrow.find((s) => s.Sid === 'UsersUnderThePathDecrypt')).toEqual({
      Sid: 'UsersUnderThePathDecrypt',
      Effect: 'Allow',
      Principal: { AWS: '*' },
      Action: 'kms:Decrypt',
      Resource: '*',
      Condition: {
        StringEquals: { ...viaSecretsManager.StringEquals, 'kms:CallerAccount': ACCOUNT },
        StringLike: viaSecretsManager.StringLike,
        ArnLike: { 'aws:PrincipalArn': `arn:${PARTITION}:iam::${ACCOUNT}:user/rotated/*` },
      },
    });
  });

  it('lets no account root, federated session or other account decrypt, except the consumers it names', () => {
    for (const policy of [
      statements,
      policyStatements(withoutTags[secretsKeyId(withoutTags)]?.Properties?.KeyPolicy, withoutTags),
    ]) {
      const decrypters = policy.filter((s) => s.Sid !== 'AccountAdministersTheKey');
      const text = JSON.stringify(decrypters);
      expect(text).not.toContain(':root');
      expect(text).not.toContain('federated-user');
      // A wildcard principal only with the caller's account pinned and an ARN pattern of it.
      for (const s of decrypters.filter((x) => JSON.stringify(x.Principal) === '{"AWS":"*"}')) {
        expect(s.Condition).toMatchObject({ StringEquals: { 'kms:CallerAccount': ACCOUNT } });
        const patterns = [
          (s.Condition as { ArnLike: { 'aws:PrincipalArn': string | string[] } }).ArnLike['aws:PrincipalArn'],
        ].flat();
        for (const p of patterns)
          expect(p).toMatch(new RegExp(`^arn:${PARTITION}:iam::${ACCOUNT}:(user|role)/`));
      }
      // The only other-account principal is the configured consumer.
      const named = decrypters.flatMap((s) => [(s.Principal as { AWS?: unknown }).AWS ?? []].flat());
      expect(named.filter((p) => typeof p === 'string' && p.includes('210987654321'))).toEqual([
        CONSUMER_ACCOUNT,
      ]);
    }
  });

  it('lets the account administer the key but never use it, grant it, or rewrite it with kms:*', () => {
    const admin = statements.find((s) => s.Sid === 'AccountAdministersTheKey');
    expect(admin?.Principal).toEqual({ AWS: ROOT });
    const actions = admin?.Action as string[];
    expect(actions).toContain('kms:PutKeyPolicy');
    expect(actions).toContain('kms:ScheduleKeyDeletion');
    for (const action of actions) {
      expect(action, action).not.toMatch(/\*|Decrypt|Encrypt|GenerateDataKey|CreateGrant|Sign|Verify|Mac/);
    }
    // No other statement names the account root: nothing delegates use of the key to IAM policies.
    const others = statements.filter((s) => s !== admin);
    expect(JSON.stringify(others)).not.toContain(ROOT);
  });

  it('keeps every use of the key inside Secrets Manager and rekey secrets', () => {
    for (const s of statements.filter((x) => x.Sid !== 'AccountAdministersTheKey')) {
      expect(s.Condition, String(s.Sid)).toMatchObject(viaSecretsManager);
    }
  });

  it('names no consumer when none is configured', () => {
    const { resources: plain } = synth();
    const sids = policyStatements(plain[secretsKeyId(plain)]?.Properties?.KeyPolicy, plain).map((s) => s.Sid);
    expect(sids).not.toContain('ConsumersDecrypt');
    expect(sids).toHaveLength(5);
  });
});

describe('the secret resource policy inputs', () => {
  it('the create step learns the consumers and exactly the two verify roles', () => {
    // Prepare
    const { resources } = synth({ consumerPrincipals: [CONSUMER_ROLE, CONSUMER_ACCOUNT] });

    // Act
    const variables = functionOf(resources, 'create-second-key').Properties.Environment.Variables;

    // Assess
    expect(variables.REKEY_CONSUMER_PRINCIPALS).toBe(`${CONSUMER_ROLE},${CONSUMER_ACCOUNT}`);
    expect(variables.REKEY_SECRET_READER_ROLES).toEqual({
      'Fn::Join': [
        ',',
        [
          { 'Fn::GetAtt': [roleIdOf(functionOf(resources, 'verify-new-key')), 'Arn'] },
          { 'Fn::GetAtt': [roleIdOf(functionOf(resources, 'verify-rotation')), 'Arn'] },
        ],
      ],
    });
  });
});

describe('log groups', () => {
  it.each([
    ['the defaults', {}],
    ['a 30-day retention', { logRetentionDays: 30 }],
  ])('every one is KMS-encrypted with the logs key and kept for the configured retention (%s)', (_n, raw) => {
    const { resources, config } = synth(raw);
    const logGroups = logicalIds(resources, 'AWS::Logs::LogGroup');
    expect(logGroups.length).toBeGreaterThan(0);
    const keys = new Set(logGroups.map((id) => getAttId(resources[id]?.Properties?.KmsKeyId)));
    expect(keys.size).toBe(1);
    const [logsKey] = [...keys];
    expect(logsKey).not.toBe(secretsKeyId(resources));
    for (const id of logGroups) {
      expect(resources[id]?.Properties?.RetentionInDays, id).toBe(config.logRetentionDays);
      expect(LOG_RETENTION_DAYS).toContain(resources[id]?.Properties?.RetentionInDays);
    }
  });

  it('the state machine logs to an encrypted log group', () => {
    const { resources } = synth();
    const machine = resources[onlyLogicalId(resources, 'AWS::StepFunctions::StateMachine')];
    const logging = machine?.Properties?.LoggingConfiguration as
      | { Destinations: { CloudWatchLogsLogGroup: { LogGroupArn: unknown } }[] }
      | undefined;
    const destination = logging?.Destinations[0];
    const logGroup = resources[getAttId(destination?.CloudWatchLogsLogGroup.LogGroupArn)];
    expect(logGroup?.Properties?.KmsKeyId).toEqual({ 'Fn::GetAtt': [expect.any(String), 'Arn'] });
  });

  it('the logs key lets CloudWatch Logs use it for this account and region only, and rotates', () => {
    const { resources } = synth();
    const [anyGroup] = logicalIds(resources, 'AWS::Logs::LogGroup');
    const keyId = getAttId(resources[anyGroup ?? '']?.Properties?.KmsKeyId);
    expect(resources[keyId]?.Properties?.EnableKeyRotation).toBe(true);
    expect((resources[keyId] as { DeletionPolicy?: string } | undefined)?.DeletionPolicy).toBe('Retain');
    const statements = policyStatements(resources[keyId]?.Properties?.KeyPolicy, resources);
    const logs = statements.filter(
      (s) => JSON.stringify(s.Principal) === JSON.stringify({ Service: `logs.${REGION}.amazonaws.com` }),
    );
    expect(logs).toHaveLength(1);
    expect(logs[0]?.Condition).toEqual({
      ArnLike: {
        'kms:EncryptionContext:aws:logs:arn': `arn:${PARTITION}:logs:${REGION}:${ACCOUNT}:log-group:*`,
      },
    });
  });
});

describe('the notifications topic', () => {
  const { resources } = synth();
  const topic = onlyLogicalId(resources, 'AWS::SNS::Topic');
  const topicPolicy = logicalIds(resources, 'AWS::SNS::TopicPolicy').map((id) => resources[id]);
  const fromOurAlarms = {
    StringEquals: { 'aws:SourceAccount': ACCOUNT },
    ArnLike: { 'aws:SourceArn': `arn:${PARTITION}:cloudwatch:${REGION}:${ACCOUNT}:alarm:*` },
  };

  it('refuses requests without TLS and lets only this account’s CloudWatch alarms publish as a service', () => {
    expect(topicPolicy).toHaveLength(1);
    const statements = policyStatements(topicPolicy[0]?.Properties?.PolicyDocument, resources);
    expect(statements).toContainEqual(
      expect.objectContaining({
        Effect: 'Deny',
        Principal: '*',
        Action: 'sns:Publish',
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      }),
    );
    expect(statements).toContainEqual({
      Sid: 'CloudWatchAlarmsPublish',
      Effect: 'Allow',
      Principal: { Service: 'cloudwatch.amazonaws.com' },
      Action: 'sns:Publish',
      Resource: topic,
      Condition: fromOurAlarms,
    });
    // Nobody else is granted anything by the topic policy.
    expect(statements.filter((s) => s.Effect === 'Allow')).toHaveLength(1);
  });

  it('is encrypted with a key that rotates and lets those alarms encrypt, nothing more', () => {
    const keyId = getAttId(resources[topic]?.Properties?.KmsMasterKeyId);
    expect(keyId).not.toBe(secretsKeyId(resources));
    expect(resources[keyId]?.Properties?.EnableKeyRotation).toBe(true);
    const statements = policyStatements(resources[keyId]?.Properties?.KeyPolicy, resources);
    expect(statements).toContainEqual({
      Sid: 'CloudWatchAlarmsEncrypt',
      Effect: 'Allow',
      Principal: { Service: 'cloudwatch.amazonaws.com' },
      Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      Resource: '*',
      Condition: fromOurAlarms,
    });
  });
});
