/**
 * The environment the handlers get in a local run: the same REKEY_* variables the stack gives the
 * deployed Lambdas (built by infra/config.ts from cdk.json's `rekey` context), pointing at a
 * topic, lock table and KMS key that exist in whatever AWS the SDK's default chain reaches
 * (an emulator through AWS_ENDPOINT_URL, or a real account).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceNotFoundException,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DescribeKeyCommand,
  KMSClient,
  NotFoundException,
} from '@aws-sdk/client-kms';
import { CreateTopicCommand, SNSClient } from '@aws-sdk/client-sns';
import { configFromContext, lambdaEnvironment, loadConfig, type RekeyResources } from '../infra/config.ts';
import { REPO_ROOT } from './definition.ts';

export const LOCAL_RESOURCES = {
  topicName: 'rekey-local',
  lockTable: 'rekey-local-locks',
  kmsAlias: 'alias/rekey-local',
} as const;

export interface LocalEnvOptions {
  /** The raw `rekey` configuration. @default cdk.json's context.rekey */
  config?: unknown;
  /** Where REKEY_TOPIC_ARN / REKEY_LOCK_TABLE / REKEY_KMS_KEY_ID / POWERTOOLS_LOG_LEVEL overrides are read. */
  source?: Record<string, string | undefined>;
  log?: (message: string) => void;
}

/** Builds the handler environment, creating the local resources that were not given. */
export async function prepareLocalEnv(options: LocalEnvOptions = {}): Promise<Record<string, string>> {
  const source = options.source ?? process.env;
  const log = options.log ?? ((message: string) => console.error(message));
  const config = loadConfig(options.config ?? readCdkContextConfig());
  const resources = await ensureLocalResources(
    {
      kmsKeyId: source.REKEY_KMS_KEY_ID,
      topicArn: source.REKEY_TOPIC_ARN,
      lockTable: source.REKEY_LOCK_TABLE,
      hubAccountId: source.REKEY_HUB_ACCOUNT_ID,
    },
    log,
  );
  const env: Record<string, string> = {
    ...stringsOnly(lambdaEnvironment(config, resources)),
    // The local runner waits for a step still running before it calls the cleanup itself
    // (cli/local-runner.ts), so the cleanup has nothing to wait out.
    REKEY_CLEANUP_SETTLE_SECONDS: '0',
    POWERTOOLS_SERVICE_NAME: 'rekey',
    // Handlers log JSON; in a terminal only warnings and errors are worth the noise.
    POWERTOOLS_LOG_LEVEL: source.POWERTOOLS_LOG_LEVEL ?? 'WARN',
    // Metrics are the deployed Lambdas' to emit: a local run's EMF lines would land on stdout,
    // which may be carrying `--json` (lambdas/shared/metrics.ts).
    POWERTOOLS_METRICS_DISABLED: 'true',
  };
  return env;
}

/** cdk.json context `rekey`, read the way the CDK app reads it. */
export function readCdkContextConfig(cdkJsonPath = join(REPO_ROOT, 'cdk.json')): unknown {
  const cdkJson = JSON.parse(readFileSync(cdkJsonPath, 'utf8')) as { context?: Record<string, unknown> };
  return configFromContext({ tryGetContext: (key) => cdkJson.context?.[key] });
}

/** Given resources are used as they are (a deployed stack's); the others are found or created. */
export async function ensureLocalResources(
  given: Partial<Record<keyof RekeyResources, string | undefined>>,
  log: (message: string) => void,
): Promise<RekeyResources> {
  const [topicArn, lockTable, kmsKeyId] = await Promise.all([
    given.topicArn ?? ensureTopic(log),
    given.lockTable ?? ensureLockTable(log),
    given.kmsKeyId ?? ensureKmsKey(log),
  ]);
  // The account the local resources live in is the run's hub account.
  const hubAccountId = given.hubAccountId ?? topicArn.split(':')[4] ?? '';
  return { topicArn, lockTable, kmsKeyId, hubAccountId };
}

async function ensureTopic(log: (message: string) => void): Promise<string> {
  const sns = new SNSClient({});
  try {
    // CreateTopic is idempotent: it returns the existing topic's ARN.
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: LOCAL_RESOURCES.topicName }));
    if (!TopicArn) throw new Error(`CreateTopic returned no ARN for ${LOCAL_RESOURCES.topicName}`);
    log(`Using SNS topic ${TopicArn}`);
    return TopicArn;
  } finally {
    sns.destroy();
  }
}

async function ensureLockTable(log: (message: string) => void): Promise<string> {
  const dynamodb = new DynamoDBClient({});
  const TableName = LOCAL_RESOURCES.lockTable;
  try {
    try {
      await dynamodb.send(new DescribeTableCommand({ TableName }));
      log(`Using DynamoDB table ${TableName}`);
      return TableName;
    } catch (error) {
      if (!(error instanceof ResourceNotFoundException)) throw error;
    }
    await dynamodb.send(
      new CreateTableCommand({
        TableName,
        // The same key as the stack's lock table: one item per (lower-cased) user name.
        AttributeDefinitions: [{ AttributeName: 'userName', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'userName', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    await waitUntilTableExists({ client: dynamodb, maxWaitTime: 60 }, { TableName });
    log(`Created DynamoDB table ${TableName}`);
    return TableName;
  } finally {
    dynamodb.destroy();
  }
}

async function ensureKmsKey(log: (message: string) => void): Promise<string> {
  const kms = new KMSClient({});
  const AliasName = LOCAL_RESOURCES.kmsAlias;
  try {
    try {
      const { KeyMetadata } = await kms.send(new DescribeKeyCommand({ KeyId: AliasName }));
      if (KeyMetadata?.Arn) {
        log(`Using KMS key ${AliasName} (${KeyMetadata.Arn})`);
        return KeyMetadata.Arn;
      }
    } catch (error) {
      if (!(error instanceof NotFoundException)) throw error;
    }
    const { KeyMetadata } = await kms.send(
      new CreateKeyCommand({ Description: 'rekey local runs: encrypts stored keys' }),
    );
    if (!KeyMetadata?.Arn || !KeyMetadata.KeyId) throw new Error('CreateKey returned no key');
    await kms.send(new CreateAliasCommand({ AliasName, TargetKeyId: KeyMetadata.KeyId }));
    log(`Created KMS key ${AliasName} (${KeyMetadata.Arn})`);
    return KeyMetadata.Arn;
  } finally {
    kms.destroy();
  }
}

function stringsOnly(vars: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(vars).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}
