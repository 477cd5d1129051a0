/**
 * (a) The audit at 1,000 / 5,000 / 10,000 users, 30% of them with findings: rekey's
 * credential-report scan (the scan of `rekey audit` and the audit Lambda), a cold run then a warm
 * one at each size, against one seeded emulator that answers GetAccountAuthorizationDetails in
 * real IAM's pages of 1,000 users (support/audit-world.ts pageAuthorizationDetails). Each run has
 * a fresh IAM client whose requests are counted as they leave it. With --per-user, the per-user
 * scan of other tools runs too, for comparison (slow on the emulator: minutes at 10,000 users).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GenerateCredentialReportCommand, IAMClient } from '@aws-sdk/client-iam';
import { scanAccount } from '../lambdas/audit/audit.ts';
import { CallCounter } from '../lambdas/audit/calls.ts';
import { DEFAULT_THRESHOLDS } from '../lambdas/audit/findings.ts';
import { DynamoKeyIdCache } from '../lambdas/audit/key-id-cache.ts';
import { KEY_LOOKUP_CONCURRENCY } from '../lambdas/audit/users.ts';
import { systemClock } from '../lambdas/shared/clock.ts';
import {
  type AuditWorld,
  countRequests,
  createKeyIdCacheTable,
  pageAuthorizationDetails,
  SCALE_FINDING_USERS,
  startAuditWorld,
} from '../support/audit-world.ts';
import { awsClient } from '../support/aws.ts';
import { perUserScan } from './per-user-scan.ts';
import { count, heading, print, progress, ratio, reproduce, seconds, table } from './report.ts';

export interface AuditBenchOptions {
  sizes: number[];
  /** Share of the users with findings, in percent (an old key never used: OLD_KEY and UNUSED_KEY). */
  findingPercent: number;
  /** Also run the per-user scan of other tools at each size. */
  perUser: boolean;
  /** Users the per-user scan works on at once. */
  concurrency: number;
}

export const AUDIT_DEFAULTS: AuditBenchOptions = {
  sizes: [1000, 5000, 10_000],
  findingPercent: 30,
  perUser: false,
  concurrency: KEY_LOOKUP_CONCURRENCY,
};

/** 10 old keys used yesterday and 10 keys unused for 60 days, at every size. */
const FIXED_FINDING_USERS = SCALE_FINDING_USERS;
/** The other users with findings: one key created this many days ago, never used. */
const OLD_KEY_DAYS = 100;

interface Run {
  calls: number;
  ms: number;
  byOperation: Record<string, number>;
}

interface SizeResult {
  users: number;
  findingUsers: number;
  cold: Run;
  warm: Run;
  perUser?: Omit<Run, 'byOperation'>;
}

const THRESHOLDS = DEFAULT_THRESHOLDS;

interface Expected {
  users: number;
  old: number;
  unused: number;
}

async function runRekey(world: AuditWorld, expected: Expected, cacheTable: string): Promise<Run> {
  const iam = awsClient(IAMClient, world.moto.endpoint);
  const dynamodb = awsClient(DynamoDBClient, world.moto.endpoint);
  const keyIdCache = new DynamoKeyIdCache({ dynamodb, tableName: cacheTable, clock: systemClock });
  const requests = countRequests(iam);
  pageAuthorizationDetails(iam);
  const calls = new CallCounter();
  try {
    const started = performance.now();
    const scan = await scanAccount(
      { iam, clock: systemClock, calls, keyIdCache },
      // The emulator lacks ListServiceSpecificCredentials (with it on, rekey adds one call per
      // 1,000 credentials and service, 2 at least).
      { thresholds: THRESHOLDS, exemptTag: 'rekey:exempt', serviceCredentials: false },
    );
    const ms = performance.now() - started;
    const old = scan.findings.filter((f) => f.type === 'OLD_KEY').length;
    const unused = scan.findings.filter((f) => f.type === 'UNUSED_KEY').length;
    const withoutId = scan.findings.filter((f) => f.accessKeyId === null).length;
    if (keyIdCache.stats.failures) throw new Error('the key-id cache failed: the run measured no cache');
    if (
      scan.usersScanned !== expected.users ||
      old !== expected.old ||
      unused !== expected.unused ||
      withoutId
    )
      throw new Error(
        `rekey's scan saw ${scan.usersScanned} users, ${old} OLD_KEY, ${unused} UNUSED_KEY, ${withoutId} without a key id; expected ${expected.users}, ${expected.old}, ${expected.unused}, 0`,
      );
    const sent = [...requests.values()].reduce((a, b) => a + b, 0);
    // Its own count and the client's must agree, or one of them is wrong.
    if (sent !== calls.total)
      throw new Error(`rekey counted ${calls.total} IAM calls but its client sent ${sent}`);
    return { calls: sent, ms, byOperation: calls.toJSON() };
  } finally {
    iam.destroy();
    dynamodb.destroy();
  }
}

async function runPerUser(
  world: AuditWorld,
  expected: Expected,
  concurrency: number,
): Promise<Omit<Run, 'byOperation'>> {
  const iam = awsClient(IAMClient, world.moto.endpoint);
  const requests = countRequests(iam);
  try {
    const started = performance.now();
    const result = await perUserScan(iam, THRESHOLDS, {
      concurrency,
      progressEvery: 2500,
      onProgress: (done) => progress(`  per-user scan: ${count(done)} of ${count(expected.users)} users`),
    });
    const ms = performance.now() - started;
    if (
      result.users !== expected.users ||
      result.oldKeys !== expected.old ||
      result.unusedKeys !== expected.unused
    )
      throw new Error(
        `the per-user scan saw ${result.users} users, ${result.oldKeys} old and ${result.unusedKeys} unused keys; expected ${expected.users}, ${expected.old}, ${expected.unused}`,
      );
    return { calls: [...requests.values()].reduce((a, b) => a + b, 0), ms };
  } finally {
    iam.destroy();
  }
}

