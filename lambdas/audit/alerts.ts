/**
 * The audit's alerts: one SNS digest per run, written to be read as a plain-text email, and one
 * EventBridge event per finding (source `rekey`, detail-type "Stale Access Key Found") for
 * routing (Slack, ticketing, SIEM). Both are built field by field from the findings and the
 * actions, which hold user names, key ids, dates and reasons: there is no secret to leak, and an
 * allow-list of fields keeps it that way.
 *
 * A service-specific credential's finding carries `serviceName` and `serviceSpecificCredentialId`
 * in its event (absent on access keys' events, whose shape is unchanged) and sits in a table of its
 * own in the digest (no LAST USED column: IAM records none for these credentials).
 *
 * A rotation the audit gave up on (maxRotationAttempts attempts ended FAILED, ABORTED or TIMED_OUT)
 * gets a section of its own at the top of the digest and, at every run while it lasts, one more
 * event, detail-type "Access Key Rotation Still Failing": a human has to look. Retried rotations
 * are listed in the digest with the attempt that failed before.
 *
 * No findings, no digest: a daily "all clear" email trains people to ignore the sender. A run that
 * fails raises a Lambda error instead (the schedule's retries and dead-letter queue), and every run
 * logs its summary.
 */
import {
  type EventBridgeClient,
  PutEventsCommand,
  type PutEventsRequestEntry,
} from '@aws-sdk/client-eventbridge';
import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { RekeyError } from '../../contract/errors.ts';
import { ALL_OWNERS } from '../../contract/owner.ts';
import type { Clock } from '../shared/clock.ts';
import { type ActionOutcome, attemptText, stateMachineArnOf } from './actions.ts';
import {
  credentialIdOf,
  FINDING_TYPES,
  type Finding,
  isActiveExemption,
  SEVERITY,
  type Thresholds,
} from './findings.ts';
import { ownerReports } from './owners.ts';
import type { ReportLinks } from './report/upload.ts';
import type { StaleFinding } from './users.ts';

export const FINDING_DETAIL_TYPE = 'Stale Access Key Found';
/** One per given-up rotation and run, next to that key's "Stale Access Key Found". */
export const STILL_FAILING_DETAIL_TYPE = 'Access Key Rotation Still Failing';
export const EVENT_SOURCE = 'rekey';
/** PutEvents takes at most 10 entries per call. */
const EVENTS_PER_CALL = 10;
/**
 * Entries EventBridge refuses inside a 200 answer (ThrottlingException, InternalFailure) are sent
 * again, twice, 1 s then 2 s later; entries still refused then fail the run with EventsNotDelivered.
 */
export const PUT_EVENTS_RETRY = { attempts: 3, baseDelayMs: 1_000 } as const;
/** An SNS message is at most 256 KB: the table stops here and says how many rows it left out. */
export const DIGEST_MAX_ROWS = 500;

export class EventsNotDelivered extends RekeyError {
  constructor(failed: number, codes: string[]) {
    super(
      'EventsNotDelivered',
      `EventBridge refused ${failed} audit event(s) after ${PUT_EVENTS_RETRY.attempts} attempts (${[...new Set(codes)].join(', ')})`,
    );
  }
}

/** One audit run, as the alerts see it. */
export interface AuditReport {
  auditedAt: Date;
  accountId: string | null;
  reportGeneratedAt: Date | null;
  usersScanned: number;
  findings: readonly Finding[];
  stale: readonly StaleFinding[];
  actions: readonly ActionOutcome[];
  thresholds: Thresholds;
  /** The run's report objects (auditReports), or why they were not written; absent or null: off. */
  reports?: ReportLinks | { error: string } | null;
  policy: {
    autoRotate: boolean;
    deactivateUnused: boolean;
    deactivateUnusedAfterDays: number;
    maxRotationsPerRun: number;
    maxRotationAttempts: number;
  };
  dryRun: boolean;
  /** Set on an owner's digest (owners.ts): the findings and actions are that owner's only. */
  owner?: string;
  /**
   * The organization audit's one digest over every account (lambdas/audit/organization.ts): the
   * run, and each account's line. Its findings and actions carry their accountId.
   */
  organization?: { runId: string; accounts: readonly AccountLine[] };
}

