/**
 * The CloudWatch dashboard of the stack: each widget and the exact metrics it draws, read from
 * the synthesized DashboardBody (its references to the stack's resources resolved to their
 * logical ids), and the alarm widget holding every alarm of the stack.
 */
import { describe, expect, it } from 'vitest';
import { auditIds } from './audit-helpers.ts';
import { logicalIds, onlyLogicalId, type Resources, synth } from './helpers.ts';

interface Widget {
  type: string;
  properties: {
    title: string;
    metrics?: unknown[][];
    alarms?: string[];
    stacked?: boolean;
    view?: string;
  };
}

/** A CloudFormation value with Ref / Fn::GetAtt / Fn::Join resolved to text (`<LogicalId>`). */
function text(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  if ('Ref' in v) return `<${String(v.Ref)}>`;
  if ('Fn::GetAtt' in v) return `<${(v['Fn::GetAtt'] as string[])[0]}>`;
  if ('Fn::Join' in v) {
    const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map(text).join(sep);
  }
  throw new Error(`unexpected value ${JSON.stringify(value)}`);
}

function widgets(resources: Resources): Widget[] {
  const id = onlyLogicalId(resources, 'AWS::CloudWatch::Dashboard');
  const props = resources[id]?.Properties as { DashboardBody: unknown; DashboardName: unknown };
  return (JSON.parse(text(props.DashboardBody)) as { widgets: Widget[] }).widgets;
}

const byTitle = (all: Widget[], title: string): Widget => {
  const found = all.find((w) => w.properties.title === title);
  if (!found) throw new Error(`no widget "${title}" among ${all.map((w) => w.properties.title).join(' | ')}`);
  return found;
};

/** A rekey metric as the dashboard body writes it: namespace, name, dimensions (by name), then options. */
const rekey = (name: string, dims: Record<string, string>, stat: string, label: string) => [
  'rekey',
  name,
  ...Object.entries({ ...dims, service: 'rekey' })
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .flat(),
  { label, period: 86400, stat },
];

const FINDING_TYPES = ['ROOT_ACCESS_KEY', 'OLD_KEY', 'UNUSED_KEY', 'TWO_ACTIVE_KEYS', 'EXPIRING_KEY'];
const OUTCOMES = ['COMPLETED', 'STOPPED', 'FAILED', 'ROLLED_BACK', 'ABORTED', 'TIMED_OUT'];

describe('the dashboard', () => {
  const { resources, stack } = synth();
  const all = widgets(resources);
  const audit = auditIds(stack).function;
  const machine = onlyLogicalId(resources, 'AWS::StepFunctions::StateMachine');

  it('is named after the stack and opens on the last 90 days', () => {
    const id = onlyLogicalId(resources, 'AWS::CloudWatch::Dashboard');
    const props = resources[id]?.Properties as { DashboardName: unknown; DashboardBody: unknown };
    expect(props.DashboardName).toBe('RekeyStack-fleet');
    expect(JSON.parse(text(props.DashboardBody))).toMatchObject({ start: '-P90D' });
  });

  it('draws the findings by type, one line per type, each day’s audit', () => {
    expect(byTitle(all, 'Findings by type (each day’s audit)').properties.metrics).toEqual(
      FINDING_TYPES.map((t) => rekey('Findings', { FindingType: t }, 'Maximum', t)),
    );
  });

  it('draws the keys over the maximum age with the users in scope, and the oldest key’s age', () => {
    expect(byTitle(all, 'Active keys over the maximum age, and users in scope').properties.metrics).toEqual([
      rekey('KeysOverMaxAge', {}, 'Maximum', 'keys over the maximum age'),
      [
        ...rekey('UsersInScope', {}, 'Maximum', 'users in scope').slice(0, -1),
        { label: 'users in scope', period: 86400, stat: 'Maximum', yAxis: 'right' },
      ],
    ]);
    expect(byTitle(all, 'Oldest active key’s age (days)').properties.metrics).toEqual([
      rekey('OldestActiveKeyAgeDays', {}, 'Maximum', 'oldest active key, days'),
    ]);
    expect(byTitle(all, 'Oldest active key (days) and users in scope, last audit')).toMatchObject({
      type: 'metric',
      properties: {
        metrics: [
          rekey('OldestActiveKeyAgeDays', {}, 'Maximum', 'oldest active key, days'),
          rekey('UsersInScope', {}, 'Maximum', 'users in scope'),
        ],
      },
    });
  });

  it('draws the rotations by outcome, and the safe stops by reason', () => {
    const outcomes = byTitle(all, 'Rotations by outcome (per day)').properties;
    expect(outcomes.metrics).toEqual(OUTCOMES.map((o) => rekey('Rotations', { Outcome: o }, 'Sum', o)));
    expect(outcomes).toMatchObject({ stacked: true, view: 'bar' });
    expect(byTitle(all, 'Rotations stopped safely, by reason (per day)').properties.metrics).toEqual([
      [
        {
          expression:
            'SEARCH(\'{rekey,Outcome,Reason,service} MetricName="Rotations" Outcome="STOPPED"\', \'Sum\', 86400)',
          // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudWatch's label syntax, not a template
          label: "${PROP('Dim.Reason')}",
          period: 86400,
        },
      ],
    ]);
  });

  it('draws the audit’s duration with its Lambda errors and runs, and the executions that did not succeed', () => {
    expect(byTitle(all, 'Audit duration and errors').properties.metrics).toEqual([
      rekey('AuditDuration', {}, 'Maximum', 'audit duration (ms)'),
      [
        'AWS/Lambda',
        'Errors',
        'FunctionName',
        `<${audit}>`,
        { label: 'audit Lambda errors', period: 86400, stat: 'Sum', yAxis: 'right' },
      ],
      [
        'AWS/Lambda',
        'Invocations',
        'FunctionName',
        `<${audit}>`,
        { label: 'audit runs', period: 86400, stat: 'Sum', yAxis: 'right' },
      ],
    ]);
    expect(byTitle(all, 'Rotation executions that did not succeed (per day)').properties.metrics).toEqual(
      [
        ['ExecutionsFailed', 'failed'],
        ['ExecutionsTimedOut', 'timed out'],
        ['ExecutionsAborted', 'aborted'],
      ].map(([name, label]) => [
        'AWS/States',
        name,
        'StateMachineArn',
        `<${machine}>`,
        { label, period: 86400, stat: 'Sum' },
      ]),
    );
  });

  it('shows the state of every alarm of the stack', () => {
    const alarms = byTitle(all, 'Alarms');
    expect(alarms.type).toBe('alarm');
    const ids = logicalIds(resources, 'AWS::CloudWatch::Alarm');
    expect(ids).toHaveLength(26);
    expect([...(alarms.properties.alarms ?? [])].sort()).toEqual(ids.map((id) => `<${id}>`).sort());
  });

  it('has exactly these widgets', () => {
    expect(all.map((w) => w.properties.title)).toEqual([
      'Findings by type (each day’s audit)',
      'Active keys over the maximum age, and users in scope',
      'Oldest active key (days) and users in scope, last audit',
      'Oldest active key’s age (days)',
      'Rotations by outcome (per day)',
      'Rotations stopped safely, by reason (per day)',
      'Audit duration and errors',
      'Rotation executions that did not succeed (per day)',
      'Alarms',
    ]);
  });
});
