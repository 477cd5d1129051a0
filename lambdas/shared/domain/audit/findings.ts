/**
 * The audit's decision table, as a pure function of the credential report, the users' tags, the
 * time and the thresholds. No AWS calls here: key ids are attached afterwards (users.ts).
 *
 * Ages and idle times are whole days, rounded down: a key created 90 days and 23 hours ago is 90
 * days old.
 * - OLD_KEY: an active key with ageDays > maxKeyAgeDays. Security Hub IAM.3 / CIS ask for keys
 *   "rotated every 90 days or less", so a key exactly 90 days old is still compliant; 91 is old.
 * - EXPIRING_KEY: an active key that is not old yet and turns old within warnDays, i.e. its first
 *   non-compliant day (maxKeyAgeDays + 1) is at most warnDays away: with 90/14, ages 77..90
 *   (77 days old turns old in 14 days; 76 in 15, not yet reported). warnDays 0 turns it off.
 * - UNUSED_KEY: an active key idle for unusedDays or more, where idle counts from the last use or,
 *   for a key never used, from its creation. IAM.22 / CIS say "unused for 45 days or more", so
 *   exactly 45 days is unused.
 * - TWO_ACTIVE_KEYS: both of a user's keys are active (one finding per user, on the older key).
 * - ROOT_ACCESS_KEY: the `<root_account>` row has an active key (one finding per active root key;
 *   the report gives no root key id, so accessKeyId is null). Root is never exempt.
 * A key can have several findings (old and unused, say); each is reported.
 *
 * Exemptions: a user tagged with the exempt tag (domain/exemption.ts) keeps its findings, marked
 * with `exemption` ({reason, until, expired}); while it holds they are reported but never acted
 * on. An expired exemption no longer exempts: the findings carry `expired: true` and are acted on.
 */
import { parseExemption } from '../exemption.ts';
import type { CredentialReportRow, ReportKey } from './credential-report.ts';

export const FINDING_TYPES = [
  'ROOT_ACCESS_KEY',
  'OLD_KEY',
  'UNUSED_KEY',
  'TWO_ACTIVE_KEYS',
  'EXPIRING_KEY',
] as const;
export type FindingType = (typeof FINDING_TYPES)[number];

export type Severity = 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW' | 'INFORMATIONAL';

/** Security Hub's own severities for the matching controls (IAM.4 critical, IAM.3/8/22 medium). */
export const SEVERITY: Record<FindingType, Severity> = {
  ROOT_ACCESS_KEY: 'CRITICAL',
  OLD_KEY: 'MEDIUM',
  UNUSED_KEY: 'MEDIUM',
  TWO_ACTIVE_KEYS: 'LOW',
  EXPIRING_KEY: 'LOW',
};

