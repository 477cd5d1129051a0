/**
 * `npm run bench [-- <benchmark>...] [options]`: rekey's performance figures, each block followed
 * by the command that reproduces it. Figures on stdout, progress on stderr. Not part of `npm test`:
 * tests never assert on time.
 *
 *   audit       (a) the audit's IAM calls, cold and warm, at 1,000 / 5,000 / 10,000 users
 *   rotation    (b) one happy-path rotation: transitions, invocations, API calls by service and state, cost
 *               at list prices, against a baseline ref
 *   bundles     (c) each Lambda bundle's minified size and cold import time, against a baseline ref
 *   throughput  (d) 500 users rotated through the local workflow, waits compressed
 *   organization (e) the organization audit at 1 / 5 / 20 member accounts × 200 users, MaxConcurrency 10 vs 1
 */
import { loadavg } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadDefinition } from '../cli/definition.ts';
import { AUDIT_DEFAULTS, auditBench } from './audit.ts';
import { BUNDLE_DEFAULTS, bundlesBench } from './bundles.ts';
import { ORGANIZATION_DEFAULTS, organizationBench } from './organization.ts';
import { heading, machineLine, print, progress, reproduce } from './report.ts';
import { ROTATION_BASELINE, rotationBench } from './rotation.ts';
import { type RotationWorld, startRotationWorld } from './rotation-world.ts';
import { THROUGHPUT_DEFAULTS, throughputBench } from './throughput.ts';

const BENCHMARKS = ['audit', 'rotation', 'bundles', 'throughput', 'organization'] as const;
type Benchmark = (typeof BENCHMARKS)[number];

const positiveInt = (max: number) => (value: string) => {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > max)
    throw new InvalidArgumentError(`must be a whole number from 1 to ${max}`);
  return n;
};
const intList = (max: number) => (value: string) => value.split(',').map((v) => positiveInt(max)(v.trim()));

interface Flags {
  auditUsers: number[];
  findingPercent: number;
  perUser: boolean;
  scanConcurrency: number;
  runs: number;
  baseline?: string;
  users: number;
  concurrency: number[];
  orgAccounts: number[];
  orgUsers: number;
  orgConcurrency: number;
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command('bench')
    .description("rekey's performance figures (progress on stderr, figures on stdout)")
    .argument('[benchmarks...]', `any of ${BENCHMARKS.join(', ')} (default: all, in that order)`)
    .option('--audit-users <n,...>', '(a) account sizes', intList(50_000), AUDIT_DEFAULTS.sizes)
    .option(
      '--finding-percent <n>',
      '(a) share of the users with findings, in percent',
      positiveInt(100),
      AUDIT_DEFAULTS.findingPercent,
    )
    .option('--per-user', '(a) also run the per-user scan of other tools (slow on the emulator)', false)
    .option(
      '--scan-concurrency <n>',
      '(a) users the per-user scan (--per-user) works on at once',
      positiveInt(64),
      AUDIT_DEFAULTS.concurrency,
    )
    .option(
      '--runs <n>',
      '(c) fresh Node processes per bundle (median)',
      positiveInt(200),
      BUNDLE_DEFAULTS.runs,
    )
    .option(
      '--baseline <ref>',
      `(b, c) the git ref whose rotation and bundles are compared with the current ones (default: ${ROTATION_BASELINE} for (b), ${BUNDLE_DEFAULTS.baseline} for (c))`,
    )
    .option(
      '--users <n>',
      '(d) users rotated per concurrency level',
      positiveInt(10_000),
      THROUGHPUT_DEFAULTS.users,
    )
    .addOption(
      new Option('--concurrency <n,...>', '(d) rotations run at once, one pass per value')
        .argParser(intList(64))
        .default(THROUGHPUT_DEFAULTS.concurrency),
    )
    .option(
      '--org-accounts <n,...>',
      '(e) member accounts audited, one run per size',
      intList(200),
      ORGANIZATION_DEFAULTS.accounts,
    )
    .option(
      '--org-users <n>',
      '(e) users per member account',
      positiveInt(10_000),
      ORGANIZATION_DEFAULTS.users,
    )
    .option(
      '--org-concurrency <n>',
      "(e) the Map's MaxConcurrency (organization.auditConcurrency) compared with 1",
      positiveInt(40),
      ORGANIZATION_DEFAULTS.concurrency,
    )
    .showHelpAfterError('(add --help for usage)')
    .action(async (names: string[], flags: Flags) => {
      const unknown = names.filter((n) => !(BENCHMARKS as readonly string[]).includes(n));
      if (unknown.length)
        program.error(`unknown benchmark ${unknown.join(', ')}; use ${BENCHMARKS.join(', ')}`);
      const chosen = BENCHMARKS.filter((b) => names.length === 0 || names.includes(b));
      await runAll(chosen, flags);
    });
  await program.parseAsync(argv);
}

async function runAll(chosen: Benchmark[], flags: Flags): Promise<void> {
  const started = performance.now();
  print(`rekey benchmarks, ${new Date().toISOString()}`, machineLine());
  // (b) and (d) share one emulator: the handlers' SDK clients live for the process (as in a warm
  // Lambda) and keep the endpoint and credentials of their first call.
  let world: RotationWorld | undefined;
  const rotationWorld = async () => {
    world ??= await startRotationWorld();
    return world;
  };
  try {
    if (chosen.some((b) => b !== 'audit' && b !== 'organization')) {
      // Once per run, whatever cdk.out holds: (b) and (d) run the state machine the app defines now
      // and (c) measures the bundles it builds now (a fresh clone has no cdk.out at all).
      progress('Synthesizing the CDK app (15-60 s)');
      loadDefinition({ synth: true, log: progress });
    }
    for (const benchmark of chosen) {
      switch (benchmark) {
        case 'audit':
          await auditBench({
            sizes: flags.auditUsers,
            findingPercent: flags.findingPercent,
            perUser: flags.perUser,
            concurrency: flags.scanConcurrency,
          });
          break;
        case 'rotation':
          await rotationBench(await rotationWorld(), { baseline: flags.baseline ?? ROTATION_BASELINE });
          break;
        case 'bundles':
          await bundlesBench({ runs: flags.runs, baseline: flags.baseline ?? BUNDLE_DEFAULTS.baseline });
          break;
        case 'throughput':
          await throughputBench(await rotationWorld(), {
            users: flags.users,
            concurrency: flags.concurrency,
          });
          break;
        case 'organization':
          await organizationBench({
            accounts: flags.orgAccounts,
            users: flags.orgUsers,
            concurrency: flags.orgConcurrency,
          });
          break;
      }
    }
  } finally {
    await world?.stop();
  }
  const total = (performance.now() - started) / 1000;
  print(
    ...heading('Total'),
    `${chosen.join(', ')} in ${Math.floor(total / 60)} min ${Math.round(total % 60)} s; load average at the end ${loadavg()
      .slice(0, 2)
      .map((l) => l.toFixed(1))
      .join(' (1 min) ')} (5 min)`,
    chosen.length === BENCHMARKS.length ? 'Reproduce: npm run bench' : reproduce(chosen.join(' ')),
  );
  progress(`done in ${total.toFixed(0)} s`);
}

await main(process.argv);