/** One account of an organization audit, as the digest's per-account summary shows it. */
export interface AccountLine {
  accountId: string;
  status: 'audited' | 'failed' | 'missing';
  usersScanned: number;
  findings: number;
  rotationsStarted: number;
  /** A failed account's error: name and message. */
  error?: { name: string; message: string };
}

/** The action taken (or not) on a finding, as one short phrase. */
export function actionFor(f: Finding, actions: readonly ActionOutcome[]): ActionOutcome | undefined {
  const kind = f.type === 'OLD_KEY' ? 'ROTATION' : f.type === 'UNUSED_KEY' ? 'DEACTIVATION' : null;
  if (!kind) return undefined;
  return actions.find(
    (a) =>
      a.kind === kind &&
      a.accountId === f.accountId &&
      a.userName === f.userName &&
      a.accessKeyId === f.accessKeyId &&
      a.serviceSpecificCredentialId === f.serviceSpecificCredentialId,
  );
}

export function actionText(f: Finding, actions: readonly ActionOutcome[]): string {
  const action = actionFor(f, actions);
  if (action) {
    switch (action.status) {
      case 'STARTED':
        return 'rotation started';
      case 'RETRIED':
        return `rotation retried (attempt ${action.attempt})`;
      case 'ALREADY_STARTED':
        return 'rotation already running or done';
      case 'GIVEN_UP':
        return `STILL FAILING after ${action.failedAttempts?.length ?? 0} attempts: no more retries, a human must look`;
      case 'WOULD_START':
        return 'would start rotation (dry run)';
      case 'DEACTIVATED':
        return 'deactivated';
      case 'WOULD_DEACTIVATE':
        return 'would deactivate (dry run)';
      case 'FAILED':
        return `FAILED: ${action.detail}`;
      default:
        return `skipped: ${action.detail}`;
    }
  }
  if (isActiveExemption(f.exemption)) return 'exempt: reported only';
  switch (f.type) {
    case 'ROOT_ACCESS_KEY':
      return 'delete the root access key by hand';
    case 'TWO_ACTIVE_KEYS':
      return `deactivate one of ${credentialIdOf(f)} / ${f.other ? credentialIdOf(f.other) : null} by hand`;
    case 'EXPIRING_KEY':
      return 'warning: rotate soon';
    case 'UNUSED_KEY':
      return 'alert only: deactivate or delete it if nobody needs it';
    default:
      return 'alert only';
  }
}

const day = (iso: string | null) => (iso ? iso.slice(0, 10) : 'never');
const cell = (s: string, width: number) => (s.length > width ? `${s.slice(0, width - 1)}~` : s.padEnd(width));

/**
 * A fixed-width table (monospace in any mail client that shows plain text as such): access keys
 * (the findings without serviceName), or serviceCredentialsTable for the others.
 */
export function findingsTable(
  findings: readonly Finding[],
  actions: readonly ActionOutcome[],
  withAccount = false,
): string[] {
  const header = `${accountCell(withAccount, 'ACCOUNT')}${cell('TYPE', 15)} ${cell('USER', 32)} ${cell('ACCESS KEY', 20)} ${'AGE'.padStart(4)}  ${cell('LAST USED', 10)}  ACTION`;
  const rows = findings.map(
    (f) =>
      `${accountCell(withAccount, f.accountId)}${cell(f.type, 15)} ${cell(f.userName, 32)} ${cell(f.accessKeyId ?? `(key ${f.keySlot})`, 20)} ${String(f.ageDays).padStart(4)}  ${cell(day(f.lastUsedDate), 10)}  ${actionText(f, actions)}`,
  );
  return [header, '-'.repeat(header.length + 12), ...rows];
}

/** The ACCOUNT column of an organization digest's tables (none in a single account's). */
const accountCell = (withAccount: boolean, value: string | undefined) =>
  withAccount ? `${cell(value ?? '', 12)} ` : '';

