/**
 * CloudWatch alarms, by property: every one notifies the rekey topic; failed, timed-out and aborted
 * rotations, the errors and throttles of every Lambda, and an audit that stopped succeeding.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { describe, expect, it } from 'vitest';
import { Alarms } from '../../infra/constructs/alarms.ts';
import { auditIds } from './audit-helpers.ts';
import {
  functionIdsByStep,
  logicalIds,
  onlyLogicalId,
  type Resources,
  STEP_NAMES,
  synth,
} from './helpers.ts';

interface AlarmProps {
  Namespace?: string;
  MetricName?: string;
  Dimensions?: { Name: string; Value: unknown }[];
  Statistic?: string;
  Period?: number;
  Threshold: number;
  ComparisonOperator: string;
  EvaluationPeriods: number;
  DatapointsToAlarm?: number;
  TreatMissingData?: string;
  AlarmActions: unknown[];
  Metrics?: { Id: string; Expression?: string; ReturnData?: boolean; MetricStat?: unknown }[];
}

const alarmsOf = (resources: Resources) =>
  logicalIds(resources, 'AWS::CloudWatch::Alarm').map(
    (id) => resources[id]?.Properties as unknown as AlarmProps,
  );

/** The alarm on a metric of one resource (dimension value `{Ref: id}`), if there is one. */
function alarmOn(resources: Resources, namespace: string, metric: string, dimension: string, id: string) {
  return alarmsOf(resources).filter(
    (a) =>
      a.Namespace === namespace &&
      a.MetricName === metric &&
      JSON.stringify(a.Dimensions) === JSON.stringify([{ Name: dimension, Value: { Ref: id } }]),
  );
}

const FIRES_ON_ONE = {
  Statistic: 'Sum',
  Period: 300,
  Threshold: 1,
  ComparisonOperator: 'GreaterThanOrEqualToThreshold',
  EvaluationPeriods: 1,
  TreatMissingData: 'notBreaching',
};

describe('the rekey alarms', () => {
  const { resources } = synth();
  const topic = onlyLogicalId(resources, 'AWS::SNS::Topic');
  const machine = onlyLogicalId(resources, 'AWS::StepFunctions::StateMachine');

  it('every alarm notifies the rekey topic', () => {
    const alarms = alarmsOf(resources);
    expect(alarms.length).toBeGreaterThan(0);
    for (const alarm of alarms) expect(alarm.AlarmActions).toEqual([{ Ref: topic }]);
  });

  it.each(['ExecutionsFailed', 'ExecutionsTimedOut', 'ExecutionsAborted'])(
    'fires on the first %s of the rotation state machine',
    (metric) => {
      const alarms = alarmOn(resources, 'AWS/States', metric, 'StateMachineArn', machine);
      expect(alarms).toHaveLength(1);
      expect(alarms[0]).toMatchObject(FIRES_ON_ONE);
    },
  );

  it.each(STEP_NAMES)('fires on the first error and the first throttle of %s', (step) => {
    const fn = functionIdsByStep(resources).get(step) ?? '';
    for (const metric of ['Errors', 'Throttles']) {
      const alarms = alarmOn(resources, 'AWS/Lambda', metric, 'FunctionName', fn);
      expect(alarms, metric).toHaveLength(1);
      expect(alarms[0], metric).toMatchObject(FIRES_ON_ONE);
    }
  });

  it('watches the deployed audit: no successful run in 26 hours alarms', () => {
    const { stack } = synth();
    const audit = auditIds(stack).function;
    const stale = alarmsOf(resources).filter((a) => a.Metrics !== undefined);
    expect(stale).toHaveLength(1);
    expect(stale[0]).toMatchObject({
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 1,
      EvaluationPeriods: 26,
      DatapointsToAlarm: 26,
      TreatMissingData: 'breaching',
      AlarmActions: [{ Ref: topic }],
    });
    const watched = (stale[0]?.Metrics ?? []).flatMap((m) =>
      m.MetricStat ? [(m.MetricStat as { Metric: { Dimensions: unknown } }).Metric.Dimensions] : [],
    );
    expect(watched).toEqual([
      [{ Name: 'FunctionName', Value: { Ref: audit } }],
      [{ Name: 'FunctionName', Value: { Ref: audit } }],
    ]);
  });

  it('covers every Lambda function of the stack', () => {
    for (const fn of logicalIds(resources, 'AWS::Lambda::Function')) {
      expect(alarmOn(resources, 'AWS/Lambda', 'Errors', 'FunctionName', fn), fn).toHaveLength(1);
      expect(alarmOn(resources, 'AWS/Lambda', 'Throttles', 'FunctionName', fn), fn).toHaveLength(1);
    }
  });
});

describe('the audit alarm', () => {
  /** The Alarms construct alone, watching a stand-in audit function. */
  function alarmsWithAudit(staleAfter?: Duration) {
    const stack = new Stack(new App(), 'AlarmsTest');
    const audit = new lambda.Function(stack, 'Audit', {
      runtime: lambda.Runtime.NODEJS_24_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline('export const handler = async () => ({})'),
    });
    const machine = new sfn.StateMachine(stack, 'Machine', {
      definitionBody: sfn.DefinitionBody.fromChainable(new sfn.Pass(stack, 'Pass')),
    });
    new Alarms(stack, 'Alarms', {
      topic: new sns.Topic(stack, 'Topic'),
      stateMachine: machine,
      functions: {},
      auditFunction: audit,
      ...(staleAfter ? { auditStaleAfter: staleAfter } : {}),
    });
    const resources = Template.fromStack(stack).toJSON().Resources as Resources;
    return { resources, audit: onlyLogicalId(resources, 'AWS::Lambda::Function') };
  }

  it('fires when no hour of the last 26 had a successful run, a missing hour counting as none', () => {
    // Act
    const { resources, audit } = alarmsWithAudit();

    // Assess
    const alarm = alarmsOf(resources).find((a) => a.Metrics !== undefined);
    expect(alarm).toMatchObject({
      Threshold: 1,
      ComparisonOperator: 'LessThanThreshold',
      EvaluationPeriods: 26,
      DatapointsToAlarm: 26,
      TreatMissingData: 'breaching',
    });
    const metrics = alarm?.Metrics ?? [];
    const expression = metrics.find((m) => m.Expression);
    expect(expression).toMatchObject({
      Expression: 'FILL(invocations, 0) - FILL(errors, 0)',
      ReturnData: true,
    });
    const stat = (id: string) => metrics.find((m) => m.Id === id)?.MetricStat;
    for (const [id, name] of [
      ['invocations', 'Invocations'],
      ['errors', 'Errors'],
    ] as const) {
      expect(stat(id), id).toEqual({
        Metric: {
          Namespace: 'AWS/Lambda',
          MetricName: name,
          Dimensions: [{ Name: 'FunctionName', Value: { Ref: audit } }],
        },
        Period: 3600,
        Stat: 'Sum',
      });
    }
  });

  it('takes its window from auditStaleAfter', () => {
    const { resources } = alarmsWithAudit(Duration.hours(50));
    const alarm = alarmsOf(resources).find((a) => a.Metrics !== undefined);
    expect(alarm).toMatchObject({ EvaluationPeriods: 50, DatapointsToAlarm: 50 });
  });
});
