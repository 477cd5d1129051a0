/**
 * The organization audit's two modes of the audit Lambda (docs/audit.md, "Across an
 * organization"); the state machine runs `account` once per account in scope, then `aggregate`.
 *
 * - account: the single-account audit (audit.ts) inside `inAccount` (lambdas/shared/member-account.ts)
 *   as the audit's member role: IAM and Security Hub are that account's, the state machine, the
 *   topic, the bus, the key-id cache and the results table the hub's. Its findings and actions
 *   carry the account, its events go out, its digest does not. What it found goes to the results
 *   table (one item per run and account, contract/tables.ts); the Lambda returns counts only.
 *   An account that fails for good (a named rekey error, an access denial) is recorded as
 *   `failed` and the error raised again; transient errors are only raised: the state machine
 *   retries them, and an account that never finishes has no result, which the aggregate reports.
 * - aggregate: reads the run's results back, sends ONE digest over every account (alerts.ts, with
 *   an ACCOUNT column and a per-account section) and the metrics summed over the accounts, returns
 *   totals, then fails with OrganizationAuditIncomplete when an account failed or left no result.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  type AttributeValue,
  type DynamoDBClient,
  PutItemCommand,
  paginateQuery,
} from '@aws-sdk/client-dynamodb';
import { isAwsError, OrganizationAuditIncomplete, RekeyError } from '../../contract/errors.ts';
import {
  ORGANIZATION_RESULTS as COL,
  ORGANIZATION_RESULTS_TTL_DAYS,
  type OrganizationResultStatus,
} from '../../contract/tables.ts';
import type { AccountTarget } from '../shared/member-account.ts';
import type { MetricGroup } from '../shared/metrics.ts';
import type { ActionOutcome, RotationStarter } from './actions.ts';
import { type AccountLine, type AuditReport, countsByType, publishAlerts } from './alerts.ts';
import { type AuditDeps, type AuditOutcome, type AuditPolicy, auditWithReport } from './audit.ts';
import { FINDING_TYPES, type Finding, type FindingType, sortFindings } from './findings.ts';
import type { KeyIdCache } from './key-id-cache.ts';
import { metricsOf } from './metrics.ts';
import type { AccountContext } from './security-hub.ts';

export interface AccountRequest {
  runId: string;
  accountId: string;
  dryRun: boolean;
}

export interface AggregateRequest {
  runId: string;
  accountIds: readonly string[];
  dryRun: boolean;
}

/** What the account mode returns: counts only (the findings are in the results table). */
export interface AccountCounts {
  accountId: string;
  usersScanned: number;
  findings: number;
  rotationsStarted: number;
}

/** What the aggregate returns. */
export interface OrganizationTotals {
  accounts: number;
  audited: number;
  failed: number;
  findings: number;
  rotationsStarted: number;
}

/** The counts an item keeps (its `counts` map): the returned ones and what the metrics sum. */
interface StoredCounts {
  usersScanned: number;
  findings: number;
  rotationsStarted: number;
  usersInScope: number;
  /** -1: no active credential. */
  oldestActiveKeyAgeDays: number;
  durationMs: number;
}

export interface OrganizationAuditDeps {
  /** The audit's clients and hub resources; `account`, `starter`, `keyIdCache` are set per account here. */
  audit: Omit<AuditDeps, 'account' | 'starter' | 'keyIdCache' | 'publishMetrics'>;
  starter: RotationStarter;
  /** The hub's partition, region and account (the state machine's ARN). */
  hub: AccountContext;
  dynamodb: Pick<DynamoDBClient, 'send'>;
  resultsTable: string;
  /** lambdas/shared/member-account.ts inAccount (injected: the tests watch it). */
  inAccount: <T>(target: AccountTarget, fn: () => Promise<T>) => Promise<T>;
  /** The key-id cache of one account (the hub's: memberAccountId undefined); none: no cache. */
  keyIdCacheFor?: (memberAccountId: string | undefined) => KeyIdCache;
  publishMetrics?: (groups: MetricGroup[]) => void;
}

const started = (actions: readonly ActionOutcome[]) =>
  actions.filter(
    (a) =>
      a.kind === 'ROTATION' &&
      (a.status === 'STARTED' || a.status === 'RETRIED' || a.status === 'WOULD_START'),
  ).length;

