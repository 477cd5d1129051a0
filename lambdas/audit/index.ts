/**
 * The scheduled audit (EventBridge Scheduler target). Payload: `{}`, or `{"dryRun": true}` to
 * compute findings and planned actions without starting, changing or publishing anything.
 */
import type { SecurityHubClient } from '@aws-sdk/client-securityhub';
import * as z from 'zod/mini';
import { loadEnv } from '../../contract/env.ts';
import { AUDIT_ENV } from '../../contract/functions.ts';
import { dynamodb } from '../shared/clients/dynamodb.ts';
import { eventBridge } from '../shared/clients/event-bridge.ts';
import { iam } from '../shared/clients/iam.ts';
import { sfn } from '../shared/clients/sfn.ts';
import { sns } from '../shared/clients/sns.ts';
import { systemClock } from '../shared/clock.ts';
import { makeHandler } from '../shared/handler.ts';
import { logger } from '../shared/logger.ts';
import { publishMetrics } from '../shared/metrics.ts';
import { loadOptInClient, switchedOff } from '../shared/opt-in.ts';
import { SfnRotationStarter } from './actions.ts';
import { auditPolicyFromEnv, runAudit } from './audit.ts';
import { DynamoKeyIdCache } from './key-id-cache.ts';
import { accountContextFromArn } from './security-hub.ts';

export const AuditRequest = z.strictObject({
  dryRun: z.optional(z.boolean({ error: 'dryRun must be true or false' })),
});

const env = loadEnv(AUDIT_ENV);
const policy = auditPolicyFromEnv(env);
// The state machine lives in this stack: its ARN names the partition, region and account.
const account = accountContextFromArn(env.REKEY_STATE_MACHINE_ARN);
const starter = new SfnRotationStarter(sfn, env.REKEY_STATE_MACHINE_ARN);
// The Security Hub client (a bundle of its own, deployed) only when the import is on.
const securityHub = policy.securityHub
  ? (await loadOptInClient('security-hub')).securityHub
  : switchedOff<SecurityHubClient>('securityHub');
// Likewise the S3 client of the report upload (auditReports), only with a report bucket.
const reportBucket = env.REKEY_REPORT_BUCKET;
const reports = reportBucket ? { s3: (await loadOptInClient('s3')).s3, bucket: reportBucket } : undefined;

export const handler = makeHandler(AuditRequest, async (input) => {
  const log = (message: string) => logger.info(message);
  const cacheTable = env.REKEY_KEY_ID_CACHE_TABLE;
  // A new one per run: its counts are this run's.
  const keyIdCache = cacheTable
    ? new DynamoKeyIdCache({ dynamodb, tableName: cacheTable, clock: systemClock, log })
    : undefined;
  const summary = await runAudit(
    {
      iam,
      sns,
      eventBridge,
      securityHub,
      starter,
      account,
      clock: systemClock,
      topicArn: env.REKEY_TOPIC_ARN,
      eventBusName: env.REKEY_EVENT_BUS_NAME,
      log,
      publishMetrics,
      ...(keyIdCache ? { keyIdCache } : {}),
      ...(reports ? { reports } : {}),
    },
    policy,
    { dryRun: input.dryRun ?? false },
  );
  logger.info('audit finished', { summary });
  return summary;
});
