/**
 * The audit's metrics (contract/metrics.ts), from one run: findings by type, the active
 * credentials over the maximum age, the oldest active credential's age, the users in scope and
 * the run's duration. Counts of the whole account, never per user: the digest and the events say who.
 */
import { METRIC } from '../../contract/metrics.ts';
import { type MetricGroup, MetricUnit } from '../shared/metrics.ts';
import type { ScanResult } from './audit.ts';
import { FINDING_TYPES, wholeDays } from './findings.ts';

export interface AuditMetricsInput {
  scan: Pick<ScanResult, 'findings' | 'users' | 'activeCreated' | 'auditedAt'>;
  policy: { userPathPrefix: string };
  durationMs: number;
}

export function auditMetrics({ scan, policy, durationMs }: AuditMetricsInput): MetricGroup[] {
  const count = (type: string) => scan.findings.filter((f) => f.type === type).length;
  const oldest = scan.activeCreated.reduce<Date | null>((a, d) => (a && a <= d ? a : d), null);
  const inScope = [...scan.users.values()].filter((u) => u.path.startsWith(policy.userPathPrefix)).length;
  return [
    {
      dimensionSets: [],
      values: [
        { name: METRIC.keysOverMaxAge, unit: MetricUnit.Count, value: count('OLD_KEY') },
        // No active credential, no age: a 0 would read as "all keys are new".
        ...(oldest
          ? [
              {
                name: METRIC.oldestActiveKeyAgeDays,
                unit: MetricUnit.Count,
                value: wholeDays(oldest, scan.auditedAt),
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
