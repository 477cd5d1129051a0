/**
 * The moto server for tests: the product's launcher (cli/emulator.ts, which the demo uses too).
 * Each test file starts its own on a free 127.0.0.1 port and stops it in its own hooks.
 */
export { type MotoServer, type StartMotoOptions, startMoto } from '../../cli/emulator.ts';

/** Whether a process (an emulator the test started) is still alive: signal 0 only checks. */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
