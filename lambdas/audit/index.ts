/**
 * The scheduled audit (EventBridge Scheduler target). Payload: `{}`, or `{"dryRun": true}` to
 * compute findings and planned actions without starting, changing or publishing anything. The
 * organization audit's state machine sends the two other shapes (organization.ts):
 * `{"mode": "account", "runId", "accountId"}` and `{"mode": "aggregate", "runId", "accountIds"}`.
 */
import type { SecurityHubClient } from '@aws-sdk/client-securityhub';
import type { Context } from 'aws-lambda';
import * as z from 'zod/mini';
import { loadEnv } from '../../contract/env.ts';
import { ConfigurationError } from '../../contract/errors.ts';
import { AUDIT_ENV } from '../../contract/functions.ts';
import { AccountId } from '../../contract/organization.ts';
import { dynamodb } from '../shared/clients/dynamodb.ts';
import { eventBridge } from '../shared/clients/event-bridge.ts';
import { iam } from '../shared/clients/iam.ts';
import { sfn } from '../shared/clients/sfn.ts';
import { sns } from '../shared/clients/sns.ts';
import { systemClock } from '../shared/clock.ts';
import { makeHandler } from '../shared/handler.ts';
import { logger } from '../shared/logger.ts';
import { inAccount } from '../shared/member-account.ts';
import { publishMetrics } from '../shared/metrics.ts';
import { loadOptInClient, switchedOff } from '../shared/opt-in.ts';
import { SfnRotationStarter } from './actions.ts';
import { type AuditSummary, auditPolicyFromEnv, runAudit } from './audit.ts';
import { DynamoKeyIdCache } from './key-id-cache.ts';
import {
  type AccountCounts,
  aggregate,
  auditAccount,
  type OrganizationAuditDeps,
  type OrganizationTotals,
} from './organization.ts';
import { accountContextFromArn } from './security-hub.ts';

const dryRun = z.optional(z.boolean({ error: 'dryRun must be true or false' }));
/** The organization audit's execution name. */
const runId = z.string({ error: 'runId must be a string' }).check(z.minLength(1), z.maxLength(80));

export const AuditRequest = z.union([
  z.strictObject({ dryRun }),
  z.strictObject({ mode: z.literal('account'), runId, accountId: AccountId, dryRun }),
  z.strictObject({
    mode: z.literal('aggregate'),
    runId,
    accountIds: z.array(AccountId).check(z.minLength(1, 'accountIds must name at least one account')),
    dryRun,
  }),
]);

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

/** The single-account payloads answer a summary; the organization modes, counts. */
type AuditHandler = {
  (event: { dryRun?: boolean }, context: Context): Promise<AuditSummary>;
  (event: unknown, context: Context): Promise<AuditSummary | AccountCounts | OrganizationTotals>;
};

export const handler = makeHandler(AuditRequest, async (input) => {
  const log = (message: string) => logger.info(message);
  const cacheTable = env.REKEY_KEY_ID_CACHE_TABLE;
  if ('mode' in input) {
    const resultsTable = env.REKEY_ORGANIZATION_RESULTS_TABLE;
    if (!resultsTable)
      throw new ConfigurationError(
        `the ${input.mode} mode needs REKEY_ORGANIZATION_RESULTS_TABLE (organization)`,
      );
    const deps: OrganizationAuditDeps = {
      audit: {
        iam,
        sns,
        eventBridge,
        securityHub,
        clock: systemClock,
        topicArn: env.REKEY_TOPIC_ARN,
        eventBusName: env.REKEY_EVENT_BUS_NAME,
        log,
        ...(reports ? { reports } : {}),
      },
      starter,
      hub: account,
      dynamodb,
      resultsTable,
      inAccount,
      publishMetrics,
      ...(cacheTable
        ? {
            keyIdCacheFor: (memberAccountId: string | undefined) =>
              new DynamoKeyIdCache({
                dynamodb,
                tableName: cacheTable,
                clock: systemClock,
                log,
                ...(memberAccountId ? { memberAccountId } : {}),
              }),
          }
        : {}),
    };
    const request = { runId: input.runId, dryRun: input.dryRun ?? false };
    const out =
      input.mode === 'account'
        ? await auditAccount(deps, policy, { ...request, accountId: input.accountId })
        : await aggregate(deps, policy, { ...request, accountIds: input.accountIds });
    logger.info(`organization audit ${input.mode} finished`, { result: out });
    return out;
  }
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
}) as AuditHandler;
