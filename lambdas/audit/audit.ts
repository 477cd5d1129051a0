/**
 * The audit, end to end: scan (credential report + user details + key ids of the users with
 * findings + service-specific credentials), act (rotations, the opt-in deactivation), alert (SNS digest, EventBridge events,
 * opt-in Security Hub), report (opt-in: the HTML and CSV report to S3, before the alerts, which
 * link to them). The Lambda runs all of it; `rekey audit` runs the scan only.
 */
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { IAMClient } from '@aws-sdk/client-iam';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SecurityHubClient } from '@aws-sdk/client-securityhub';
import type { SNSClient } from '@aws-sdk/client-sns';
import type { RekeyEnv } from '../../contract/env.ts';
import { RekeyError } from '../../contract/errors.ts';
import type { AUDIT_POLICY_ENV } from '../../contract/functions.ts';
import type { ServiceName } from '../../contract/schemas.ts';
import type { Clock } from '../shared/clock.ts';
import type { MetricGroup } from '../shared/metrics.ts';
import { type ActionOutcome, type ActionPolicy, applyActions, type RotationStarter } from './actions.ts';
import { type AuditReport, countsByType, publishAlerts } from './alerts.ts';
import { CallCounter } from './calls.ts';
import { fetchCredentialReport, type ReportOptions } from './credential-report.ts';
import {
  credentialIdOf,
  evaluateFindings,
  evaluateServiceCredentials,
  type Finding,
  isActiveExemption,
  sortFindings,
  type Thresholds,
  type UserDetail,
} from './findings.ts';
import type { KeyIdCache, KeyIdCacheStats } from './key-id-cache.ts';
import { type AuditMetricValues, auditMetricValues, metricsOf } from './metrics.ts';
import { type ReportLinks, uploadReports } from './report/upload.ts';
import { type AccountContext, syncSecurityHub } from './security-hub.ts';
import { listServiceCredentials } from './service-credentials.ts';
import { listUserDetails, resolveKeyIds, type StaleFinding } from './users.ts';

export interface ScanPolicy {
  thresholds: Thresholds;
  exemptTag: string;
  /** The user tag naming the owner (contract/owner.ts). @default DEFAULT_OWNER_TAG */
  ownerTag?: string;
  /** Also list and evaluate the service-specific credentials (ListServiceSpecificCredentials). */
  serviceCredentials: boolean;
}

export interface AuditPolicy extends ScanPolicy, ActionPolicy {
  securityHub: boolean;
}

/** The audit's policy variables (contract/functions.ts AUDIT_POLICY_ENV), parsed. */
export type AuditEnv = Pick<RekeyEnv, (typeof AUDIT_POLICY_ENV)[number]>;

export function auditPolicyFromEnv(env: AuditEnv): AuditPolicy {
  return {
    thresholds: {
      maxKeyAgeDays: env.REKEY_MAX_KEY_AGE_DAYS,
      unusedDays: env.REKEY_UNUSED_DAYS,
      warnDays: env.REKEY_WARN_DAYS,
    },
    exemptTag: env.REKEY_EXEMPT_TAG,
    ownerTag: env.REKEY_OWNER_TAG,
    serviceCredentials: env.REKEY_AUDIT_SERVICE_CREDENTIALS,
    autoRotate: env.REKEY_AUTO_ROTATE,
    maxRotationsPerRun: env.REKEY_MAX_ROTATIONS_PER_RUN,
    maxRotationAttempts: env.REKEY_MAX_ROTATION_ATTEMPTS,
    deactivateUnused: env.REKEY_DEACTIVATE_UNUSED,
    deactivateUnusedAfterDays: env.REKEY_DEACTIVATE_UNUSED_AFTER_DAYS,
    securityHub: env.REKEY_SECURITY_HUB,
    protectedUsers: env.REKEY_PROTECTED_USERS,
    userPathPrefix: env.REKEY_USER_PATH_PREFIX,
    optInTag: env.REKEY_OPT_IN_TAG,
  };
}

export interface ScanDeps {
  iam: IAMClient;
  clock: Clock;
  /** @default a new counter */
  calls?: CallCounter;
  /** Progress lines (the CLI prints them on stderr). */
  log?: (message: string) => void;
  /** The key-id cache (key-id-cache.ts); without it each user with a finding costs a ListAccessKeys. */
  keyIdCache?: KeyIdCache;
}

