import { Match } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { KEY_ID_CACHE_TTL_ATTRIBUTE } from '../../contract/tables.ts';
import { logicalIdOf } from './audit-helpers.ts';
import { getAttId, synth } from './helpers.ts';

describe('the secrets key', () => {
  const { template, resources } = synth();

  it('is a customer-managed key with automatic rotation, named alias/rekey-secrets, kept on delete', () => {
    const alias = Object.values(resources).find(
      (r) => r.Type === 'AWS::KMS::Alias' && r.Properties?.AliasName === 'alias/rekey-secrets',
    );
    const keyId = getAttId(alias?.Properties?.TargetKeyId);
    expect(resources[keyId]).toMatchObject({
      Type: 'AWS::KMS::Key',
      Properties: { EnableKeyRotation: true },
      DeletionPolicy: 'Retain',
    });
  });

  it('rotates every KMS key of the stack', () => {
    const keys = template.findResources('AWS::KMS::Key');
    expect(Object.keys(keys).length).toBeGreaterThan(0);
    for (const [id, key] of Object.entries(keys)) expect(key.Properties.EnableKeyRotation, id).toBe(true);
  });
});

describe('the notifications topic', () => {
  it('is encrypted with a customer-managed key and refuses requests without TLS', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::SNS::Topic', {
      KmsMasterKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('Key'), 'Arn'] },
    });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 'sns:Publish',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  it('subscribes the configured email addresses, and only those', () => {
    const emails = ['ops@example.com', 'security@example.com'];
    const { template } = synth({ notificationEmails: emails });
    const subscriptions = Object.values(template.findResources('AWS::SNS::Subscription'));
    expect(subscriptions.map((s) => [s.Properties.Protocol, s.Properties.Endpoint]).sort()).toEqual(
      emails.map((e) => ['email', e]),
    );
    expect(synth().template.findResources('AWS::SNS::Subscription')).toEqual({});
  });
});

describe('the lock table', () => {
  it('is keyed by userName, on demand, expires locks, recoverable and encrypted', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [{ AttributeName: 'userName', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'userName', AttributeType: 'S' }],
      BillingMode: 'PAY_PER_REQUEST',
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
    });
  });
});

describe("the audit's key-id cache", () => {
  it('is its own table, keyed by user and key creation time, on demand, expiring entries, encrypted, destroyed with the stack', () => {
    const { template, stack } = synth();
    const id = logicalIdOf(stack, stack.audit.keyIdCache);
    const table = template.toJSON().Resources[id];
    expect(table).toMatchObject({
      Type: 'AWS::DynamoDB::Table',
      DeletionPolicy: 'Delete',
      UpdateReplacePolicy: 'Delete',
      Properties: {
        KeySchema: [
          { AttributeName: 'userName', KeyType: 'HASH' },
          { AttributeName: 'keyCreated', KeyType: 'RANGE' },
        ],
        BillingMode: 'PAY_PER_REQUEST',
        TimeToLiveSpecification: { AttributeName: KEY_ID_CACHE_TTL_ATTRIBUTE, Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: false },
        SSESpecification: { SSEEnabled: true },
      },
    });
    // Only the audit's role names it.
    const naming = Object.entries(template.toJSON().Resources as Record<string, { Type: string }>)
      .filter(([, r]) => r.Type === 'AWS::IAM::Policy' && JSON.stringify(r).includes(`"${id}"`))
      .map(([policy]) => policy);
    expect(naming).toEqual([logicalIdOf(stack, stack.audit.permissions)]);
  });
});

describe('the stack', () => {
  it('outputs what operators and the CLI need', () => {
    const { template } = synth();
    expect(Object.keys(template.toJSON().Outputs).sort()).toEqual(
      [
        'LockTableName',
        'SecretsKeyArn',
        'StateMachineArn',
        'TopicArn',
        'AuditFunctionName',
        'AuditDeadLetterQueueUrl',
        'CleanupDeadLetterQueueUrl',
      ].sort(),
    );
    template.hasOutput('StateMachineArn', { Value: { Ref: Match.stringLikeRegexp('StateMachine') } });
  });
});
