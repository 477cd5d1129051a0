/**
 * A moto server whose clock a test can move (test/support/moto-clock.py): the honest way to get
 * access keys that are 91 days old, or were last used 45 days ago, out of an emulator that stamps
 * everything with "now". `setOffsetDays(-91)`, create or use a key, `setOffsetDays(0)`.
 *
 * The same MotoServer interface as startMoto() (test/support/moto.ts), started from the wrapper
 * script instead of `python3 -m moto.server`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MotoServer } from './moto.ts';

export interface MotoClockServer extends MotoServer {
  /** Moves moto's clock by this many days from real time (negative: into the past). */
  setOffsetDays(days: number): void;
  setOffsetSeconds(seconds: number): void;
}

const SCRIPT = fileURLToPath(new URL('./moto-clock.py', import.meta.url));
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;
const OUTPUT_TAIL_CHARS = 4_000;

export async function startMotoWithClock(): Promise<MotoClockServer> {
  const dir = mkdtempSync(join(tmpdir(), 'rekey-moto-clock-'));
  const clockFile = join(dir, 'offset-seconds');
  writeFileSync(clockFile, '0');
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn('python3', [SCRIPT, '-H', '127.0.0.1', '-p', String(port)], {
    env: { ...process.env, MOTO_CLOCK_FILE: clockFile },
    // Both pipes are drained, or moto blocks once the OS buffer is full.
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const cleanup = async () => {
    await kill(child, exited);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntilAnswering(endpoint, child, () => output);
  } catch (error) {
    await cleanup();
    throw error;
  }
  const { pid } = child;
  if (pid === undefined) throw new Error('moto server has no pid');
  const post = async (path: string, body?: string) => {
    const response = await fetch(`${endpoint}${path}`, {
      method: 'POST',
      ...(body === undefined ? {} : { body, headers: { 'content-type': 'text/plain' } }),
    });
    if (!response.ok) throw new Error(`POST ${path} answered ${response.status}: ${await response.text()}`);
  };
  const setOffsetSeconds = (seconds: number) => writeFileSync(clockFile, String(seconds));
  return {
    endpoint,
    port,
    pid,
    stop: cleanup,
    reset: () => post('/moto-api/reset'),
    enableAuth: () => post('/moto-api/reset-auth', '0'),
    disableAuth: () => post('/moto-api/reset-auth', 'inf'),
    setOffsetSeconds,
    setOffsetDays: (days) => setOffsetSeconds(days * 86_400),
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not find a free port'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

async function waitUntilAnswering(
  endpoint: string,
  child: ChildProcess,
  output: () => string,
): Promise<void> {
  let failure: Error | undefined;
  child.once('error', (error) => {
    failure = new Error(`could not start python3 (${error.message}); moto needs python3 with moto[server]`);
  });
  child.once('exit', (code, signal) => {
    failure ??= new Error(
      `moto-clock.py exited (${signal ?? `code ${code}`}) before answering:\n${output()}`,
    );
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (failure) throw failure;
    try {
      const response = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1_000) });
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw (
    failure ??
    new Error(`moto-clock.py did not answer on ${endpoint} within ${START_TIMEOUT_MS} ms:\n${output()}`)
  );
}

async function kill(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}
