/**
 * The audit's metrics (contract/metrics.ts), from one run: findings by type, the active
 * credentials over the maximum age, the oldest active credential's age, the users in scope and
 * the run's duration. Counts of the whole account, never per user: the digest and the events say who.
 */
import { METRIC } from '../../contract/metrics.ts';
import { type MetricGroup, MetricUnit } from '../shared/metrics.ts';
import type { ScanResult } from './audit.ts';
import { FINDING_TYPES, type FindingType, wholeDays } from './findings.ts';

export interface AuditMetricsInput {
  scan: Pick<ScanResult, 'findings' | 'users' | 'activeCreated' | 'auditedAt'>;
  policy: { userPathPrefix: string };
  durationMs: number;
}

export function auditMetrics(input: AuditMetricsInput): MetricGroup[] {
  return metricsOf(auditMetricValues(input));
}

export function auditMetricValues({ scan, policy, durationMs }: AuditMetricsInput): AuditMetricValues {
  const oldest = scan.activeCreated.reduce<Date | null>((a, d) => (a && a <= d ? a : d), null);
  return {
    findings: Object.fromEntries(
      FINDING_TYPES.map((t) => [t, scan.findings.filter((f) => f.type === t).length]),
    ) as Record<FindingType, number>,
    oldestActiveKeyAgeDays: oldest ? wholeDays(oldest, scan.auditedAt) : null,
    usersInScope: [...scan.users.values()].filter((u) => u.path.startsWith(policy.userPathPrefix)).length,
    durationMs,
  };
}

/** What the metrics say of one run: of one account, or summed over an organization's (lambdas/audit/organization.ts). */
export interface AuditMetricValues {
  findings: Record<FindingType, number>;
  /** null: no active credential. */
  oldestActiveKeyAgeDays: number | null;
  usersInScope: number;
  durationMs: number;
}

export function metricsOf(m: AuditMetricValues): MetricGroup[] {
  const count = (type: FindingType) => m.findings[type];
  const oldest = m.oldestActiveKeyAgeDays;
  const inScope = m.usersInScope;
  const durationMs = m.durationMs;
  return [
    {
      dimensionSets: [],
      values: [
        { name: METRIC.keysOverMaxAge, unit: MetricUnit.Count, value: count('OLD_KEY') },
        // No active credential, no age: a 0 would read as "all keys are new".
        ...(oldest !== null
          ? [
              {
                name: METRIC.oldestActiveKeyAgeDays,
                unit: MetricUnit.Count,
                value: oldest,
              },
            ]
          : []),
        { name: METRIC.usersInScope, unit: MetricUnit.Count, value: inScope },
        { name: METRIC.auditDuration, unit: MetricUnit.Milliseconds, value: durationMs },
      ],
    },
    // Zero counts too: a type that cleared draws a line at 0, not a gap.
    ...FINDING_TYPES.map((type) => ({
      dimensionSets: [{ FindingType: type }],
      values: [{ name: METRIC.findings, unit: MetricUnit.Count, value: count(type) }],
    })),
  ];
}