export async function auditBench(options: AuditBenchOptions): Promise<void> {
  const sizes = [...new Set(options.sizes)].sort((a, b) => a - b);
  progress('(a) audit: starting moto (request signing off: 10,000 users could not afford signature checks)');
  const world = await startAuditWorld();
  const results: SizeResult[] = [];
  try {
    await world.seed(FIXED_FINDING_USERS);
    // As after any earlier audit: a report exists, so rekey's scan asks once and gets COMPLETE
    // (a first-ever report takes IAM seconds to generate, which rekey waits for).
    await world.iam.send(new GenerateCredentialReportCommand({}));
    let fresh = 0;
    let old = 0;
    const fixed = FIXED_FINDING_USERS.length;
    for (const size of sizes) {
      const findingUsers = Math.round((size * options.findingPercent) / 100);
      const wantOld = findingUsers - fixed;
      const wantFresh = size - findingUsers;
      if (wantOld < old || wantFresh < fresh)
        throw new Error(`cannot measure ${size} users: more are seeded already`);
      const started = performance.now();
      world.moto.setOffsetDays(-OLD_KEY_DAYS);
      await world.bulkCreateUsers('old-bulk-', old, wantOld);
      world.moto.setOffsetDays(0);
      await world.bulkCreateUsers('bulk-', fresh, wantFresh);
      progress(
        `(a) seeded ${count(size - fixed - old - fresh)} users (now ${count(size)}, ${count(findingUsers)} with findings) in ${seconds(performance.now() - started)}`,
      );
      old = wantOld;
      fresh = wantFresh;
      // Every old-bulk user's key is old and unused; 10 fixed users are old, 10 unused.
      const expected = { users: size, old: 10 + old, unused: 10 + old };
      // An empty cache table per size: the first run is cold, the second warm.
      const cacheTable = `rekey-bench-key-ids-${size}`;
      const dynamodb = awsClient(DynamoDBClient, world.moto.endpoint);
      await createKeyIdCacheTable(dynamodb, cacheTable);
      dynamodb.destroy();
      const cold = await runRekey(world, expected, cacheTable);
      progress(`(a) ${count(size)} users: cold run ${count(cold.calls)} IAM calls in ${seconds(cold.ms)}`);
      const warm = await runRekey(world, expected, cacheTable);
      progress(`(a) ${count(size)} users: warm run ${count(warm.calls)} IAM calls in ${seconds(warm.ms)}`);
      const result: SizeResult = { users: size, findingUsers, cold, warm };
      if (options.perUser) {
        progress(`(a) ${count(size)} users: per-user scan (about ${count(2 * size)} calls)...`);
        result.perUser = await runPerUser(world, expected, options.concurrency);
        progress(
          `(a) ${count(size)} users: per-user scan ${count(result.perUser.calls)} calls in ${seconds(result.perUser.ms)}`,
        );
      }
      results.push(result);
    }
  } finally {
    await world.stop();
  }
  printAudit(results, options);
}

const operations = (run: Run) =>
  Object.entries(run.byOperation)
    .map(([op, n]) => `${op} ${count(n)}`)
    .join(', ');

function printAudit(results: SizeResult[], options: AuditBenchOptions): void {
  const headers = ['users', 'with findings', 'cold calls', 'cold wall', 'warm calls', 'warm wall'];
  if (options.perUser) headers.push('per-user calls', 'per-user wall', 'call ratio (warm)');
  const rows = results.map((r) => [
    count(r.users),
    count(r.findingUsers),
    count(r.cold.calls),
    seconds(r.cold.ms),
    count(r.warm.calls),
    seconds(r.warm.ms),
    ...(r.perUser
      ? [count(r.perUser.calls), seconds(r.perUser.ms), ratio(r.perUser.calls, r.warm.calls)]
      : []),
  ]);
  print(
    ...heading(
      `(a) Audit: IAM calls of rekey's scan, cold and warm, ${options.findingPercent}% of the users with findings`,
    ),
    'One seeded moto server (request signing off) answering GetAccountAuthorizationDetails in pages of 1,000',
    `users as IAM does; each run with a fresh IAM client whose requests are counted. At each size the cold run`,
    'comes first (an empty key-id cache table), then the warm run (the next scheduled audit: same keys, nothing',
    'rotated; the cache filled by the cold run). Every user has one',
    `key; ${FIXED_FINDING_USERS.length} users have a finding at every size (10 old, 10 unused), the others with findings one key`,
    `${OLD_KEY_DAYS} days old and never used (OLD_KEY and UNUSED_KEY), and every finding had its key id.`,
    '',
    ...table(
      headers,
      rows,
      headers.map((_, i) => i),
    ),
    '',
    ...results.flatMap((r) => [
      `${count(r.users)} users, cold: ${operations(r.cold)}`,
      `${count(r.users)} users, warm: ${operations(r.warm)}`,
    ]),
    reproduce(
      `audit --audit-users ${options.sizes.join(',')}` +
        (options.findingPercent === AUDIT_DEFAULTS.findingPercent
          ? ''
          : ` --finding-percent ${options.findingPercent}`) +
        (options.perUser ? ' --per-user' : '') +
        (options.concurrency === AUDIT_DEFAULTS.concurrency
          ? ''
          : ` --scan-concurrency ${options.concurrency}`),
    ),
  );
}
