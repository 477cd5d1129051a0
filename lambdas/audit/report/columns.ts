/**
 * What an audit report holds, shared by its HTML and CSV forms (html.ts, csv.ts): one audit's
 * findings, the thresholds it used, when it ran and which account(s) it read. Both `rekey audit
 * --html/--csv` and the audit Lambda's report upload render from this, so a column is defined
 * once, here, for both files (docs/audit.md lists the CSV's column names).
 *
 * Findings carry user names, ARNs, key ids, dates and tag text: no secret. The columns are an
 * allow-list of those fields.
 */
import { credentialIdOf, type Finding, SEVERITY, type Thresholds } from '../findings.ts';

/** One audit, as a report shows it. */
export interface ReportInput {
  findings: readonly Finding[];
  thresholds: Thresholds;
  /** When the audit read the account (its "now"). */
  auditedAt: Date;
  /**
   * The account(s) audited. A finding of an audit of several accounts names its own (`accountId`
   * on the finding); otherwise each finding is the only account's.
   */
  accountIds: readonly string[];
}

/** A finding with the account it belongs to, as a row of the report. */
export type ReportRow = Omit<Finding, 'accountId'> & { accountId: string | null };

export function reportRows(input: ReportInput): ReportRow[] {
  const only = input.accountIds.length === 1 ? (input.accountIds[0] ?? null) : null;
  return input.findings.map((f) => ({
    ...f,
    accountId: f.accountId ?? only,
  }));
}

export interface ReportColumn {
  /** The CSV header and the HTML column's key: stable, snake_case (docs/audit.md). */
  readonly name: string;
  /** The HTML table's header. */
  readonly label: string;
  /** Numbers sort as numbers in the HTML table (an empty cell sorts first). */
  readonly numeric?: boolean;
  /** The cell; null is an empty cell. */
  value(row: ReportRow): string | number | null;
}

const exemptionState = (row: ReportRow) =>
  row.exemption ? (row.exemption.expired ? 'expired' : 'yes') : 'no';

/**
 * The report's columns, in order: the CSV's header and the HTML table's. A new column is one more
 * entry here (and a line in docs/audit.md's table, which test/docs checks against this list).
 */
export const REPORT_COLUMNS: readonly ReportColumn[] = [
  { name: 'account_id', label: 'Account', value: (r) => r.accountId },
  { name: 'type', label: 'Type', value: (r) => r.type },
  { name: 'severity', label: 'Severity', value: (r) => SEVERITY[r.type] },
  { name: 'user_name', label: 'User', value: (r) => r.userName },
  { name: 'user_arn', label: 'User ARN', value: (r) => r.userArn },
  { name: 'credential_id', label: 'Access key / credential', value: (r) => credentialIdOf(r) },
  { name: 'service_name', label: 'Service', value: (r) => r.serviceName ?? null },
  { name: 'age_days', label: 'Age (days)', numeric: true, value: (r) => r.ageDays },
  { name: 'idle_days', label: 'Idle (days)', numeric: true, value: (r) => r.idleDays },
  { name: 'last_used_date', label: 'Last used', value: (r) => r.lastUsedDate },
  { name: 'create_date', label: 'Created', value: (r) => r.createDate },
  { name: 'exempt', label: 'Exempt', value: exemptionState },
  { name: 'exemption_reason', label: 'Exemption reason', value: (r) => r.exemption?.reason ?? null },
  { name: 'exemption_until', label: 'Exempt until', value: (r) => r.exemption?.until ?? null },
  { name: 'owner', label: 'Owner', value: (r) => r.owner ?? null },
  { name: 'owner_note', label: 'Owner note', value: (r) => r.ownerNote ?? null },
];

/**
 * The key-age chart's buckets, in days (both ends included; `max` null: no upper end). Months
 * one to three (the 90-day rotation rule of IAM.3 / CIS ends the third), then half a year, a
 * year, two years and beyond: the buckets past the default maximum age show how far over it keys are.
 */
export const AGE_BUCKETS: ReadonlyArray<{ label: string; min: number; max: number | null }> = [
  { label: '0-30', min: 0, max: 30 },
  { label: '31-60', min: 31, max: 60 },
  { label: '61-90', min: 61, max: 90 },
  { label: '91-180', min: 91, max: 180 },
  { label: '181-365', min: 181, max: 365 },
  { label: '366-730', min: 366, max: 730 },
  { label: '731+', min: 731, max: null },
];

/**
 * How many credentials with findings fall in each age bucket. A credential with several findings
 * (old and unused) counts once; the root user's keys (no key id) count once per key slot.
 */
export function ageBucketCounts(rows: readonly ReportRow[]): number[] {
  const credentials = new Map<string, number>();
  for (const r of rows)
    credentials.set(
      `${r.accountId}|${r.userName}|${r.serviceName ?? ''}|${credentialIdOf(r) ?? `slot-${r.keySlot}`}`,
      r.ageDays,
    );
  const counts = AGE_BUCKETS.map(() => 0);
  for (const age of credentials.values()) {
    const i = AGE_BUCKETS.findIndex((b) => age >= b.min && (b.max === null || age <= b.max));
    if (i >= 0) counts[i] = (counts[i] ?? 0) + 1;
  }
  return counts;
}
