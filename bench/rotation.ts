/**
 * (b) One happy-path rotation through the synthesized state machine (local runner, real handlers,
 * moto with request signing on): the state transitions Step Functions bills, the Lambda
 * invocations and their durations, every AWS request the handlers sent (moto's recorder), and the
 * cost of it all at list prices (bench/prices.ts).
 */
import { walkStates } from '../cli/definition.ts';
import { readCdkContextConfig } from '../cli/local-env.ts';
import { outcomeOf, type TaskOverride } from '../cli/local-runner.ts';
import { STEP_NAMES, type StepName } from '../contract/functions.ts';
import { loadConfig } from '../infra/config.ts';
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

export async function rotationBench(world: RotationWorld): Promise<void> {
  progress('(b) one rotation: seeding two users (one to warm the handlers up, one to measure)');
  const [warmUser, user] = await world.seedUsers('cost-', 2);
  if (!warmUser || !user) throw new Error('seeding returned no users');
  // The first rotation in this process imports every handler module (a cold start); the one
  // measured runs warm, as most invocations of a deployed function do. Cold imports: see (c).
  const warm = await world.run(warmUser);
  if (outcomeOf(warm.output)?.status !== 'ROTATED')
    throw new Error(`warm-up rotation ended ${warm.status} ${warm.error ?? ''}`);

  const durations: Array<{ step: StepName; ms: number }> = [];
  const timed: TaskOverride = async (input, invoke, task) => {
    const started = performance.now();
    try {
      return await invoke(input);
    } finally {
      durations.push({ step: task.step, ms: performance.now() - started });
    }
  };
  const started = performance.now();
  const { result, calls } = await world.record(() =>
    world.run(user, { handlers: Object.fromEntries(STEP_NAMES.map((step) => [step, timed])) }),
  );
  const wallMs = performance.now() - started;
  const outcome = outcomeOf(result.output);
  if (result.status !== 'SUCCEEDED' || outcome?.status !== 'ROTATED')
    throw new Error(
      `the measured rotation did not rotate: ${result.status} ${outcome?.status ?? result.error ?? ''}`,
    );
  progress(`(b) rotated ${user}: ${result.tasks.length} Lambda invocations, ${calls.length} AWS requests`);

  const stateTypes = new Map<string, string>();
  walkStates(world.definition.definition, (name, state) => stateTypes.set(name, state.Type));
  const entered = result.events.flatMap((e) => (e.type === 'StateEntered' ? [e.state.name] : []));
  const byType = tally(entered.map((name) => stateTypes.get(name) ?? 'unknown'));

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
  const snsPublishes = ops('sns', ['Publish']);
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
      quantity: result.tasks.length,
      shown: count(result.tasks.length),
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
    { item: 'SNS publishes', quantity: snsPublishes, shown: count(snsPublishes), price: PRICES.snsPublish },
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
    `Wall time of the rotation: ${millis(wallMs)} (${millis(handlerMs)} of it in the handlers).`,
    `State transitions: ${entered.length} (${Object.entries(byType)
      .map(([t, n]) => `${t} ${n}`)
      .join(', ')}); outcome ${outcome.status}.`,
    `Lambda invocations: ${result.tasks.length} (${[...byStep].map(([step, s]) => `${step} ${s.invocations}`).join(', ')}).`,
    '',
    'AWS API calls made by the handlers, by service (moto request recorder):',
    ...table(
      ['service', 'calls', 'operations'],
      Object.entries(tally(calls.map((c) => c.service)))
        .sort(([, a], [, b]) => b - a)
        .map(([service, n]) => [SERVICE_NAMES[service] ?? service, count(n), operations(calls, service)]),
      [1],
    ),
    `total ${count(calls.length)}`,
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
    reproduce('rotation'),
  );
}

function tally(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

function operations(calls: readonly RecordedCall[], service: string): string {
  return Object.entries(tally(calls.filter((c) => c.service === service).map((c) => c.operation)))
    .map(([op, n]) => (n === 1 ? op : `${op} ×${n}`))
    .join(', ');
}