/** The table of service-specific credentials' findings: service and credential id, no last use. */
export function serviceCredentialsTable(
  findings: readonly Finding[],
  actions: readonly ActionOutcome[],
  withAccount = false,
): string[] {
  const header = `${accountCell(withAccount, 'ACCOUNT')}${cell('TYPE', 15)} ${cell('USER', 32)} ${cell('SERVICE', 24)} ${cell('CREDENTIAL', 24)} ${'AGE'.padStart(4)}  ACTION`;
  const rows = findings.map(
    (f) =>
      `${accountCell(withAccount, f.accountId)}${cell(f.type, 15)} ${cell(f.userName, 32)} ${cell(f.serviceName ?? '', 24)} ${cell(f.serviceSpecificCredentialId ?? '', 24)} ${String(f.ageDays).padStart(4)}  ${actionText(f, actions)}`,
  );
  return [header, '-'.repeat(header.length + 12), ...rows];
}

export function countsByType(findings: readonly Pick<Finding, 'type'>[]): Record<string, number> {
  return Object.fromEntries(FINDING_TYPES.map((t) => [t, findings.filter((f) => f.type === t).length]));
}

const SHORT: Record<string, string> = {
  ROOT_ACCESS_KEY: 'root key',
  OLD_KEY: 'old',
  UNUSED_KEY: 'unused',
  TWO_ACTIVE_KEYS: 'two active',
  EXPIRING_KEY: 'expiring',
};

export function digestSubject(report: AuditReport): string {
  const counts = countsByType(report.findings);
  const parts = FINDING_TYPES.filter((t) => counts[t]).map((t) => `${counts[t]} ${SHORT[t]}`);
  const n = report.findings.length;
  // Before the counts by type, so that a long subject is never cut there.
  const givenUp = givenUpActions(report.actions).length;
  const failing = givenUp ? `, ${givenUp} rotation${givenUp === 1 ? '' : 's'} still failing` : '';
  // SNS subjects: ASCII, no line breaks, at most 100 characters.
  const across = report.organization ? ` of ${report.organization.accounts.length} accounts` : '';
  const audit = `Access key audit${across}${report.owner ? ` for ${report.owner}` : ''}`;
  return `[rekey] ${audit}${report.dryRun ? ' (dry run)' : ''}: ${n} finding${n === 1 ? '' : 's'}${failing} (${parts.join(', ')})`.slice(
    0,
    100,
  );
}

