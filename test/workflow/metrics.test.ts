/**
 * The rotations' metrics end to end: each rotation below runs through the synthesized state
 * machine on the emulator, and the EMF lines its handlers wrote (the world's captured logs) are
 * read the way CloudWatch Logs reads them. One Rotations data point per ended rotation, under its
 * Outcome (and a stopped one also under its Reason), with no user or account dimension.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskOverride } from '../../cli/local-runner.ts';
import { metricPoints } from '../support/emf.ts';
import { outcomeStatus, startWorld, type World } from './harness.ts';

let world: World;

beforeAll(async () => {
  world = await startWorld({ config: { maxAdoptionChecks: 1 }, quiet: true });
});
afterAll(async () => {
  await world?.stop();
});

/** The data points written while `act` ran. */
async function pointsOf(act: () => Promise<unknown>) {
  const from = world.logs.length;
  await act();
  return metricPoints(world.logs.slice(from));
}

const rotations = (dimensions: Record<string, string>) => ({
  namespace: 'rekey',
  name: 'Rotations',
  unit: 'Count',
  dimensions: { service: 'rekey', ...dimensions },
  value: 1,
});

describe('rotations by outcome, from the terminal notification and the cleanup', () => {
  it('a completed rotation: Outcome COMPLETED, once', async () => {
    await world.createUser('mia');
    const points = await pointsOf(async () => {
      expect(outcomeStatus(await world.run({ userName: 'mia' }))).toBe('ROTATED');
    });
    expect(points).toEqual([rotations({ Outcome: 'COMPLETED' })]);
  });

  it('a stop for two active keys: Outcome STOPPED, and STOPPED with Reason TwoActiveKeys', async () => {
    await world.createUser('noa', { keys: 2 });
    const points = await pointsOf(async () => {
      expect(outcomeStatus(await world.run({ userName: 'noa' }))).toBe('STOPPED');
    });
    expect(points).toEqual([
      rotations({ Outcome: 'STOPPED' }),
      rotations({ Outcome: 'STOPPED', Reason: 'TwoActiveKeys' }),
    ]);
  });

  it('an old key still in use: Reason OldKeyStillInUse', async () => {
    const [old] = await world.createUser('ola');
    if (!old) throw new Error('no key');
    const useOldKey: TaskOverride = async (input, invoke) => {
      await world.whoAmI(old);
      return invoke(input);
    };
    const points = await pointsOf(async () => {
      const result = await world.run({ userName: 'ola' }, { handlers: { 'check-last-used': useOldKey } });
      expect(outcomeStatus(result)).toBe('STOPPED');
    });
    expect(points).toEqual([
      rotations({ Outcome: 'STOPPED' }),
      rotations({ Outcome: 'STOPPED', Reason: 'OldKeyStillInUse' }),
    ]);
  });

  it('a failed rotation: Outcome FAILED from its failure notification, none from its cleanup', async () => {
    await world.createUser('pia');
    const broken: TaskOverride = () => {
      const error = new Error('the create step broke');
      error.name = 'CreateStepBroke';
      throw error;
    };
    const points = await pointsOf(async () => {
      const result = await world.run({ userName: 'pia' }, { handlers: { 'create-second-key': broken } });
      expect(result.status).toBe('FAILED');
    });
    expect(points).toEqual([rotations({ Outcome: 'FAILED' })]);
  });

  it('an aborted rotation: Outcome ABORTED from the cleanup', async () => {
    await world.createUser('quy');
    const controller = new AbortController();
    const stopDuringCreate: TaskOverride = async (input, invoke) => {
      controller.abort();
      return invoke(input);
    };
    const points = await pointsOf(async () => {
      const result = await world.run(
        { userName: 'quy' },
        { signal: controller.signal, handlers: { 'create-second-key': stopDuringCreate } },
      );
      expect(result.status).toBe('ABORTED');
    });
    expect(points).toEqual([rotations({ Outcome: 'ABORTED' })]);
  });

  it('a dry run counts no rotation', async () => {
    await world.createUser('rui');
    const points = await pointsOf(() => world.run({ userName: 'rui', dryRun: true }));
    expect(points).toEqual([]);
  });
});
