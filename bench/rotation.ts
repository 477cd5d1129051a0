/**
 * (b) One happy-path rotation through the synthesized state machine (local runner, real handlers,
 * moto with request signing on): the state transitions Step Functions bills, the Lambda
 * invocations and their durations, every AWS request the handlers sent (moto's recorder), by
 * service and by state, and the cost of it all at list prices (bench/prices.ts); side by side
 * with the same rotation of a baseline git ref, run from a temporary worktree (its state machine,
 * handlers and roles) in a child process.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../cli/definition.ts';
import { readCdkContextConfig } from '../cli/local-env.ts';
import { STEP_NAMES, type StepName } from '../contract/functions.ts';
import { loadConfig } from '../infra/config.ts';
import { withBaseline } from './bundles.ts';
import {
  costOf,
  DAYS_PER_MONTH,
  PRICES,
  PRICES_READ,
  PRICES_REGION,
  type Price,
  priceText,
} from './prices.ts';
import { count, heading, listPrice, millis, print, progress, reproduce, table, usd } from './report.ts';
import { type MeasuredState, measureRotation, type RotationMeasure } from './rotation-measure.ts';
import type { RecordedCall, RotationWorld } from './rotation-world.ts';
import { deployedFunctions, resourceCount } from './template.ts';

/** AWS's names for the signing names moto's recorder shows. */
const SERVICE_NAMES: Record<string, string> = {
  iam: 'IAM',
  sts: 'STS',
  secretsmanager: 'Secrets Manager',
  dynamodb: 'DynamoDB',
  sns: 'SNS',
  events: 'EventBridge',
  kms: 'KMS',
  cloudtrail: 'CloudTrail',
  states: 'Step Functions',
};

const DYNAMODB_WRITES = ['PutItem', 'UpdateItem', 'DeleteItem'];
const DYNAMODB_READS = ['GetItem', 'Query', 'Scan'];
/** Each new secret value makes Secrets Manager ask KMS for a data key (GenerateDataKey)... */
const SECRET_VALUE_WRITES = ['PutSecretValue'];
/** ...and each read of a value makes it decrypt that data key (Decrypt). */
const SECRET_VALUE_READS = ['GetSecretValue'];

/**
 * The commit before the workflow half of issue 13 (main when it started): the rotation it ran
 * (16 transitions, 11 invocations, 42 AWS calls) is the baseline the figures are compared with.
 */
export const ROTATION_BASELINE = '064e986';

export interface RotationBenchOptions {
  /** The git ref whose rotation the current one is compared with. */
  baseline: string;
}

/** The baseline's rotation, measured by bench/rotation-measure.ts in its own worktree and process. */
async function measureBaseline(ref: string): Promise<{ commit: string; measure: RotationMeasure }> {
  return withBaseline(ref, async (baseline) => {
    progress(`(b) measuring the baseline ${ref} (${baseline.commit.slice(0, 10)}) in a child process`);
    const json = execFileSync(
      process.execPath,
      ['--import', 'tsx', join(REPO_ROOT, 'bench', 'rotation-measure.ts'), '--root', baseline.dir],
      { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 * 1024 * 1024 },
    );
    return { commit: baseline.commit, measure: JSON.parse(json) as RotationMeasure };
  });
}