export function digestText(report: AuditReport): string {
  const { findings, actions, thresholds, policy } = report;
  const counts = countsByType(findings);
  const exempt = findings.filter((f) => isActiveExemption(f.exemption));
  const acted = findings.filter((f) => !isActiveExemption(f.exemption));
  const by = (status: ActionOutcome['status'], kind: ActionOutcome['kind']) =>
    actions.filter((a) => a.status === status && a.kind === kind);
  const lines: string[] = [
    `rekey access key audit${report.dryRun ? ' (DRY RUN: nothing was started or changed)' : ''}`,
    '',
    ...(report.organization
      ? [
          `Accounts:           ${report.organization.accounts.length} (organization audit ${report.organization.runId})`,
        ]
      : [`Account:            ${report.accountId ?? 'unknown'}`]),
    ...(report.owner
      ? [`Owner:              ${report.owner} (only the findings of users this owner owns)`]
      : []),
    `Audited at:         ${report.auditedAt.toISOString()}`,
    report.organization
      ? `Credential reports: one per account, ${report.usersScanned} users in all`
      : `Credential report:  generated ${report.reportGeneratedAt?.toISOString() ?? 'at an unknown time'}, ${report.usersScanned} users`,
    `Thresholds:         old after ${thresholds.maxKeyAgeDays} days, warning ${thresholds.warnDays} days before, unused after ${thresholds.unusedDays} days`,
    ...reportLines(report.reports),
    '',
    `Findings: ${findings.length}${exempt.length ? ` (${exempt.length} of them exempt)` : ''}`,
    ...FINDING_TYPES.map((t) => `  ${t.padEnd(16)} ${String(counts[t]).padStart(6)}`),
    '',
    'Actions:',
    `  rotations started:           ${by('STARTED', 'ROTATION').length + by('WOULD_START', 'ROTATION').length}${policy.autoRotate ? ` (at most ${policy.maxRotationsPerRun} starts per run, retries included)` : ' (automatic rotation is off)'}`,
    `  rotations retried:           ${by('RETRIED', 'ROTATION').length} (at most ${policy.maxRotationAttempts} attempts each)`,
    `  rotations already running:   ${by('ALREADY_STARTED', 'ROTATION').length}`,
    `  rotations still failing:     ${by('GIVEN_UP', 'ROTATION').length} (given up: no more retries)`,
    `  keys deactivated as unused:  ${by('DEACTIVATED', 'DEACTIVATION').length + by('WOULD_DEACTIVATE', 'DEACTIVATION').length}${policy.deactivateUnused ? ` (policy: unused more than ${policy.deactivateUnusedAfterDays} days)` : ' (policy off)'}`,
    `  skipped:                     ${actions.filter((a) => a.status === 'SKIPPED').length}`,
    `  failed:                      ${actions.filter((a) => a.status === 'FAILED').length}`,
    '',
  ];
  const table = (list: readonly Finding[]) => {
    const shown = list.slice(0, DIGEST_MAX_ROWS);
    const keys = shown.filter((f) => !f.serviceName);
    const services = shown.filter((f) => f.serviceName);
    const withAccount = report.organization !== undefined;
    const out = keys.length || !services.length ? findingsTable(keys, actions, withAccount) : [];
    if (services.length)
      out.push(
        ...(keys.length ? ['', 'Service-specific credentials (Amazon Keyspaces, CodeCommit)', ''] : []),
        ...serviceCredentialsTable(services, actions, withAccount),
      );
    if (list.length > shown.length)
      out.push(`... and ${list.length - shown.length} more (every finding is also an EventBridge event)`);
    return out;
  };
  lines.push(...accountsSection(report.organization?.accounts ?? []));
  lines.push(...givenUpSection(actions), ...retriedSection(actions, policy.maxRotationAttempts));
  if (acted.length) lines.push('Findings', '', ...table(acted), '');
  if (exempt.length) {
    lines.push('Exempt (reported, never acted on)', '', ...table(exempt), '');
    for (const f of exempt.slice(0, DIGEST_MAX_ROWS))
      lines.push(
        `  ${f.accountId ? `${f.accountId} ` : ''}${f.userName}: ${f.exemption?.reason}${f.exemption?.until ? ` (until ${day(f.exemption.until)})` : ''}`,
      );
    lines.push('');
  }
  const expired = findings.filter((f) => f.exemption?.expired);
  if (expired.length) {
    lines.push('Expired exemptions (no longer exempt, acted on as usual)', '');
    for (const u of new Set(
      expired.map(
        (f) =>
          `${f.accountId ? `${f.accountId} ` : ''}${f.userName}: expired ${day(f.exemption?.until ?? null)}, ${f.exemption?.reason}`,
      ),
    ))
      lines.push(`  ${u}`);
    lines.push('');
  }
  const notable = actions.filter((a) => a.status === 'SKIPPED' || a.status === 'FAILED');
  if (notable.length) {
    lines.push('Skipped or failed, and why', '');
    for (const a of notable.slice(0, DIGEST_MAX_ROWS))
      lines.push(
        `  ${a.kind === 'ROTATION' ? 'rotate' : 'deactivate'} ${a.accountId ? `${a.accountId} ` : ''}${a.userName} ${a.serviceName ? `${a.serviceName} ` : ''}${credentialIdOf(a) ?? ''}: ${a.status === 'FAILED' ? 'FAILED, ' : ''}${a.detail}`,
      );
    lines.push('');
  }
  lines.push(...ownerNotesSection(findings));
  if (report.stale.length)
    lines.push(
      `${report.stale.length} finding(s) of the credential report had already cleared (key rotated or deactivated since).`,
      '',
    );
  lines.push(
    'Rotations run the rekey state machine: the old key stays active until its consumers have moved to the new one.',
    'To exempt a user, tag it with the exempt tag, e.g. "until=YYYY-MM-DD reason".',
  );
  return lines.join('\n');
}

