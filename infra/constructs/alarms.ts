import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { DEFAULT_RUNBOOK_URL } from '../config.ts';

/** Failures are counted over 5 minutes: one is enough to alarm (rekey runs rarely, each run matters). */
const PERIOD = Duration.minutes(5);

/** How the audit's success is bucketed: one datapoint per hour. */
const AUDIT_BUCKET = Duration.hours(1);

export interface AlarmsProps {
  /**
   * Where every alarm goes.
   * @default - required
   */
  readonly topic: sns.ITopic;
  /**
   * The rotation state machine: failed, timed-out and aborted executions alarm.
   * @default - required
   */
  readonly stateMachine: sfn.IStateMachine;
  /**
   * The Lambdas whose errors and throttles alarm, by a readable name used in the alarm's name.
   * @default - required
   */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  /**
   * The scheduled audit's function: an alarm fires when it has not succeeded for `auditStaleAfter`.
   * @default - no audit alarm
   */
  readonly auditFunction?: lambda.IFunction;
  /**
   * How long the audit may go without a successful run (a daily audit plus 2 hours of slack).
   * A whole number of hours.
   * @default Duration.hours(26)
   */
  readonly auditStaleAfter?: Duration;
  /**
   * The runbook every alarm's description links to: `<runbookBaseUrl>#<section>`, the section
   * named like the alarm without its stack prefix (`rotation-failed`, `plan-errors`, ...).
   * @default 'docs/operations.md' (the runbook's path in the repository)
   */
  readonly runbookBaseUrl?: string;
}

/**
 * CloudWatch alarms on everything that means a rotation or an audit did not do its job, each
 * notifying the rekey topic: failed, timed-out and aborted rotations; errors and throttles of
 * every Lambda; an audit that has not succeeded for 26 hours.
 */
export class Alarms extends Construct {
  readonly alarms: cloudwatch.Alarm[] = [];
  private readonly action: actions.SnsAction;
  private readonly prefix: string;
  private readonly runbook: string;

  constructor(scope: Construct, id: string, props: AlarmsProps) {
    super(scope, id);
    this.action = new actions.SnsAction(props.topic);
    this.prefix = Stack.of(this).stackName;
    this.runbook = props.runbookBaseUrl ?? DEFAULT_RUNBOOK_URL;

    const machine = props.stateMachine;
    this.atLeastOne(
      'rotation-failed',
      machine.metricFailed({ period: PERIOD }),
      'A rotation execution failed',
    );
    this.atLeastOne('rotation-timed-out', machine.metricTimedOut({ period: PERIOD }), 'A rotation timed out');
    this.atLeastOne('rotation-aborted', machine.metricAborted({ period: PERIOD }), 'A rotation was aborted');

    for (const [name, fn] of Object.entries(props.functions)) {
      this.atLeastOne(`${name}-errors`, fn.metricErrors({ period: PERIOD }), `The ${name} Lambda failed`);
      this.atLeastOne(
        `${name}-throttles`,
        fn.metricThrottles({ period: PERIOD }),
        `The ${name} Lambda was throttled`,
      );
    }

    if (props.auditFunction)
      this.auditStale(props.auditFunction, props.auditStaleAfter ?? Duration.hours(26));
  }

  /** Alarm when the metric's 5-minute sum reaches 1; no data means nothing happened, which is fine. */
  private atLeastOne(name: string, metric: cloudwatch.IMetric, description: string): void {
    this.add(name, {
      metric,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: `${description}. See the execution history and the function's log group.`,
    });
  }

  /**
   * Successful runs per hour = invocations - errors (a timed-out or crashed run counts as an
   * error). The alarm fires when none of the last N hours had one, N = auditStaleAfter in
   * hours: every datapoint of the window must breach. An hour without any invocation has no
   * data and counts as breaching: a schedule that stopped firing alarms too. Right after a
   * deployment it fires until the first audit succeeds (there was none yet).
   */
  private auditStale(fn: lambda.IFunction, staleAfter: Duration): void {
    const hours = staleAfter.toHours();
    const successes = new cloudwatch.MathExpression({
      expression: 'FILL(invocations, 0) - FILL(errors, 0)',
      usingMetrics: {
        invocations: fn.metricInvocations({ period: AUDIT_BUCKET, statistic: cloudwatch.Stats.SUM }),
        errors: fn.metricErrors({ period: AUDIT_BUCKET, statistic: cloudwatch.Stats.SUM }),
      },
      period: AUDIT_BUCKET,
      label: 'successful audit runs',
    });
    this.add('audit-not-succeeding', {
      metric: successes,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: hours,
      datapointsToAlarm: hours,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      alarmDescription:
        `The audit has not succeeded for more than ${hours} hours: check its schedule, its ` +
        "dead-letter queue and the audit function's log group.",
    });
  }

  /** Every alarm says what to do next: its description ends with the link to its runbook section. */
  private add(name: string, props: cloudwatch.AlarmProps): void {
    const alarm = new cloudwatch.Alarm(this, name, {
      ...props,
      alarmName: `${this.prefix}-${name}`,
      alarmDescription: `${props.alarmDescription} Runbook: ${this.runbook}#${name}`,
    });
    alarm.addAlarmAction(this.action);
    this.alarms.push(alarm);
  }
}