export async function rotationBench(world: RotationWorld, options: RotationBenchOptions): Promise<void> {
  progress('(b) one rotation: seeding two users (one to warm the handlers up, one to measure)');
  const now = await measureRotation(world, STEP_NAMES);
  const { calls, wallMs } = now;
  const entered = now.states;
  progress(`(b) rotated: ${now.tasks.length} Lambda invocations, ${calls.length} AWS requests`);
  const base = await measureBaseline(options.baseline);
  const byType = tally(entered.map((s) => s.type));
  const durations = now.tasks.map((t) => ({ step: t.step as StepName, ms: t.ms }));

  const kmsKeys = resourceCount('AWS::KMS::Key');
  const memory = new Map(deployedFunctions().flatMap((f) => (f.step ? [[f.step, f.memoryMb] as const] : [])));
  const byStep = new Map<StepName, { invocations: number; ms: number; gbSeconds: number }>();
  for (const d of durations) {
    const memoryMb = memory.get(d.step);
    if (memoryMb === undefined) throw new Error(`no function for step ${d.step} in the template`);
    const s = byStep.get(d.step) ?? { invocations: 0, ms: 0, gbSeconds: 0 };
    s.invocations += 1;
    s.ms += d.ms;
    s.gbSeconds += (memoryMb / 1024) * (Math.ceil(d.ms) / 1000);
    byStep.set(d.step, s);
  }
  const gbSeconds = [...byStep.values()].reduce((sum, s) => sum + s.gbSeconds, 0);
  const handlerMs = durations.reduce((sum, d) => sum + d.ms, 0);

  const ops = (service: string, names?: string[]) =>
    calls.filter((c) => c.service === service && (!names || names.includes(c.operation))).length;
  const events = calls.filter((c) => c.service === 'events').reduce((sum, c) => sum + (c.entries ?? 0), 0);
  // A PublishBatch request is billed like a Publish of the same size (each 64 KB is one request).
  const snsPublishes = ops('sns', ['Publish', 'PublishBatch']);
  const kmsImplied =
    ops('secretsmanager', SECRET_VALUE_WRITES) + ops('secretsmanager', SECRET_VALUE_READS) + snsPublishes;

  const config = loadConfig(readCdkContextConfig());
  // A key is due once it is older than maxKeyAgeDays; the daily audit starts its rotation then.
  const intervalDays = config.maxKeyAgeDays + 1;
  const storagePerRotation = costOf(PRICES.secretMonth, intervalDays / DAYS_PER_MONTH);

  const lines: Array<{ item: string; quantity: number; shown: string; price: Price | null }> = [
    {
      item: 'Step Functions state transitions',
      quantity: entered.length,
      shown: count(entered.length),
      price: PRICES.stepFunctionsTransition,
    },
    {
      item: 'Lambda requests',
      quantity: now.tasks.length,
      shown: count(now.tasks.length),
      price: PRICES.lambdaRequest,
    },
    {
      item: 'Lambda duration (local, see below)',
      quantity: gbSeconds,
      shown: `${gbSeconds.toFixed(3)} GB-s`,
      price: PRICES.lambdaArmGbSecond,
    },
    {
      item: 'Secrets Manager API calls',
      quantity: ops('secretsmanager'),
      shown: count(ops('secretsmanager')),
      price: PRICES.secretsManagerApiCall,
    },
    {
      item: 'KMS requests (implied, at most)',
      quantity: kmsImplied,
      shown: count(kmsImplied),
      price: PRICES.kmsRequest,
    },
    {
      item: 'SNS publish requests',
      quantity: snsPublishes,
      shown: count(snsPublishes),
      price: PRICES.snsPublish,
    },
    {
      item: 'EventBridge custom events',
      quantity: events,
      shown: count(events),
      price: PRICES.eventBridgeCustomEvent,
    },
    {
      item: 'DynamoDB writes (lock table)',
      quantity: ops('dynamodb', DYNAMODB_WRITES),
      shown: count(ops('dynamodb', DYNAMODB_WRITES)),
      price: PRICES.dynamoDbWriteUnit,
    },
    {
      item: 'DynamoDB strongly consistent reads',
      quantity: ops('dynamodb', DYNAMODB_READS),
      shown: count(ops('dynamodb', DYNAMODB_READS)),
      price: PRICES.dynamoDbReadUnit,
    },
    {
      item: 'IAM and STS API calls',
      quantity: ops('iam') + ops('sts'),
      shown: count(ops('iam') + ops('sts')),
      price: null,
    },
  ];
  const perRotation = lines.reduce((sum, l) => sum + (l.price ? costOf(l.price, l.quantity) : 0), 0);

  print(
    ...heading('(b) One happy-path rotation: transitions, invocations, AWS calls, cost at list prices'),
    `The synthesized state machine run by the local runner (every Wait instant), real handlers, moto with request`,
    `signing on; a warm-up rotation of another user ran first. The user's first rotation (its secret is created).`,
    '',
    `Wall time of the rotation: ${millis(wallMs)} (${millis(handlerMs)} of it in the handlers; the recorder reads around each Task included).`,
    `State transitions: ${entered.length} (${Object.entries(byType)
      .map(([t, n]) => `${t} ${n}`)
      .join(', ')}); outcome ${now.outcome}.`,
    `Lambda invocations: ${now.tasks.length} (${[...byStep].map(([step, s]) => `${step} ${s.invocations}`).join(', ')}).`,
    '',
    `Against the baseline ${options.baseline} (${base.commit.slice(0, 10)}): the same rotation run from a temporary git worktree`,
    '(removed afterwards) in a child process, with its own state machine, handlers and roles. Difference: now - baseline.',
    ...table(
      ['', 'baseline', 'now', 'difference'],
      [
        row('State transitions', base.measure.states.length, entered.length),
        row('Lambda invocations', base.measure.tasks.length, now.tasks.length),
        row('AWS calls', base.measure.calls.length, calls.length),
      ],
      [1, 2, 3],
    ),
    '',
    'AWS API calls made by the handlers, by service (moto request recorder):',
    ...table(
      ['service', 'baseline', 'now', 'difference', 'operations now'],
      [...new Set([...calls, ...base.measure.calls].map((c) => c.service))]
        .map((service) => ({
          service,
          before: base.measure.calls.filter((c) => c.service === service).length,
          after: calls.filter((c) => c.service === service).length,
        }))
        .sort((a, b) => b.after - a.after || b.before - a.before)
        .map(({ service, before, after }) => [
          ...row(SERVICE_NAMES[service] ?? service, before, after),
          operations(calls, service),
        ]),
      [1, 2, 3],
    ),
    '',
    'By state, in the order entered (a state the other run does not have shows "-"):',
    ...table(
      ['state', 'baseline', 'now', 'difference', 'calls now'],
      byState(base.measure.states, entered),
      [1, 2, 3],
    ),
    '',
    'The baseline state by state, with its calls:',
    ...table(
      ['state (baseline)', 'calls', 'operations'],
      base.measure.states.map((st) => [
        st.name,
        st.type === 'Task' ? count(st.calls.length) : st.type,
        operationList(st.calls),
      ]),
      [1],
    ),
    '',
    `Cost per rotation at ${PRICES_REGION} list prices (read ${PRICES_READ}; bench/prices.ts cites each page):`,
    ...table(
      ['item', 'quantity', 'unit price', 'cost'],
      lines.map((l) => [
        l.item,
        l.shown,
        l.price ? priceText(l.price) : 'no charge',
        l.price ? usd(costOf(l.price, l.quantity)) : '$0',
      ]),
      [1, 3],
    ),
    '',
    ...table(
      ['', 'per rotation', 'per 1,000 rotations'],
      [
        ['Requests, transitions, compute', usd(perRotation), usd(perRotation * 1000)],
        [
          `Secret storage, ${intervalDays} days between rotations`,
          usd(storagePerRotation),
          usd(storagePerRotation * 1000),
        ],
        ['Total', usd(perRotation + storagePerRotation), usd((perRotation + storagePerRotation) * 1000)],
      ],
      [1, 2],
    ),
    '',
    `Secret storage is ${priceText(PRICES.secretMonth)} for as long as the user's secret exists: ` +
      `${listPrice(PRICES.secretMonth.usd)} a month per rotated user, ${listPrice(PRICES.secretMonth.usd * 12)} a year; pro-rated above over the ` +
      `${intervalDays} days between rotations (maxKeyAgeDays ${config.maxKeyAgeDays}: a key is rotated when it turns ${intervalDays} days old).`,
    `Lambda duration is an estimate from local handler durations (${millis(handlerMs)} in all, this machine, against moto), ` +
      `each billed at its function's memory in the template (${[...new Set(memory.values())].join('/')} MB, ${deployedFunctions()[0]?.architecture ?? 'arm64'}), ` +
      'rounded up to the millisecond. In AWS the calls take network time instead; cold starts add init time.',
    'KMS: Secrets Manager asks KMS for a data key per secret value written and decrypts one per value read; the SNS topic is',
    'encrypted with a customer-managed key too (SNS may reuse data keys, hence "at most"). Not included: free tiers,',
    "CloudWatch Logs ingestion and X-Ray traces of the handlers' logs and traces, email deliveries ($2.00 per 100,000 per",
    `subscriber), the audit that starts rotations (see (a)) and what the stack costs whether or not it rotates: its ` +
      `${kmsKeys} KMS keys at ${priceText(PRICES.kmsKeyMonth)} (${listPrice(kmsKeys * PRICES.kmsKeyMonth.usd)} a month).`,
    reproduce(`rotation${options.baseline === ROTATION_BASELINE ? '' : ` --baseline ${options.baseline}`}`),
  );
}