/** Where the run's report files are: their console pages (sign-in needed) and S3 URIs. */
function reportLines(reports: AuditReport['reports']): string[] {
  if (!reports) return [];
  if ('error' in reports) return [`Reports:            NOT WRITTEN (${reports.error})`];
  const link = (l: ReportLinks['html']) => (l.consoleUrl ? [l.consoleUrl, l.uri] : [l.uri]);
  return [
    'Reports:            HTML and CSV, in the S3 console (your own AWS sign-in) and as S3 URIs:',
    ...[...link(reports.html), ...link(reports.csv)].map((l) => `  ${l}`),
  ];
}

/**
 * The organization digest's summary per account: what each audited, and every account that failed
 * or left no result (the run fails after this digest: OrganizationAuditIncomplete).
 */
function accountsSection(accounts: readonly AccountLine[]): string[] {
  if (!accounts.length) return [];
  const lines = [
    'Accounts',
    '',
    `  ${cell('ACCOUNT', 12)} ${'USERS'.padStart(7)} ${'FINDINGS'.padStart(8)} ${'ROTATIONS'.padStart(9)}  STATUS`,
  ];
  for (const a of accounts) {
    const status =
      a.status === 'audited'
        ? 'audited'
        : a.status === 'failed'
          ? `FAILED: ${a.error ? `${a.error.name}: ${a.error.message}` : 'unknown error'}`
          : 'NO RESULT: the audit of this account did not finish';
    lines.push(
      `  ${cell(a.accountId, 12)} ${String(a.usersScanned).padStart(7)} ${String(a.findings).padStart(8)} ${String(a.rotationsStarted).padStart(9)}  ${status}`,
    );
  }
  lines.push('');
  return lines;
}

/** The users whose owner tag names no owner, and why (a note, never an error). */
function ownerNotesSection(findings: readonly Finding[]): string[] {
  const notes = new Map(findings.flatMap((f) => (f.ownerNote ? [[f.userName, f.ownerNote] as const] : [])));
  if (!notes.size) return [];
  const lines = ['Owner tags that name no owner', ''];
  for (const [user, note] of [...notes].slice(0, DIGEST_MAX_ROWS)) lines.push(`  ${user}: ${note}`);
  if (notes.size > DIGEST_MAX_ROWS) lines.push(`  ... and ${notes.size - DIGEST_MAX_ROWS} more`);
  lines.push('');
  return lines;
}

const givenUpActions = (actions: readonly ActionOutcome[]) =>
  actions.filter((a) => a.kind === 'ROTATION' && a.status === 'GIVEN_UP');

const who = (a: ActionOutcome) =>
  `${a.accountId ? `${a.accountId} ` : ''}${a.userName} ${a.serviceName ? `${a.serviceName} ` : ''}${credentialIdOf(a) ?? ''}`;

/** The rotation input that starts this rotation again by hand (what the audit sends, minus the reason). */
export const manualInput = (a: Pick<ActionOutcome, 'accountId' | 'userName' | 'serviceName'>): string =>
  JSON.stringify({
    ...(a.accountId ? { accountId: a.accountId } : {}),
    userName: a.userName,
    ...(a.serviceName ? { serviceName: a.serviceName } : {}),
  });

/**
 * First in the digest: each rotation the audit gave up on, every attempt with how it ended, and
 * what a human does next.
 */
function givenUpSection(actions: readonly ActionOutcome[]): string[] {
  const givenUp = givenUpActions(actions);
  const first = givenUp[0];
  if (!first) return [];
  const width = Math.max(
    ...givenUp.flatMap((a) => (a.failedAttempts ?? []).map((f) => f.executionName.length)),
  );
  const lines = [`Rotations still failing: rekey stopped retrying them (${givenUp.length})`, ''];
  for (const a of givenUp.slice(0, DIGEST_MAX_ROWS)) {
    const attempts = a.failedAttempts ?? [];
    lines.push(`  ${who(a)}: ${attempts.length} attempts failed`);
    for (const f of attempts)
      lines.push(
        `    ${f.executionName.padEnd(width)}  ${f.status}${f.error ? ` (${f.error})` : ''}${f.stopDate ? ` at ${f.stopDate}` : ''}`,
      );
    lines.push(`    input to start it by hand: ${manualInput(a)}`);
  }
  if (givenUp.length > DIGEST_MAX_ROWS) lines.push(`  ... and ${givenUp.length - DIGEST_MAX_ROWS} more`);
  const stateMachine = first.executionArn ? stateMachineArnOf(first.executionArn) : '<state machine ARN>';
  lines.push(
    '',
    "  Why an attempt failed is in its execution's history (Step Functions console). Fix the cause, then",
    `  start the rotation by hand: aws stepfunctions start-execution --state-machine-arn ${stateMachine} \\`,
    "    --input '<the input above>'",
    '  A rotation is listed here at every run until its key is no longer old; exempting the user stops that.',
    '',
  );
  return lines;
}