export interface ScanResult {
  auditedAt: Date;
  /** The account of the credential report's ARNs; null for a report without a row. */
  accountId: string | null;
  reportGeneratedAt: Date | null;
  /** Users in the credential report (the root row not counted). */
  usersScanned: number;
  findings: Finding[];
  /** Findings of the report that had cleared by the time the keys were looked up. */
  stale: StaleFinding[];
  users: Map<string, UserDetail>;
  calls: CallCounter;
  /** What the key-id cache saved and cost this run; null without a cache. */
  keyIdCache: KeyIdCacheStats | null;
  /** Creation dates of every active credential seen (the report's keys, the service credentials when listed). */
  activeCreated: Date[];
}

/**
 * Read-only: the credential report, the users' paths and tags, the key ids of users with findings,
 * and (policy.serviceCredentials) the service-specific credentials of all users.
 */
export async function scanAccount(
  deps: ScanDeps,
  policy: ScanPolicy,
  options: ReportOptions = {},
): Promise<ScanResult> {
  const calls = deps.calls ?? new CallCounter();
  const log = deps.log ?? (() => {});
  log('Fetching the IAM credential report');
  const report = await fetchCredentialReport({ iam: deps.iam, clock: deps.clock, calls }, options);
  log(`Credential report: ${report.rows.length} rows; reading user paths and tags`);
  const users = await listUserDetails({ iam: deps.iam, calls });
  const auditedAt = deps.clock.now();
  const candidates = evaluateFindings(report.rows, users, {
    now: auditedAt,
    thresholds: policy.thresholds,
    exemptTag: policy.exemptTag,
    ...(policy.ownerTag ? { ownerTag: policy.ownerTag } : {}),
  });
  const withKeys = new Set(candidates.filter((f) => f.type !== 'ROOT_ACCESS_KEY').map((f) => f.userName));
  log(`${candidates.length} finding(s); looking up the key ids of ${withKeys.size} user(s)`);
  const cache = deps.keyIdCache;
  const rows = new Map(report.rows.filter((r) => !r.isRoot).map((r) => [r.user, r]));
  const before = calls.count('ListAccessKeys');
  const resolved = await resolveKeyIds(
    { iam: deps.iam, calls, ...(cache ? { cache, rows } : {}) },
    candidates,
  );
  const listed = calls.count('ListAccessKeys') - before;
  // The cost of this run's key ids: a cold run (an empty cache) pays one call per user here.
  log(
    cache
      ? `Key ids: ${cache.stats.hits} user(s) from the key-id cache, ${listed} ListAccessKeys call(s) for new keys` +
          ` (${cache.stats.requests} DynamoDB request(s), ${cache.stats.written} entr${cache.stats.written === 1 ? 'y' : 'ies'} written` +
          `${cache.stats.failures ? `, ${cache.stats.failures} failed: looked up instead` : ''})`
      : `Key ids: ${listed} ListAccessKeys call(s), one per user with a finding (no key-id cache)`,
  );
  const { stale } = resolved;
  let { findings } = resolved;
  const activeCreated = report.rows.flatMap((r) =>
    r.keys.flatMap((k) => (k.active && k.lastRotated ? [k.lastRotated] : [])),
  );
  if (policy.serviceCredentials) {
    log('Listing the service-specific credentials of all users');
    const credentials = await listServiceCredentials({ iam: deps.iam, calls });
    const userArns = new Map(report.rows.filter((r) => !r.isRoot).map((r) => [r.user, r.arn]));
    const serviceFindings = evaluateServiceCredentials(credentials, users, userArns, {
      now: auditedAt,
      thresholds: policy.thresholds,
      exemptTag: policy.exemptTag,
      ...(policy.ownerTag ? { ownerTag: policy.ownerTag } : {}),
    });
    log(`${credentials.length} service-specific credential(s), ${serviceFindings.length} finding(s)`);
    activeCreated.push(...credentials.filter((c) => c.status === 'Active').map((c) => c.createDate));
    findings = sortFindings([...findings, ...serviceFindings]);
  }
  return {
    auditedAt,
    accountId: report.rows[0]?.arn.split(':')[4] ?? null,
    reportGeneratedAt: report.generatedTime,
    usersScanned: report.rows.filter((r) => !r.isRoot).length,
    findings,
    stale,
    users,
    calls,
    keyIdCache: cache ? { ...cache.stats } : null,
    activeCreated,
  };
}

/** The report upload failed: raised after the alerts (which say so) went out, so the run shows as failed. */
export class ReportsNotWritten extends RekeyError {
  constructor(cause: string) {
    super('ReportsNotWritten', `the audit reports were not written to S3: ${cause}`);
  }
}