/** A figure of the baseline and of now, and their difference. */
function row(label: string, before: number, after: number): string[] {
  const difference = after - before;
  return [label, count(before), count(after), difference > 0 ? `+${count(difference)}` : count(difference)];
}

/** `GetUser, ListAccessKeys ×2`: the operations of some calls, in the order first sent. */
function operationList(calls: readonly RecordedCall[]): string {
  return Object.entries(tally(calls.map((c) => c.operation)))
    .map(([op, n]) => (n === 1 ? op : `${op} ×${n}`))
    .join(', ');
}

/**
 * The states of both runs, now's in the order entered and then the baseline's that now lacks, each
 * with its call count in either (a Choice, Wait, Pass or Succeed: its type).
 */
function byState(before: readonly MeasuredState[], after: readonly MeasuredState[]): string[][] {
  const cell = (state: MeasuredState | undefined) =>
    state ? (state.type === 'Task' ? count(state.calls.length) : state.type) : '-';
  const names = [...new Set([...after.map((s) => s.name), ...before.map((s) => s.name)])];
  return names.map((name) => {
    const b = before.find((s) => s.name === name);
    const a = after.find((s) => s.name === name);
    const difference = (a?.calls.length ?? 0) - (b?.calls.length ?? 0);
    return [
      name,
      cell(b),
      cell(a),
      difference > 0 ? `+${count(difference)}` : count(difference),
      a ? operationList(a.calls) : '',
    ];
  });
}

function tally(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

function operations(calls: readonly RecordedCall[], service: string): string {
  return operationList(calls.filter((c) => c.service === service));
}
