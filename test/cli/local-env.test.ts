import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MotoServer, startMoto } from '../../cli/emulator.ts';
import { LOCAL_RESOURCES, prepareLocalEnv } from '../../cli/local-env.ts';
import { ANY_CREDENTIALS, AwsEnv, awsClient } from '../../support/aws.ts';

describe('prepareLocalEnv', () => {
  let moto: MotoServer;
  let aws: AwsEnv;
  beforeAll(async () => {
    moto = await startMoto();
    aws = new AwsEnv(moto.endpoint, ANY_CREDENTIALS).apply();
  });
  afterAll(async () => {
    aws.restore();
    await moto.stop();
  });
  const quiet = () => {};

  it('creates the local topic, lock table and KMS key, and gives the full handler environment', async () => {
    // Act
    const env = await prepareLocalEnv({ config: { maxAdoptionChecks: 2 }, source: {}, log: quiet });

    // Assess
    expect(env).toMatchObject({
      REKEY_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:rekey-local',
      REKEY_LOCK_TABLE: LOCAL_RESOURCES.lockTable,
      REKEY_KMS_KEY_ID: expect.stringMatching(/^arn:aws:kms:us-east-1:123456789012:key\//),
      REKEY_SECRET_PREFIX: 'rekey/',
      REKEY_MAX_ADOPTION_CHECKS: '2',
      POWERTOOLS_SERVICE_NAME: 'rekey',
      POWERTOOLS_LOG_LEVEL: 'WARN',
      // No EMF metric line on a local run's stdout.
      POWERTOOLS_METRICS_DISABLED: 'true',
    });
    const table = await awsClient(DynamoDBClient, moto.endpoint).send(
      new DescribeTableCommand({ TableName: LOCAL_RESOURCES.lockTable }),
    );
    expect(table.Table?.KeySchema).toEqual([{ AttributeName: 'userName', KeyType: 'HASH' }]);
    const key = await awsClient(KMSClient, moto.endpoint).send(
      new DescribeKeyCommand({ KeyId: LOCAL_RESOURCES.kmsAlias }),
    );
    expect(key.KeyMetadata?.Arn).toBe(env.REKEY_KMS_KEY_ID);
  });

  it('finds the same resources again instead of creating new ones', async () => {
    // Prepare
    const first = await prepareLocalEnv({ config: {}, source: {}, log: quiet });

    // Act
    const second = await prepareLocalEnv({ config: {}, source: {}, log: quiet });

    // Assess
    expect(second).toEqual(first);
  });

  it("uses a deployed stack's resources when given, and the given log level", async () => {
    // Act
    const env = await prepareLocalEnv({
      config: {},
      source: {
        REKEY_TOPIC_ARN: 'arn:aws:sns:eu-west-1:111122223333:rekey',
        REKEY_LOCK_TABLE: 'RekeyStack-Locks',
        REKEY_KMS_KEY_ID: 'arn:aws:kms:eu-west-1:111122223333:key/1234',
        POWERTOOLS_LOG_LEVEL: 'DEBUG',
      },
      log: quiet,
    });

    // Assess
    expect(env).toMatchObject({
      REKEY_TOPIC_ARN: 'arn:aws:sns:eu-west-1:111122223333:rekey',
      REKEY_LOCK_TABLE: 'RekeyStack-Locks',
      REKEY_KMS_KEY_ID: 'arn:aws:kms:eu-west-1:111122223333:key/1234',
      POWERTOOLS_LOG_LEVEL: 'DEBUG',
    });
  });

  it('refuses an invalid configuration with the field named', async () => {
    await expect(
      prepareLocalEnv({ config: { adoptionWaitDays: 0 }, source: {}, log: quiet }),
    ).rejects.toThrow(/adoptionWaitDays/);
  });
});