/** Errors that will not pass by retrying: the account is recorded as failed. */
function lasting(error: unknown): error is Error {
  return error instanceof RekeyError || isAwsError(error, 'AccessDenied', 'AccessDeniedException');
}

export async function auditAccount(
  deps: OrganizationAuditDeps,
  policy: AuditPolicy,
  request: AccountRequest,
): Promise<AccountCounts> {
  const { accountId } = request;
  const member = accountId !== deps.hub.accountId;
  const account: AccountContext = { ...deps.hub, accountId };
  const keyIdCache = deps.keyIdCacheFor?.(member ? accountId : undefined);
  const begun = deps.audit.clock.now();
  let outcome: AuditOutcome;
  try {
    outcome = await deps.inAccount({ accountId, lambda: 'audit' }, () =>
      auditWithReport(
        { ...deps.audit, account, starter: deps.starter, ...(keyIdCache ? { keyIdCache } : {}) },
        policy,
        { dryRun: request.dryRun, organization: { accountId, member } },
      ),
    );
  } catch (error) {
    if (lasting(error)) await putResult(deps, request, { status: 'failed', error });
    throw error;
  }
  const { report, metrics, failure } = outcome;
  const counts: StoredCounts = {
    usersScanned: report.usersScanned,
    findings: report.findings.length,
    rotationsStarted: started(report.actions),
    usersInScope: metrics.usersInScope,
    oldestActiveKeyAgeDays: metrics.oldestActiveKeyAgeDays ?? -1,
    durationMs: deps.audit.clock.now().getTime() - begun.getTime(),
  };
  await putResult(deps, request, {
    status: failure ? 'failed' : 'audited',
    counts,
    findings: report.findings,
    actions: report.actions,
    ...(failure ? { error: failure } : {}),
  });
  if (failure) throw failure;
  return {
    accountId,
    usersScanned: counts.usersScanned,
    findings: counts.findings,
    rotationsStarted: counts.rotationsStarted,
  };
}

const gzipJson = (value: unknown): Uint8Array => gzipSync(Buffer.from(JSON.stringify(value), 'utf8'));
const gunzipJson = <T>(bytes: Uint8Array | undefined): T[] =>
  bytes ? (JSON.parse(gunzipSync(bytes).toString('utf8')) as T[]) : [];

async function putResult(
  deps: OrganizationAuditDeps,
  request: AccountRequest,
  result: {
    status: OrganizationResultStatus;
    counts?: StoredCounts;
    findings?: readonly Finding[];
    actions?: readonly ActionOutcome[];
    error?: Error;
  },
): Promise<void> {
  const expiresAt =
    Math.floor(deps.audit.clock.now().getTime() / 1000) + ORGANIZATION_RESULTS_TTL_DAYS * 86_400;
  const item: Record<string, AttributeValue> = {
    [COL.partitionKey]: { S: request.runId },
    [COL.sortKey]: { S: request.accountId },
    [COL.status]: { S: result.status },
    [COL.ttl]: { N: String(expiresAt) },
  };
  if (result.counts)
    item[COL.counts] = {
      M: Object.fromEntries(Object.entries(result.counts).map(([k, v]) => [k, { N: String(v) }])),
    };
  if (result.findings) item[COL.findings] = { B: gzipJson(result.findings) };
  if (result.actions) item[COL.actions] = { B: gzipJson(result.actions) };
  if (result.error)
    item[COL.error] = {
      M: { name: { S: result.error.name }, message: { S: result.error.message } },
    };
  await deps.dynamodb.send(new PutItemCommand({ TableName: deps.resultsTable, Item: item }));
}

interface StoredResult {
  accountId: string;
  status: OrganizationResultStatus;
  counts: Partial<StoredCounts>;
  findings: Finding[];
  actions: ActionOutcome[];
  error?: { name: string; message: string };
}