export interface Thresholds {
  maxKeyAgeDays: number;
  unusedDays: number;
  warnDays: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = { maxKeyAgeDays: 90, unusedDays: 45, warnDays: 14 };

export interface FindingExemption {
  reason: string;
  /** ISO date-time the exemption holds through, or null (until the tag is removed). */
  until: string | null;
  expired: boolean;
}

export interface Finding {
  type: FindingType;
  userName: string;
  userArn: string;
  /** Filled in from ListAccessKeys (the report has no key ids); always null for the root user. */
  accessKeyId: string | null;
  /** The report's key column (access_key_1 / access_key_2). */
  keySlot: 1 | 2;
  ageDays: number;
  /** ISO date-time, or null when the key was never used. */
  lastUsedDate: string | null;
  /** Days since the last use (since creation when never used). */
  idleDays: number;
  /** ISO date-time the key was created (the report's last_rotated). */
  createDate: string;
  /** TWO_ACTIVE_KEYS only: the other active key. */
  other?: { keySlot: 1 | 2; accessKeyId: string | null; ageDays: number };
  /** Present when the user carries the exempt tag (expired or not). */
  exemption: FindingExemption | null;
}

/** What the audit knows of a user beyond the report (GetAccountAuthorizationDetails). */
export interface UserDetail {
  userName: string;
  path: string;
  tags: ReadonlyMap<string, string>;
}

export interface EvaluateOptions {
  now: Date;
  thresholds: Thresholds;
  exemptTag: string;
}

const DAY_MS = 86_400_000;

/** Whole days from `from` to `to`, rounded down, never negative (clock skew). */
export function wholeDays(from: Date, to: Date): number {
  return Math.max(0, Math.floor((to.getTime() - from.getTime()) / DAY_MS));
}

export const isActiveExemption = (e: FindingExemption | null): boolean => e !== null && !e.expired;

function exemptionOf(user: UserDetail | undefined, exemptTag: string, now: Date): FindingExemption | null {
  const value = user?.tags.get(exemptTag);
  if (value === undefined) return null;
  const e = parseExemption(value, now);
  return { reason: e.reason, until: e.until ? e.until.toISOString() : null, expired: e.expired };
}

interface DatedKey extends ReportKey {
  lastRotated: Date;
}

export function evaluateFindings(
  rows: readonly CredentialReportRow[],
  users: ReadonlyMap<string, UserDetail>,
  options: EvaluateOptions,
): Finding[] {
  const { now, thresholds, exemptTag } = options;
  const { maxKeyAgeDays, unusedDays, warnDays } = thresholds;
  const findings: Finding[] = [];

  for (const row of rows) {
    // A key without a creation date has no age; IAM always writes one for an existing key.
    const active = row.keys.filter((k): k is DatedKey => k.active && k.lastRotated !== null);
    const base = (k: DatedKey) => {
      const ageDays = wholeDays(k.lastRotated, now);
      return {
        userName: row.user,
        userArn: row.arn,
        accessKeyId: null,
        keySlot: k.slot,
        ageDays,
        lastUsedDate: k.lastUsedDate ? k.lastUsedDate.toISOString() : null,
        idleDays: k.lastUsedDate ? wholeDays(k.lastUsedDate, now) : ageDays,
        createDate: k.lastRotated.toISOString(),
      };
    };

    if (row.isRoot) {
      for (const k of active) findings.push({ type: 'ROOT_ACCESS_KEY', ...base(k), exemption: null });
      continue;
    }

    const exemption = exemptionOf(users.get(row.user), exemptTag, now);
    for (const k of active) {
      const b = base(k);
      if (b.ageDays > maxKeyAgeDays) findings.push({ type: 'OLD_KEY', ...b, exemption });
      else if (warnDays > 0 && maxKeyAgeDays + 1 - b.ageDays <= warnDays)
        findings.push({ type: 'EXPIRING_KEY', ...b, exemption });
      if (b.idleDays >= unusedDays) findings.push({ type: 'UNUSED_KEY', ...b, exemption });
    }
    const [first, second] = active;
    if (first && second) {
      const [older, newer] = first.lastRotated <= second.lastRotated ? [first, second] : [second, first];
      findings.push({
        type: 'TWO_ACTIVE_KEYS',
        ...base(older),
        other: { keySlot: newer.slot, accessKeyId: null, ageDays: wholeDays(newer.lastRotated, now) },
        exemption,
      });
    }
  }
  return sortFindings(findings);
}

/** Most severe first, then by user and key: the order of the digest, the events and the CLI. */
export function sortFindings(findings: Finding[]): Finding[] {
  const rank = (t: FindingType) => FINDING_TYPES.indexOf(t);
  return findings.sort(
    (a, b) => rank(a.type) - rank(b.type) || a.userName.localeCompare(b.userName) || a.keySlot - b.keySlot,
  );
}

/** The five contract fields of DESIGN.md (`rekey audit --json`). */
export function contractView(f: Finding): {
  type: FindingType;
  userName: string;
  accessKeyId: string | null;
  ageDays: number;
  lastUsedDate: string | null;
} {
  return {
    type: f.type,
    userName: f.userName,
    accessKeyId: f.accessKeyId,
    ageDays: f.ageDays,
    lastUsedDate: f.lastUsedDate,
  };
}
