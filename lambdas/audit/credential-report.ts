/**
 * The IAM credential report: one CSV with a row per user (and the `<root_account>` row), fetched
 * with a constant number of calls whatever the number of users. This is how the audit avoids
 * per-user ListAccessKeys / GetAccessKeyLastUsed calls to scan an account.
 *
 * IAM generates the report asynchronously and at most every 4 hours (a request inside that window
 * answers COMPLETE for the existing report), so fetching it is a small state machine:
 *   GenerateCredentialReport until State is COMPLETE (STARTED / INPROGRESS: wait; LimitExceeded,
 *   i.e. generation throttled, or throttling: wait and ask again), then GetCredentialReport
 *   (ReportInProgress: wait and get again; ReportNotPresent / ReportExpired: generate again).
 * Every wait goes through the injected clock, and the whole fetch is bounded: past the budget it
 * fails with CredentialReportTimeout rather than running into the Lambda timeout.
 *
 * The report holds no secrets (dates, flags, user names and ARNs only).
 */
import {
  GenerateCredentialReportCommand,
  GetCredentialReportCommand,
  type IAMClient,
} from '@aws-sdk/client-iam';
import { parse } from 'csv-parse/sync';
import { RekeyError } from '../../contract/errors.ts';
import type { Clock } from '../shared/clock.ts';
import type { CallCounter } from './calls.ts';

/** The report could not be fetched within the wait budget (IAM still generating, or throttling). */
export class CredentialReportTimeout extends RekeyError {
  constructor(waitedMs: number, lastState: string) {
    super(
      'CredentialReportTimeout',
      `the IAM credential report was not available after ${Math.round(waitedMs / 1000)} s (last: ${lastState})`,
    );
  }
}

/** The report's CSV is not what IAM documents (a missing column, an unreadable date). */
export class CredentialReportUnreadable extends RekeyError {
  constructor(message: string) {
    super('CredentialReportUnreadable', `the IAM credential report is unreadable: ${message}`);
  }
}

/**
 * Waits between polls: IAM documents no generation time; small accounts take seconds, large ones
 * (tens of thousands of users) minutes. Start at 2 s so the common case is quick, grow by half
 * each time, and never wait more than 20 s at once so a finished report is picked up promptly.
 */
export const REPORT_POLL_POLICY = { firstDelayMs: 2_000, factor: 1.5, maxDelayMs: 20_000 } as const;
/** Total wait budget: well inside a 15-minute Lambda, leaving time to evaluate, act and alert. */
export const REPORT_MAX_WAIT_MS = 5 * 60_000;

/** The SDK's error names and IAM's wire codes (the SDK keeps the latter in `Code`). */
const GENERATION_THROTTLED = ['LimitExceededException', 'LimitExceeded'];
const THROTTLED = ['Throttling', 'ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded'];
const NOT_READY = ['CredentialReportNotReadyException', 'ReportInProgress'];
const NOT_PRESENT = ['CredentialReportNotPresentException', 'ReportNotPresent'];
const EXPIRED = ['CredentialReportExpiredException', 'ReportExpired'];

function errorIs(error: unknown, names: readonly string[]): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { Code?: unknown }).Code;
  return names.includes(error.name) || (typeof code === 'string' && names.includes(code));
}

export interface ReportKey {
  slot: 1 | 2;
  active: boolean;
  /** When the key was created (IAM: "created or last changed"); null when the slot holds no key. */
  lastRotated: Date | null;
  /** null: never used (IAM writes N/A). */
  lastUsedDate: Date | null;
  lastUsedRegion: string | null;
  lastUsedService: string | null;
}

export interface CredentialReportRow {
  user: string;
  arn: string;
  /** The `<root_account>` row: the account's root user. */
  isRoot: boolean;
  userCreationTime: Date | null;
  keys: readonly [ReportKey, ReportKey];
}

export interface CredentialReport {
  generatedTime: Date | null;
  rows: CredentialReportRow[];
}

export const ROOT_ACCOUNT = '<root_account>';

export const REQUIRED_COLUMNS = [
  'user',
  'arn',
  'user_creation_time',
  'access_key_1_active',
  'access_key_1_last_rotated',
  'access_key_1_last_used_date',
  'access_key_2_active',
  'access_key_2_last_rotated',
  'access_key_2_last_used_date',
] as const;

/** Values IAM writes for "nothing here". */
const EMPTY = new Set(['', 'N/A', 'not_supported', 'no_information']);

const text = (value: string | undefined): string | null =>
  value === undefined || EMPTY.has(value) ? null : value;

function date(record: Record<string, string>, column: string): Date | null {
  const value = text(record[column]);
  if (value === null) return null;
  const parsed = new Date(value);
  if (Number.isNaN(parsed.getTime()))
    throw new CredentialReportUnreadable(
      `row "${record.user}": ${column} is not a date (${value.slice(0, 40)})`,
    );
  return parsed;
}