/** The rotations started again this run, with the attempt that failed before. */
function retriedSection(actions: readonly ActionOutcome[], maxAttempts: number): string[] {
  const retried = actions.filter((a) => a.kind === 'ROTATION' && a.status === 'RETRIED');
  if (!retried.length) return [];
  const lines = ['Rotations retried (an earlier attempt failed)', ''];
  for (const a of retried.slice(0, DIGEST_MAX_ROWS)) {
    const before = (a.failedAttempts ?? []).map(attemptText).join(', ');
    lines.push(`  ${who(a)}: attempt ${a.attempt} of ${maxAttempts} ${a.executionName}, after ${before}`);
  }
  if (retried.length > DIGEST_MAX_ROWS) lines.push(`  ... and ${retried.length - DIGEST_MAX_ROWS} more`);
  lines.push('');
  return lines;
}

/**
 * The EventBridge detail of one finding: an explicit allow-list of fields. A service credential's
 * finding adds serviceName, serviceSpecificCredentialId and (TWO_ACTIVE_KEYS)
 * otherServiceSpecificCredentialId; accessKeyId, otherAccessKeyId, lastUsedDate and idleDays are
 * null there.
 */
export function eventDetail(f: Finding, report: AuditReport): Record<string, unknown> {
  const action = actionFor(f, report.actions);
  const service = f.serviceName
    ? {
        serviceName: f.serviceName,
        serviceSpecificCredentialId: f.serviceSpecificCredentialId ?? null,
        otherServiceSpecificCredentialId: f.other?.serviceSpecificCredentialId ?? null,
      }
    : {};
  return {
    type: f.type,
    userName: f.userName,
    accessKeyId: f.accessKeyId,
    ageDays: f.ageDays,
    lastUsedDate: f.lastUsedDate,
    severity: SEVERITY[f.type],
    idleDays: f.idleDays,
    createDate: f.createDate,
    otherAccessKeyId: f.other?.accessKeyId ?? null,
    ...service,
    exempt: isActiveExemption(f.exemption),
    exemption: f.exemption,
    owner: f.owner ?? null,
    ...(f.ownerNote ? { ownerNote: f.ownerNote } : {}),
    action: action
      ? {
          kind: action.kind,
          status: action.status,
          detail: action.detail,
          executionName: action.executionName ?? null,
        }
      : null,
    message: actionText(f, report.actions),
    accountId: report.accountId,
    auditedAt: report.auditedAt.toISOString(),
    reportGeneratedAt: report.reportGeneratedAt?.toISOString() ?? null,
    dryRun: report.dryRun,
  };
}

export function findingEvents(report: AuditReport, eventBusName: string): PutEventsRequestEntry[] {
  return report.findings.map((f) => ({
    Source: EVENT_SOURCE,
    DetailType: FINDING_DETAIL_TYPE,
    Detail: JSON.stringify(eventDetail(f, report)),
    EventBusName: eventBusName,
    Resources: f.userArn.startsWith('arn:') ? [f.userArn] : [],
    Time: report.auditedAt,
  }));
}

/**
 * The detail of a rotation the audit gave up on: who, which credential, and every attempt with
 * how it ended (an allow-list again; an execution's cause text stays in Step Functions).
 */
