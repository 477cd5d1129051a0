/**
 * rekey's CloudWatch metrics: the names the Lambdas emit (lambdas/shared/metrics.ts) and the
 * dashboard draws (infra/constructs/dashboard.ts). Namespace `rekey`; every metric carries the
 * `service` dimension (`rekey`, Powertools' default dimension) and at most the bounded dimensions
 * named here (a finding type, an outcome, a stop reason): never a user, a key or an account, whose
 * values are unbounded and each of which would be a metric of its own, billed monthly.
 */
import { SAFE_STOP_ERRORS } from './errors.ts';
import { STOP_REASONS } from './schemas.ts';

export const METRICS_NAMESPACE = 'rekey';
/** The value of the `service` dimension on every metric. */
export const METRICS_SERVICE = 'rekey';

export const METRIC = {
  /** Findings of an audit run, dimension FindingType (exempt ones included). */
  findings: 'Findings',
  /** Active credentials over the maximum age (the OLD_KEY findings). */
  keysOverMaxAge: 'KeysOverMaxAge',
  /** Age in whole days of the oldest active credential an audit run saw. */
  oldestActiveKeyAgeDays: 'OldestActiveKeyAgeDays',
  /** IAM users under the configured path prefix. */
  usersInScope: 'UsersInScope',
  /** How long an audit run took, scan to alerts, in milliseconds. */
  auditDuration: 'AuditDuration',
  /** Rotations that ended, dimension Outcome (a STOPPED one also under Outcome and Reason). */
  rotations: 'Rotations',
} as const;
export type MetricName = (typeof METRIC)[keyof typeof METRIC];

/** How a rotation ended, as the Outcome dimension says it. */
export const ROTATION_OUTCOMES = [
  'COMPLETED',
  'STOPPED',
  'FAILED',
  'ROLLED_BACK',
  'ABORTED',
  'TIMED_OUT',
] as const;
export type RotationOutcome = (typeof ROTATION_OUTCOMES)[number];

/** Every reason a rotation can stop safely for (the Reason dimension); anything else counts as `Other`. */
export const STOP_REASON_VALUES: readonly string[] = [
  ...new Set<string>([...STOP_REASONS, ...SAFE_STOP_ERRORS, 'Stopped', 'Other']),
];