async function readResults(deps: OrganizationAuditDeps, runId: string): Promise<Map<string, StoredResult>> {
  const results = new Map<string, StoredResult>();
  const pages = paginateQuery(
    { client: deps.dynamodb as DynamoDBClient },
    {
      TableName: deps.resultsTable,
      KeyConditionExpression: '#run = :run',
      ExpressionAttributeNames: { '#run': COL.partitionKey },
      ExpressionAttributeValues: { ':run': { S: runId } },
      // Each account's item was written just before: read it, not an older replica's answer.
      ConsistentRead: true,
    },
  );
  for await (const page of pages) {
    for (const item of page.Items ?? []) {
      const accountId = item[COL.sortKey]?.S;
      if (!accountId) continue;
      const counts = Object.fromEntries(
        Object.entries(item[COL.counts]?.M ?? {}).map(([k, v]) => [k, Number(v.N)]),
      ) as Partial<StoredCounts>;
      const error = item[COL.error]?.M;
      results.set(accountId, {
        accountId,
        status: item[COL.status]?.S === 'audited' ? 'audited' : 'failed',
        counts,
        findings: gunzipJson<Finding>(item[COL.findings]?.B),
        actions: gunzipJson<ActionOutcome>(item[COL.actions]?.B),
        ...(error ? { error: { name: error.name?.S ?? 'Error', message: error.message?.S ?? '' } } : {}),
      });
    }
  }
  return results;
}

export async function aggregate(
  deps: OrganizationAuditDeps,
  policy: AuditPolicy,
  request: AggregateRequest,
): Promise<OrganizationTotals> {
  const begun = deps.audit.clock.now();
  const results = await readResults(deps, request.runId);
  const lines: AccountLine[] = request.accountIds.map((accountId) => {
    const r = results.get(accountId);
    if (!r) return { accountId, status: 'missing', usersScanned: 0, findings: 0, rotationsStarted: 0 };
    return {
      accountId,
      status: r.status,
      usersScanned: r.counts.usersScanned ?? 0,
      findings: r.counts.findings ?? r.findings.length,
      rotationsStarted: r.counts.rotationsStarted ?? 0,
      ...(r.error ? { error: r.error } : {}),
    };
  });
  const listed = request.accountIds.flatMap((id) => {
    const r = results.get(id);
    return r ? [r] : [];
  });
  const findings = sortFindings(listed.flatMap((r) => r.findings));
  const report: AuditReport = {
    auditedAt: begun,
    accountId: null,
    reportGeneratedAt: null,
    usersScanned: lines.reduce((n, l) => n + l.usersScanned, 0),
    findings,
    stale: [],
    actions: listed.flatMap((r) => r.actions),
    thresholds: policy.thresholds,
    policy,
    dryRun: request.dryRun,
    organization: { runId: request.runId, accounts: lines },
  };
  if (!request.dryRun) {
    // The events went out from each account's audit: only the digest here.
    await publishAlerts(
      {
        sns: deps.audit.sns,
        eventBridge: deps.audit.eventBridge,
        clock: deps.audit.clock,
        topicArn: deps.audit.topicArn,
        eventBusName: deps.audit.eventBusName,
      },
      report,
      { events: false },
    );
    const byType = countsByType(findings) as Record<FindingType, number>;
    const ages = listed.map((r) => r.counts.oldestActiveKeyAgeDays ?? -1).filter((age) => age >= 0);
    deps.publishMetrics?.(
      metricsOf({
        findings: Object.fromEntries(FINDING_TYPES.map((t) => [t, byType[t] ?? 0])) as Record<
          FindingType,
          number
        >,
        oldestActiveKeyAgeDays: ages.length ? Math.max(...ages) : null,
        usersInScope: listed.reduce((n, r) => n + (r.counts.usersInScope ?? 0), 0),
        durationMs: listed.reduce((n, r) => Math.max(n, r.counts.durationMs ?? 0), 0),
      }),
    );
  }
  const failed = lines.filter((l) => l.status === 'failed').map((l) => l.accountId);
  const missing = lines.filter((l) => l.status === 'missing').map((l) => l.accountId);
  const totals: OrganizationTotals = {
    accounts: lines.length,
    audited: lines.filter((l) => l.status === 'audited').length,
    failed: failed.length,
    findings: findings.length,
    rotationsStarted: lines.reduce((n, l) => n + l.rotationsStarted, 0),
  };
  deps.audit.log?.(`organization audit ${request.runId}: ${JSON.stringify(totals)}`);
  if (failed.length || missing.length) throw new OrganizationAuditIncomplete(failed, missing);
  return totals;
}