export function stillFailingDetail(
  f: Finding,
  action: ActionOutcome,
  report: AuditReport,
): Record<string, unknown> {
  const attempts = action.failedAttempts ?? [];
  return {
    userName: f.userName,
    accessKeyId: f.accessKeyId,
    ...(f.serviceName
      ? { serviceName: f.serviceName, serviceSpecificCredentialId: f.serviceSpecificCredentialId ?? null }
      : {}),
    ageDays: f.ageDays,
    owner: f.owner ?? null,
    attempts: attempts.length,
    maxRotationAttempts: report.policy.maxRotationAttempts,
    executions: attempts.map((a) => ({
      attempt: a.attempt,
      executionName: a.executionName,
      executionArn: a.executionArn,
      status: a.status,
      error: a.error,
      stopDate: a.stopDate,
    })),
    message: action.detail,
    accountId: report.accountId,
    auditedAt: report.auditedAt.toISOString(),
  };
}

/** One "Access Key Rotation Still Failing" event per OLD_KEY finding whose rotation was given up. */
export function stillFailingEvents(report: AuditReport, eventBusName: string): PutEventsRequestEntry[] {
  return report.findings.flatMap((f) => {
    const action = actionFor(f, report.actions);
    if (action?.status !== 'GIVEN_UP') return [];
    return [
      {
        Source: EVENT_SOURCE,
        DetailType: STILL_FAILING_DETAIL_TYPE,
        Detail: JSON.stringify(stillFailingDetail(f, action, report)),
        EventBusName: eventBusName,
        Resources: [
          ...(f.userArn.startsWith('arn:') ? [f.userArn] : []),
          ...(action.failedAttempts ?? []).map((a) => a.executionArn),
        ],
        Time: report.auditedAt,
      },
    ];
  });
}

export interface AlertDeps {
  sns: SNSClient;
  eventBridge: EventBridgeClient;
  clock: Clock;
  topicArn: string;
  eventBusName: string;
}

/**
 * The digest(s) and the events of a run. The organization audit sends each account's events from
 * that account's audit (`digest: false`) and one digest over them all at the end (`events: false`);
 * that digest goes out also without findings when an account failed or left no result.
 */
export async function publishAlerts(
  deps: AlertDeps,
  report: AuditReport,
  send: { digest?: boolean; events?: boolean } = {},
): Promise<{ digestPublished: boolean; eventsPublished: number }> {
  const incomplete = report.organization?.accounts.some((a) => a.status !== 'audited') ?? false;
  if (report.findings.length === 0 && !incomplete) return { digestPublished: false, eventsPublished: 0 };
  const withDigest = send.digest ?? true;
  // The full digest (owner `*`), then one per owner holding only that owner's findings: a
  // subscription filtered on its owner never receives another owner's findings.
  for (const digest of withDigest ? [report, ...ownerReports(report)] : []) {
    await deps.sns.send(
      new PublishCommand({
        TopicArn: deps.topicArn,
        Subject: digestSubject(digest),
        Message: digestText(digest),
        MessageAttributes: {
          event: { DataType: 'String', StringValue: 'AUDIT_DIGEST' },
          owner: { DataType: 'String', StringValue: digest.owner ?? ALL_OWNERS },
        },
      }),
    );
  }
  const entries =
    (send.events ?? true)
      ? [...findingEvents(report, deps.eventBusName), ...stillFailingEvents(report, deps.eventBusName)]
      : [];
  for (let i = 0; i < entries.length; i += EVENTS_PER_CALL) {
    await putWithRetry(deps, entries.slice(i, i + EVENTS_PER_CALL));
  }
  return { digestPublished: withDigest, eventsPublished: entries.length };
}

async function putWithRetry(deps: AlertDeps, batch: PutEventsRequestEntry[]): Promise<void> {
  let pending = batch;
  let codes: string[] = [];
  for (let attempt = 1; attempt <= PUT_EVENTS_RETRY.attempts; attempt++) {
    const out = await deps.eventBridge.send(new PutEventsCommand({ Entries: pending }));
    if (!out.FailedEntryCount) return;
    // Results are in request order; a failed entry has an ErrorCode and no EventId.
    const results = out.Entries ?? [];
    codes = results.filter((r) => r.ErrorCode).map((r) => r.ErrorCode as string);
    pending = pending.filter((_, i) => results[i]?.ErrorCode || !results[i]?.EventId);
    if (attempt < PUT_EVENTS_RETRY.attempts)
      await deps.clock.sleep(PUT_EVENTS_RETRY.baseDelayMs * 2 ** (attempt - 1));
  }
  throw new EventsNotDelivered(pending.length, codes);
}
