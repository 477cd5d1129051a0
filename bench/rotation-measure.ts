/**
 * (b)'s measurement of one happy-path rotation: the states it entered (with their types), the
 * Lambda invocations, and every AWS request the handlers sent, each attributed to the state whose
 * Task sent it (the requests moto recorded between the Task's start and its end). The same code
 * measures a baseline ref: `node --import tsx bench/rotation-measure.ts --root <worktree>` runs it
 * against that worktree's rotation world (its state machine, handlers and roles) and prints the
 * measurement as JSON on stdout.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { walkStates } from '../cli/definition.ts';
import { outcomeOf, type TaskOverride } from '../cli/local-runner.ts';
import { progress } from './report.ts';
import { parseRecording, type RecordedCall, type RotationWorld } from './rotation-world.ts';

export interface MeasuredState {
  name: string;
  type: string;
  /** The requests its Task sent (none for a Choice, Wait, Pass or Succeed). */
  calls: RecordedCall[];
}

export interface RotationMeasure {
  /** The states in the order they were entered: each entry is one billed transition. */
  states: MeasuredState[];
  tasks: Array<{ step: string; state: string; ms: number }>;
  calls: RecordedCall[];
  outcome: string;
  /** The measured rotation's wall time, the recorder reads around each Task included. */
  wallMs: number;
}

/** The world of bench/rotation-world.ts, as far as this measurement uses it (the baseline's too). */
type World = Pick<RotationWorld, 'moto' | 'definition' | 'seedUsers' | 'run' | 'record'>;

/** Warms the handlers up with one user's rotation, then measures another's. */
export async function measureRotation(world: World, steps: readonly string[]): Promise<RotationMeasure> {
  const [warmUser, user] = await world.seedUsers('cost-', 2);
  if (!warmUser || !user) throw new Error('seeding returned no users');
  // The first rotation in this process imports every handler module (a cold start); the one
  // measured runs warm, as most invocations of a deployed function do. Cold imports: see (c).
  const warm = await world.run(warmUser);
  if (outcomeOf(warm.output)?.status !== 'ROTATED')
    throw new Error(`warm-up rotation ended ${warm.status} ${warm.error ?? ''}`);

  const recorded = async () => {
    const response = await fetch(`${world.moto.endpoint}/moto-api/recorder/download-recording`, {
      method: 'POST',
    });
    if (!response.ok) throw new Error(`moto recorder download-recording: ${response.status}`);
    return response.text();
  };
  const lines = (text: string) => text.split('\n').filter((line) => line.trim().length > 0).length;
  const spans: Array<{ step: string; state: string; ms: number; from: number; to: number }> = [];
  const measured: TaskOverride = async (input, invoke, task) => {
    const from = lines(await recorded());
    const started = performance.now();
    try {
      return await invoke(input);
    } finally {
      const ms = performance.now() - started;
      spans.push({ step: task.step, state: task.state, ms, from, to: lines(await recorded()) });
    }
  };
  let text = '';
  const started = performance.now();
  const { result } = await world.record(async () => {
    const run = await world.run(user, {
      handlers: Object.fromEntries(steps.map((step) => [step, measured])),
    });
    text = await recorded();
    return run;
  });
  const wallMs = performance.now() - started;
  const outcome = outcomeOf(result.output);
  if (result.status !== 'SUCCEEDED' || outcome?.status !== 'ROTATED')
    throw new Error(
      `the measured rotation did not rotate: ${result.status} ${outcome?.status ?? result.error ?? ''}`,
    );
  const calls = parseRecording(text);

  const types = new Map<string, string>();
  walkStates(world.definition.definition, (name, state) => types.set(name, state.Type));
  const pending = [...spans];
  const states = result.events.flatMap((e) => {
    if (e.type !== 'StateEntered') return [];
    const name = e.state.name;
    const type = types.get(name) ?? 'unknown';
    const span = type === 'Task' ? pending.shift() : undefined;
    if (span && span.state !== name)
      throw new Error(`the Task entered as "${name}" ran as "${span.state}": cannot attribute its calls`);
    return [{ name, type, calls: span ? calls.slice(span.from, span.to) : [] }];
  });
  const attributed = states.reduce((sum, s) => sum + s.calls.length, 0);
  if (attributed !== calls.length)
    throw new Error(`${calls.length - attributed} of ${calls.length} requests were sent outside any Task`);
  return {
    states,
    tasks: spans.map(({ step, state, ms }) => ({ step, state, ms })),
    calls,
    outcome: outcome.status,
    wallMs,
  };
}

/** The child process of a baseline measurement: `--root <dir>`, JSON on stdout. */
async function measureRoot(root: string): Promise<void> {
  const module = (path: string) => import(pathToFileURL(join(root, path)).href);
  const { startRotationWorld } = (await module('bench/rotation-world.ts')) as {
    startRotationWorld: () => Promise<RotationWorld>;
  };
  const { STEP_NAMES } = (await module('contract/functions.ts')) as { STEP_NAMES: string[] };
  const world = await startRotationWorld();
  try {
    progress(`(b) the baseline's rotation (${root})`);
    process.stdout.write(JSON.stringify(await measureRotation(world, STEP_NAMES)));
  } finally {
    await world.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const at = process.argv.indexOf('--root');
  const root = at > 0 ? process.argv[at + 1] : undefined;
  if (!root) throw new Error('usage: node --import tsx bench/rotation-measure.ts --root <dir>');
  await measureRoot(root);
}