/** Some actions failed: raised after the alerts went out, so the run shows as failed (and retried). */
export class AuditActionsFailed extends RekeyError {
  constructor(failed: ActionOutcome[]) {
    super(
      'AuditActionsFailed',
      `${failed.length} audit action(s) failed: ${failed
        .slice(0, 5)
        .map((a) => `${a.kind} ${a.userName} ${credentialIdOf(a) ?? ''}: ${a.detail}`)
        .join('; ')}`,
    );
  }
}

export interface AuditDeps extends ScanDeps {
  sns: SNSClient;
  eventBridge: EventBridgeClient;
  securityHub: SecurityHubClient;
  starter: RotationStarter;
  account: AccountContext;
  topicArn: string;
  eventBusName: string;
  /** The report bucket (auditReports; lambdas/audit/report/upload.ts). @default no report is written */
  reports?: { s3: Pick<S3Client, 'send'>; bucket: string };
  /** Where the run's metrics go (the Lambda: lambdas/shared/metrics.ts); none: not emitted. */
  publishMetrics?: (groups: MetricGroup[]) => void;
}

/** A retried or given-up rotation, as the summary lists it. */
export interface RotationAttemptSummary {
  userName: string;
  /** The access key id, or the service-specific credential id (with serviceName). */
  credentialId: string | null;
  serviceName?: ServiceName;
  /** The attempt started (retried) or the last one that failed (given up). */
  attempt: number;
  executionName: string | null;
  /** How the attempts before it (given up: all of them) ended, oldest first. */
  failed: Array<{ executionName: string; status: string; error: string | null }>;
}

/** The summary's lists stop here (their counts are in `rotations`): a Lambda answer is at most 6 MB. */
export const SUMMARY_MAX_LISTED = 100;

/**
 * What the Lambda returns and logs: counts, never the findings themselves (10,000 users...); the
 * rotations retried and given up are listed, since each of those is worth a look.
 */
export interface AuditSummary {
  dryRun: boolean;
  auditedAt: string;
  reportGeneratedAt: string | null;
  usersScanned: number;
  findings: Record<string, number>;
  exempt: number;
  stale: number;
  rotations: Record<string, number>;
  /** Rotations started again this run because the attempts before failed (first SUMMARY_MAX_LISTED). */
  retried: RotationAttemptSummary[];
  /** Rotations whose maxRotationAttempts attempts all failed: no more retries (first SUMMARY_MAX_LISTED). */
  givenUp: RotationAttemptSummary[];
  deactivations: Record<string, number>;
  digestPublished: boolean;
  eventsPublished: number;
  securityHub: { imported: number; resolved: number } | null;
  /** The report objects written this run (s3:// URIs); null when the upload is off, or a dry run. */
  reports: { html: string; csv: string } | null;
  iamCalls: Record<string, number>;
  iamScanCalls: number;
  iamPerFindingCalls: number;
  /** Users whose key ids came from the key-id cache, and what it cost; null without the cache. */
  keyIdCache: KeyIdCacheStats | null;
}

const tally = (actions: readonly ActionOutcome[], kind: ActionOutcome['kind']) => {
  const counts: Record<string, number> = {};
  for (const a of actions) if (a.kind === kind) counts[a.status] = (counts[a.status] ?? 0) + 1;
  return counts;
};

const listed = (
  actions: readonly ActionOutcome[],
  status: ActionOutcome['status'],
): RotationAttemptSummary[] =>
  actions
    .filter((a) => a.kind === 'ROTATION' && a.status === status)
    .slice(0, SUMMARY_MAX_LISTED)
    .map((a) => ({
      userName: a.userName,
      credentialId: credentialIdOf(a),
      ...(a.serviceName ? { serviceName: a.serviceName } : {}),
      attempt: a.attempt ?? 1,
      executionName: a.executionName ?? null,
      failed: (a.failedAttempts ?? []).map((f) => ({
        executionName: f.executionName,
        status: f.status,
        error: f.error,
      })),
    }));

export interface AuditOptions extends ReportOptions {
  dryRun?: boolean;
  /**
   * One account of the organization audit (lambdas/audit/organization.ts): its findings and
   * actions carry the account, a member account's rotations are named and started in it, and no
   * digest goes out (the events do: the aggregate sends one digest over every account).
   */
  organization?: { accountId: string; member: boolean };
}

/** A run's summary, its report, and the failure runAudit raises after the alerts (if any). */
export interface AuditOutcome {
  summary: AuditSummary;
  report: AuditReport;
  /** What the run's metrics say (published unless a dry run, when deps.publishMetrics is set). */
  metrics: AuditMetricValues;
  failure: AuditActionsFailed | ReportsNotWritten | undefined;
}

