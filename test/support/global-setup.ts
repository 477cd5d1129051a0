/**
 * Runs once before all test files: `cdk synth`, so that the workflow tests execute the state
 * machine definition of the template the app produces now (never a stale cdk.out). The
 * extraction validates the definition with asl-validator and refuses unbound Tasks.
 */
import { loadDefinition } from '../../cli/definition.ts';

export default function setup(): void {
  const started = Date.now();
  loadDefinition({ synth: true, log: (message) => console.error(message) });
  console.error(`cdk synth for the workflow tests took ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