function key(record: Record<string, string>, slot: 1 | 2): ReportKey {
  const prefix = `access_key_${slot}`;
  return {
    slot,
    active: record[`${prefix}_active`] === 'true',
    lastRotated: date(record, `${prefix}_last_rotated`),
    lastUsedDate: date(record, `${prefix}_last_used_date`),
    lastUsedRegion: text(record[`${prefix}_last_used_region`]),
    lastUsedService: text(record[`${prefix}_last_used_service`]),
  };
}

/** Parses the report's CSV (csv-parse, so quoted fields and CRLF line ends are handled). */
export function parseCredentialReport(csv: string): CredentialReportRow[] {
  let records: Record<string, string>[];
  try {
    records = parse(csv, { columns: true, skip_empty_lines: true, trim: true, bom: true });
  } catch (error) {
    throw new CredentialReportUnreadable(error instanceof Error ? error.message : String(error));
  }
  const first = records[0];
  if (first) {
    const missing = REQUIRED_COLUMNS.filter((c) => !(c in first));
    if (missing.length) throw new CredentialReportUnreadable(`missing column(s) ${missing.join(', ')}`);
  }
  return records.map((record) => {
    const user = record.user ?? '';
    return {
      user,
      arn: record.arn ?? '',
      isRoot: user === ROOT_ACCOUNT,
      userCreationTime: date(record, 'user_creation_time'),
      keys: [key(record, 1), key(record, 2)],
    };
  });
}

export interface ReportDeps {
  iam: IAMClient;
  clock: Clock;
  calls: CallCounter;
}

export interface ReportOptions {
  /** @default REPORT_MAX_WAIT_MS */
  maxWaitMs?: number;
}

export async function fetchCredentialReport(
  deps: ReportDeps,
  options: ReportOptions = {},
): Promise<CredentialReport> {
  const { iam, clock, calls } = deps;
  const maxWaitMs = options.maxWaitMs ?? REPORT_MAX_WAIT_MS;
  const started = clock.now().getTime();
  let slept = 0;
  let delay: number = REPORT_POLL_POLICY.firstDelayMs;
  let last = 'nothing requested yet';

  /** Sleeps before the next attempt, or gives up once the budget is spent. */
  const waitBecause = async (why: string): Promise<void> => {
    last = why;
    // A fake clock does not move while sleeping; real time also passes in the calls themselves.
    const elapsed = Math.max(slept, clock.now().getTime() - started);
    if (elapsed >= maxWaitMs) throw new CredentialReportTimeout(elapsed, last);
    const ms = Math.min(delay, maxWaitMs - elapsed);
    await clock.sleep(ms);
    slept += ms;
    delay = Math.min(Math.round(delay * REPORT_POLL_POLICY.factor), REPORT_POLL_POLICY.maxDelayMs);
  };

  let complete = false;
  for (;;) {
    if (!complete) {
      let state: string | undefined;
      try {
        calls.add('GenerateCredentialReport');
        state = (await iam.send(new GenerateCredentialReportCommand({}))).State;
      } catch (error) {
        if (errorIs(error, GENERATION_THROTTLED)) {
          await waitBecause('report generation throttled (LimitExceeded)');
          continue;
        }
        if (errorIs(error, THROTTLED)) {
          await waitBecause(`GenerateCredentialReport throttled (${(error as Error).name})`);
          continue;
        }
        throw error;
      }
      if (state !== 'COMPLETE') {
        await waitBecause(`report generation ${state ?? 'in an unknown state'}`);
        continue;
      }
      complete = true;
    }
    try {
      calls.add('GetCredentialReport');
      const out = await iam.send(new GetCredentialReportCommand({}));
      if (out.ReportFormat && out.ReportFormat !== 'text/csv')
        throw new CredentialReportUnreadable(`unexpected format ${out.ReportFormat}`);
      const csv = new TextDecoder('utf-8').decode(out.Content ?? new Uint8Array());
      return { generatedTime: out.GeneratedTime ?? null, rows: parseCredentialReport(csv) };
    } catch (error) {
      if (errorIs(error, NOT_READY)) {
        await waitBecause('report in progress (ReportInProgress)');
      } else if (errorIs(error, NOT_PRESENT) || errorIs(error, EXPIRED)) {
        complete = false;
        await waitBecause(
          errorIs(error, EXPIRED) ? 'report expired (ReportExpired)' : 'no report (ReportNotPresent)',
        );
      } else if (errorIs(error, THROTTLED)) {
        await waitBecause(`GetCredentialReport throttled (${(error as Error).name})`);
      } else {
        throw error;
      }
    }
  }
}