export async function runAudit(
  deps: AuditDeps,
  policy: AuditPolicy,
  options: AuditOptions = {},
): Promise<AuditSummary> {
  const { summary, failure } = await auditWithReport(deps, policy, options);
  if (failure) throw failure;
  return summary;
}

export async function auditWithReport(
  deps: AuditDeps,
  policy: AuditPolicy,
  options: AuditOptions = {},
): Promise<AuditOutcome> {
  const dryRun = options.dryRun ?? false;
  const organization = options.organization;
  const started = deps.clock.now();
  const scan = await scanAccount(deps, policy, options);
  if (organization) for (const f of scan.findings) f.accountId = organization.accountId;
  const { calls } = scan;
  const actions = await applyActions(
    { iam: deps.iam, starter: deps.starter, clock: deps.clock, calls },
    scan.findings,
    scan.users,
    policy,
    { dryRun, ...(organization ? { account: organization } : {}) },
  );
  // Before the alerts, so that the digest links to the files.
  let reports: ReportLinks | null = null;
  let reportsError: string | null = null;
  if (deps.reports && !dryRun) {
    try {
      reports = await uploadReports(
        { ...deps.reports, account: deps.account },
        {
          findings: scan.findings,
          thresholds: policy.thresholds,
          auditedAt: scan.auditedAt,
          accountIds: [deps.account.accountId],
        },
      );
    } catch (error) {
      // The digest and the events still go out (and say so); the run fails after them.
      reportsError = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    }
  }
  const report: AuditReport = {
    reports: reports ?? (reportsError ? { error: reportsError } : null),
    auditedAt: scan.auditedAt,
    accountId: deps.account.accountId,
    reportGeneratedAt: scan.reportGeneratedAt,
    usersScanned: scan.usersScanned,
    findings: scan.findings,
    stale: scan.stale,
    actions,
    thresholds: policy.thresholds,
    policy,
    dryRun,
  };
  // A dry run reports through its return value only.
  const alerts = dryRun
    ? { digestPublished: false, eventsPublished: 0 }
    : await publishAlerts(
        {
          sns: deps.sns,
          eventBridge: deps.eventBridge,
          clock: deps.clock,
          topicArn: deps.topicArn,
          eventBusName: deps.eventBusName,
        },
        report,
        { digest: !organization },
      );
  const securityHub =
    policy.securityHub && !dryRun
      ? await syncSecurityHub({ securityHub: deps.securityHub, clock: deps.clock }, scan.findings, {
          ctx: deps.account,
          thresholds: policy.thresholds,
          actions,
        })
      : null;
  const summary: AuditSummary = {
    dryRun,
    auditedAt: scan.auditedAt.toISOString(),
    reportGeneratedAt: scan.reportGeneratedAt?.toISOString() ?? null,
    usersScanned: scan.usersScanned,
    findings: countsByType(scan.findings),
    exempt: scan.findings.filter((f) => isActiveExemption(f.exemption)).length,
    stale: scan.stale.length,
    rotations: tally(actions, 'ROTATION'),
    retried: listed(actions, 'RETRIED'),
    givenUp: listed(actions, 'GIVEN_UP'),
    deactivations: tally(actions, 'DEACTIVATION'),
    ...alerts,
    securityHub,
    reports: reports ? { html: reports.html.uri, csv: reports.csv.uri } : null,
    iamCalls: calls.toJSON(),
    iamScanCalls: calls.scanCalls,
    iamPerFindingCalls: calls.perFindingCalls,
    keyIdCache: scan.keyIdCache,
  };
  // Emitted before a failure is raised: the run's findings are real either way. A dry run
  // publishes nothing, metrics included.
  const metrics = auditMetricValues({
    scan,
    policy,
    durationMs: deps.clock.now().getTime() - started.getTime(),
  });
  if (!dryRun) deps.publishMetrics?.(metricsOf(metrics));
  const failed = actions.filter((a) => a.status === 'FAILED');
  if (failed.length) {
    deps.log?.(`audit finished with failures: ${JSON.stringify(summary)}`);
    return { summary, report, metrics, failure: new AuditActionsFailed(failed) };
  }
  if (reportsError) {
    deps.log?.(`audit finished without its reports: ${JSON.stringify(summary)}`);
    return { summary, report, metrics, failure: new ReportsNotWritten(reportsError) };
  }
  return { summary, report, metrics, failure: undefined };
}
