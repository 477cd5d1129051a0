/**
 * (d) Many users rotated through the local workflow (the synthesized state machine, real handlers,
 * every Wait instant) against moto with request signing on: wall time and rotations per second
 * at each concurrency level, fresh users for each level.
 */
import { pool } from '../cli/demo-seed.ts';
import { outcomeOf } from '../cli/local-runner.ts';
import { count, heading, median, print, progress, quantile, reproduce, seconds, table } from './report.ts';
import type { RotationWorld } from './rotation-world.ts';

export interface ThroughputOptions {
  users: number;
  /** One pass per value: rotations run at once. */
  concurrency: number[];
}

export const THROUGHPUT_DEFAULTS: ThroughputOptions = { users: 500, concurrency: [8] };

export async function throughputBench(world: RotationWorld, options: ThroughputOptions): Promise<void> {
  const rows: string[][] = [];
  for (const concurrency of options.concurrency) {
    let started = performance.now();
    const users = await world.seedUsers(`tp${concurrency}-`, options.users);
    progress(
      `(d) seeded ${count(users.length)} users with one key each in ${seconds(performance.now() - started)}`,
    );

    const latencies: number[] = [];
    const failed: string[] = [];
    let invocations = 0;
    started = performance.now();
    await pool(users, concurrency, async (userName) => {
      const t = performance.now();
      const result = await world.run(userName);
      latencies.push(performance.now() - t);
      invocations += result.tasks.length;
      if (outcomeOf(result.output)?.status !== 'ROTATED')
        failed.push(`${userName}: ${result.status} ${result.error ?? ''}`);
      if (latencies.length % 100 === 0)
        progress(`(d) ${concurrency} at a time: ${latencies.length} of ${users.length} rotated`);
    });
    const wall = performance.now() - started;
    if (failed.length)
      throw new Error(`${failed.length} rotation(s) did not rotate, e.g. ${failed.slice(0, 3).join('; ')}`);
    progress(`(d) ${count(users.length)} rotations, ${concurrency} at a time, in ${seconds(wall)}`);
    rows.push([
      String(concurrency),
      count(users.length),
      seconds(wall),
      (users.length / (wall / 1000)).toFixed(2),
      seconds(median(latencies)),
      seconds(quantile(latencies, 0.95)),
      count(invocations),
    ]);
  }

  print(
    ...heading('(d) Throughput: users rotated through the local workflow, waits compressed'),
    'The synthesized state machine run by the local runner in one Node process (every Wait instant), real handlers,',
    'one moto server with request signing on; fresh users with one key each for every pass; every rotation rotated.',
    '',
    ...table(
      [
        'at once',
        'rotations',
        'wall',
        'rotations/s',
        'median rotation',
        'p95 rotation',
        'Lambda invocations',
      ],
      rows,
      [0, 1, 2, 3, 4, 5, 6],
    ),
    '',
    "Every AWS request of every rotation (see (b) for one rotation's) is served by one moto process, which sets the",
    'pace here. In AWS each rotation is its own Step Functions execution; how many run at once is bounded',
    "by the audit's maxRotationsPerRun and IAM's account-wide API rate, and each takes days (the adoption and delete waits).",
    reproduce(`throughput --users ${options.users} --concurrency ${options.concurrency.join(',')}`),
  );
}
