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
 * Service-specific credentials (Amazon Keyspaces, CodeCommit; evaluateServiceCredentials) get the
 * same OLD_KEY / EXPIRING_KEY boundaries and TWO_ACTIVE_KEYS per user AND service. Never
 * UNUSED_KEY: IAM records no last use for them (no API, no report column), so idleDays and
 * lastUsedDate are null rather than a guess.
 *
 * Exemptions: a user tagged with the exempt tag (lambdas/shared/exemption.ts) keeps its findings, marked
 * with `exemption` ({reason, until, expired}); while it holds they are reported but never acted
 * on. An expired exemption no longer exempts: the findings carry `expired: true` and are acted on.
 */

import { FINDING_TYPES, type FindingType } from '../../contract/findings.ts';
import { DEFAULT_OWNER_TAG, ownerFromTag } from '../../contract/owner.ts';
import type { ServiceName } from '../../contract/schemas.ts';
import { parseExemption } from '../shared/exemption.ts';
import type { CredentialReportRow, ReportKey } from './credential-report.ts';

export { FINDING_TYPES, type FindingType };

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
  /** The organization audit's account of the user (lambdas/audit/organization.ts); absent in a single-account audit. */
  accountId?: string;
  userName: string;
  userArn: string;
  /**
   * Filled in from ListAccessKeys (the report has no key ids); always null for the root user and
   * for a service-specific credential (its id is serviceSpecificCredentialId).
   */
  accessKeyId: string | null;
  /** The report's key column (access_key_1 / access_key_2); for a service credential, 1 = the older. */
  keySlot: 1 | 2;
  ageDays: number;
  /** ISO date-time, or null when the key was never used (always null for a service credential). */
  lastUsedDate: string | null;
  /**
   * Days since the last use (since creation when never used); null for a service credential,
   * whose last use IAM does not record.
   */
  idleDays: number | null;
  /** ISO date-time the key was created (the report's last_rotated). */
  createDate: string;
  /** TWO_ACTIVE_KEYS only: the other active key (or service credential of the same service). */
  other?: {
    keySlot: 1 | 2;
    accessKeyId: string | null;
    ageDays: number;
    serviceSpecificCredentialId?: string;
  };
  /** Present only on a service-specific credential's finding: the service it signs in to. */
  serviceName?: ServiceName;
  /** Present only on a service-specific credential's finding: its ServiceSpecificCredentialId. */
  serviceSpecificCredentialId?: string;
  /** Present when the user carries the exempt tag (expired or not). */
  exemption: FindingExemption | null;
  /** The user's owner, from the owner tag (contract/owner.ts); absent without a valid one. */
  owner?: string;
  /** Why the user's owner tag names no owner (neither an email address nor a team id). */
  ownerNote?: string;
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
  /** @default DEFAULT_OWNER_TAG */
  ownerTag?: string;
}

/** The `owner` or `ownerNote` of a user's findings, from its owner tag. */
function ownerOf(user: UserDetail | undefined, ownerTag: string): Pick<Finding, 'owner' | 'ownerNote'> {
  const { owner, note } = ownerFromTag(ownerTag, user?.tags.get(ownerTag));
  return owner ? { owner } : note ? { ownerNote: note } : {};
}

const DAY_MS = 86_400_000;

/** Whole days from `from` to `to`, rounded down, never negative (clock skew). */
export function wholeDays(from: Date, to: Date): number {
  return Math.max(0, Math.floor((to.getTime() - from.getTime()) / DAY_MS));
}

export const isActiveExemption = (e: FindingExemption | null): boolean => e !== null && !e.expired;

/** The finding's credential id: the access key id, or the service-specific credential id. */
export const credentialIdOf = (f: Pick<Finding, 'accessKeyId' | 'serviceSpecificCredentialId'>) =>
  f.serviceSpecificCredentialId ?? f.accessKeyId;

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
  const { unusedDays } = thresholds;
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
    const owner = ownerOf(users.get(row.user), options.ownerTag ?? DEFAULT_OWNER_TAG);
    for (const k of active) {
      const b = { ...base(k), ...owner };
      const age = ageFinding(b.ageDays, thresholds);
      if (age) findings.push({ type: age, ...b, exemption });
      if (b.idleDays >= unusedDays) findings.push({ type: 'UNUSED_KEY', ...b, exemption });
    }
    const [first, second] = active;
    if (first && second) {
      const [older, newer] = first.lastRotated <= second.lastRotated ? [first, second] : [second, first];
      findings.push({
        type: 'TWO_ACTIVE_KEYS',
        ...base(older),
        ...owner,
        other: { keySlot: newer.slot, accessKeyId: null, ageDays: wholeDays(newer.lastRotated, now) },
        exemption,
      });
    }
  }
  return sortFindings(findings);
}

