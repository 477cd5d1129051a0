import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { FINDING_TYPES } from '../../contract/findings.ts';
import { METRIC, METRICS_NAMESPACE, METRICS_SERVICE, ROTATION_OUTCOMES } from '../../contract/metrics.ts';

/** The audit runs daily: one datapoint per day is one audit run. */
const DAY = Duration.days(1);

export interface DashboardProps {
  /**
   * The audit's function: its duration metric sits next to its Lambda errors.
   * @default - required
   */
  readonly auditFunction: lambda.IFunction;
  /**
   * The rotation state machine: its failed, timed-out and aborted executions beside the outcomes.
   * @default - required
   */
  readonly stateMachine: sfn.IStateMachine;
  /**
   * The alarms whose states the dashboard shows.
   * @default - required
   */
  readonly alarms: readonly cloudwatch.IAlarm[];
  /**
   * How far back the graphs look when the dashboard opens.
   * @default Duration.days(90)
   */
  readonly range?: Duration;
}

/** A metric of rekey's namespace (contract/metrics.ts), with the `service` dimension every one carries. */
function rekeyMetric(
  metricName: string,
  statistic: string,
  label: string,
  dimensions: Record<string, string> = {},
): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName,
    dimensionsMap: { service: METRICS_SERVICE, ...dimensions },
    statistic,
    period: DAY,
    label,
  });
}

/**
 * The fleet at a glance: what the audit finds (findings by type, keys over the maximum age, the
 * oldest key's age, the users in scope), how rotations end (by outcome, and the safe stops by
 * reason), how long the audit takes and whether it fails, and the state of every alarm.
 * The audit's counts are per run: the graphs show each day's largest value (a rerun the same day
 * does not add up).
 */
export class Dashboard extends Construct {
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: DashboardProps) {
    super(scope, id);
    const width = 12;
    const height = 6;
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `${Stack.of(this).stackName}-fleet`,
      defaultInterval: props.range ?? Duration.days(90),
    });

    const findings = new cloudwatch.GraphWidget({
      title: 'Findings by type (each day’s audit)',
      width,
      height,
      left: FINDING_TYPES.map((type) => rekeyMetric(METRIC.findings, 'Maximum', type, { FindingType: type })),
      leftYAxis: { min: 0, showUnits: false },
    });
    const overAge = new cloudwatch.GraphWidget({
      title: 'Active keys over the maximum age, and users in scope',
      width,
      height,
      left: [rekeyMetric(METRIC.keysOverMaxAge, 'Maximum', 'keys over the maximum age')],
      right: [rekeyMetric(METRIC.usersInScope, 'Maximum', 'users in scope')],
      leftYAxis: { min: 0, showUnits: false },
      rightYAxis: { min: 0, showUnits: false },
    });
    const oldest = new cloudwatch.SingleValueWidget({
      title: 'Oldest active key (days) and users in scope, last audit',
      width,
      height,
      metrics: [
        rekeyMetric(METRIC.oldestActiveKeyAgeDays, 'Maximum', 'oldest active key, days'),
        rekeyMetric(METRIC.usersInScope, 'Maximum', 'users in scope'),
      ],
      sparkline: true,
    });
    const oldestOverTime = new cloudwatch.GraphWidget({
      title: 'Oldest active key’s age (days)',
      width,
      height,
      left: [rekeyMetric(METRIC.oldestActiveKeyAgeDays, 'Maximum', 'oldest active key, days')],
      leftYAxis: { min: 0, showUnits: false },
    });
    const outcomes = new cloudwatch.GraphWidget({
      title: 'Rotations by outcome (per day)',
      width,
      height,
      stacked: true,
      view: cloudwatch.GraphWidgetView.BAR,
      left: ROTATION_OUTCOMES.map((outcome) =>
        rekeyMetric(METRIC.rotations, 'Sum', outcome, { Outcome: outcome }),
      ),
      leftYAxis: { min: 0, showUnits: false },
    });
    const stops = new cloudwatch.GraphWidget({
      title: 'Rotations stopped safely, by reason (per day)',
      width,
      height,
      stacked: true,
      view: cloudwatch.GraphWidgetView.BAR,
      // One line per reason that occurred: the reasons are a fixed set (STOP_REASON_VALUES).
      left: [
        new cloudwatch.MathExpression({
          expression: `SEARCH('{${METRICS_NAMESPACE},Outcome,Reason,service} MetricName="${METRIC.rotations}" Outcome="STOPPED"', 'Sum', ${DAY.toSeconds()})`,
          // CloudWatch's dynamic label: each line is named by its reason.
          // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudWatch's label syntax, not a template
          label: "${PROP('Dim.Reason')}",
          period: DAY,
        }),
      ],
      leftYAxis: { min: 0, showUnits: false },
    });
    const audit = new cloudwatch.GraphWidget({
      title: 'Audit duration and errors',
      width,
      height,
      left: [rekeyMetric(METRIC.auditDuration, 'Maximum', 'audit duration (ms)')],
      right: [
        props.auditFunction.metricErrors({ period: DAY, statistic: 'Sum', label: 'audit Lambda errors' }),
        props.auditFunction.metricInvocations({ period: DAY, statistic: 'Sum', label: 'audit runs' }),
      ],
      leftYAxis: { min: 0 },
      rightYAxis: { min: 0, showUnits: false },
    });
    const executions = new cloudwatch.GraphWidget({
      title: 'Rotation executions that did not succeed (per day)',
      width,
      height,
      stacked: true,
      view: cloudwatch.GraphWidgetView.BAR,
      left: [
        props.stateMachine.metricFailed({ period: DAY, statistic: 'Sum', label: 'failed' }),
        props.stateMachine.metricTimedOut({ period: DAY, statistic: 'Sum', label: 'timed out' }),
        props.stateMachine.metricAborted({ period: DAY, statistic: 'Sum', label: 'aborted' }),
      ],
      leftYAxis: { min: 0, showUnits: false },
    });
    const alarms = new cloudwatch.AlarmStatusWidget({
      title: 'Alarms',
      width: 24,
      height: 8,
      alarms: [...props.alarms],
      sortBy: cloudwatch.AlarmStatusWidgetSortBy.STATE_UPDATED_TIMESTAMP,
    });

    this.dashboard.addWidgets(findings, overAge);
    this.dashboard.addWidgets(oldest, oldestOverTime);
    this.dashboard.addWidgets(outcomes, stops);
    this.dashboard.addWidgets(audit, executions);
    this.dashboard.addWidgets(alarms);
  }
}
