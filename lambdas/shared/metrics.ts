/**
 * Emits rekey's metrics (contract/metrics.ts) as embedded metric format (EMF) log lines through
 * Powertools Metrics: CloudWatch Logs turns each line into data points, so emitting costs no API
 * call and no IAM action.
 *
 * The local runner and the demo run the same handlers on a laptop, where stdout may carry
 * `--json`: their environment sets POWERTOOLS_METRICS_DISABLED (cli/local-env.ts), which Powertools
 * reads when the instance is made. It is made at the first publication, inside a handler
 * invocation, so the environment a local run applies before it calls a handler is the one that counts.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import {
  METRIC,
  METRICS_NAMESPACE,
  METRICS_SERVICE,
  type MetricName,
  type RotationOutcome,
  STOP_REASON_VALUES,
} from '../../contract/metrics.ts';
import type { Outcome } from '../../contract/schemas.ts';

export { MetricUnit };

export interface MetricValue {
  name: MetricName;
  unit: (typeof MetricUnit)[keyof typeof MetricUnit];
  value: number;
}

/** Metrics that share their dimension sets: one EMF line. */
export interface MetricGroup {
  /** Each set makes one CloudWatch metric per value (with `service`); none: `service` alone. */
  dimensionSets: Array<Record<string, string>>;
  values: MetricValue[];
}

let instance: Metrics | undefined;

/** One EMF line per group. */
export function publishMetrics(groups: readonly MetricGroup[]): void {
  instance ??= new Metrics({ namespace: METRICS_NAMESPACE, serviceName: METRICS_SERVICE });
  for (const group of groups) {
    for (const set of group.dimensionSets) instance.addDimensions(set);
    for (const v of group.values) instance.addMetric(v.name, v.unit, v.value);
    instance.publishStoredMetrics();
  }
}

/** The Rotations count of one ended rotation; a STOPPED one is also counted by its reason. */
export function rotationOutcomeMetric(outcome: RotationOutcome, reason?: string): MetricGroup {
  const stopReason = reason && STOP_REASON_VALUES.includes(reason) ? reason : 'Other';
  return {
    dimensionSets: [
      { Outcome: outcome },
      ...(outcome === 'STOPPED' ? [{ Outcome: outcome, Reason: stopReason }] : []),
    ],
    values: [{ name: METRIC.rotations, unit: MetricUnit.Count, value: 1 }],
  };
}

const OUTCOME_OF_STATUS: Record<Exclude<Outcome['status'], 'DRY_RUN'>, RotationOutcome> = {
  ROTATED: 'COMPLETED',
  STOPPED: 'STOPPED',
  FAILED: 'FAILED',
  ROLLED_BACK: 'ROLLED_BACK',
};

/** The Rotations count of a terminal notification's outcome; none for a dry run (nothing rotated). */
export function outcomeMetrics(outcome: Outcome): MetricGroup[] {
  return outcome.status === 'DRY_RUN'
    ? []
    : [rotationOutcomeMetric(OUTCOME_OF_STATUS[outcome.status], outcome.reason)];
}