/** OLD_KEY, EXPIRING_KEY or neither for an active credential of this age (the boundaries above). */
function ageFinding(ageDays: number, t: Thresholds): 'OLD_KEY' | 'EXPIRING_KEY' | null {
  if (ageDays > t.maxKeyAgeDays) return 'OLD_KEY';
  if (t.warnDays > 0 && t.maxKeyAgeDays + 1 - ageDays <= t.warnDays) return 'EXPIRING_KEY';
  return null;
}

/** A service-specific credential as ListServiceSpecificCredentials describes it (no secret). */
export interface ServiceCredential {
  userName: string;
  serviceName: ServiceName;
  serviceSpecificCredentialId: string;
  /** Active | Inactive | Expired (Bedrock API keys expire; do not assume two values). */
  status: string;
  createDate: Date;
}

/**
 * The findings of service-specific credentials: OLD_KEY / EXPIRING_KEY by age (the thresholds of
 * access keys), TWO_ACTIVE_KEYS when a user has two active credentials for one service. The user's
 * ARN comes from the credential report's rows (`userArns`); a user created after the report (it
 * can be four hours old) has only its name there, and its events then name no resource.
 */
export function evaluateServiceCredentials(
  credentials: readonly ServiceCredential[],
  users: ReadonlyMap<string, UserDetail>,
  userArns: ReadonlyMap<string, string>,
  options: EvaluateOptions,
): Finding[] {
  const { now, thresholds, exemptTag } = options;
  const groups = new Map<string, ServiceCredential[]>();
  for (const c of credentials) {
    if (c.status !== 'Active') continue;
    const key = `${c.userName}\n${c.serviceName}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  const findings: Finding[] = [];
  for (const group of groups.values()) {
    const byAge = [...group].sort((a, b) => a.createDate.getTime() - b.createDate.getTime());
    const first = byAge[0] as ServiceCredential;
    const exemption = exemptionOf(users.get(first.userName), exemptTag, now);
    const owner = ownerOf(users.get(first.userName), options.ownerTag ?? DEFAULT_OWNER_TAG);
    const base = (c: ServiceCredential, slot: 1 | 2) => ({
      userName: c.userName,
      userArn: userArns.get(c.userName) ?? c.userName,
      accessKeyId: null,
      keySlot: slot,
      ageDays: wholeDays(c.createDate, now),
      lastUsedDate: null,
      idleDays: null,
      createDate: c.createDate.toISOString(),
      serviceName: c.serviceName,
      serviceSpecificCredentialId: c.serviceSpecificCredentialId,
      exemption,
      ...owner,
    });
    byAge.forEach((c, i) => {
      const b = base(c, i === 0 ? 1 : 2);
      const age = ageFinding(b.ageDays, thresholds);
      if (age) findings.push({ type: age, ...b });
    });
    const second = byAge[1];
    if (second)
      findings.push({
        type: 'TWO_ACTIVE_KEYS',
        ...base(first, 1),
        other: {
          keySlot: 2,
          accessKeyId: null,
          ageDays: wholeDays(second.createDate, now),
          serviceSpecificCredentialId: second.serviceSpecificCredentialId,
        },
      });
  }
  return sortFindings(findings);
}

/**
 * Most severe first, then by user, access keys before service credentials (then by service), and
 * key: the order of the digest, the events and the CLI.
 */
export function sortFindings(findings: Finding[]): Finding[] {
  const rank = (t: FindingType) => FINDING_TYPES.indexOf(t);
  return findings.sort(
    (a, b) =>
      rank(a.type) - rank(b.type) ||
      a.userName.localeCompare(b.userName) ||
      (a.serviceName ?? '').localeCompare(b.serviceName ?? '') ||
      a.keySlot - b.keySlot,
  );
}

/**
 * The five contract fields of `rekey audit --json` (docs/audit.md); a service credential's finding
 * also has `serviceName` and `serviceSpecificCredentialId` (its accessKeyId is null), so a
 * consumer of the five fields is unaffected by access-key findings and can tell the kinds apart.
 */
export function contractView(f: Finding): {
  type: FindingType;
  userName: string;
  accessKeyId: string | null;
  ageDays: number;
  lastUsedDate: string | null;
  serviceName?: ServiceName;
  serviceSpecificCredentialId?: string;
  owner?: string;
} {
  return {
    type: f.type,
    userName: f.userName,
    accessKeyId: f.accessKeyId,
    ageDays: f.ageDays,
    lastUsedDate: f.lastUsedDate,
    ...(f.serviceName
      ? { serviceName: f.serviceName, serviceSpecificCredentialId: f.serviceSpecificCredentialId as string }
      : {}),
    ...(f.owner ? { owner: f.owner } : {}),
  };
}
