/**
 * The local AWS emulator: a moto server on a free 127.0.0.1 port, started as a child process and
 * stopped by its pid. `startMoto()` runs `python3 -m moto.server`; `startMotoWithClock()` runs the
 * same server through cli/moto-clock.py, whose clock can be moved so that keys can be created
 * 120 days in the past (the demo's seed and the audit tests need that; moto stamps everything
 * with "now" otherwise).
 *
 * Product code (the demo) and the tests use this module; test/support re-exports it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface MotoServer {
  /** http://127.0.0.1:<port>, for AWS_ENDPOINT_URL or a client's `endpoint`. */
  endpoint: string;
  port: number;
  pid: number;
  /** Kills the server (by its pid) and waits until it has exited. Safe to call twice. */
  stop(): Promise<void>;
  /** Forgets every resource (POST /moto-api/reset). */
  reset(): Promise<void>;
  /** Turns request signature checking on: from now on only real IAM credentials in moto work. */
  enableAuth(): Promise<void>;
  /** Turns request signature checking off (moto's default: any key id is accepted). */
  disableAuth(): Promise<void>;
}

export interface MotoClockServer extends MotoServer {
  /** Moves moto's clock by this many days from real time (negative: into the past). */
  setOffsetDays(days: number): void;
  setOffsetSeconds(seconds: number): void;
}

export interface StartMotoOptions {
  /** The Python that has moto installed. @default 'python3' */
  python?: string;
}

/** What to type when moto is missing (moto 5 with its server extra: docs/testing.md). */
export const MOTO_INSTALL_HINT = 'python3 -m pip install "moto[server]>=5,<6"';

const CLOCK_SCRIPT = fileURLToPath(new URL('./moto-clock.py', import.meta.url));
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;
/** moto logs every request; only the end of its output is kept for error messages. */
const OUTPUT_TAIL_CHARS = 4_000;
/** The modules `python3 -m moto.server` imports: moto itself and its server extra. */
const MOTO_SERVER_MODULES = ['moto', 'werkzeug', 'flask', 'flask_cors'];

/**
 * Why the moto server cannot start with this Python, in words a newcomer can act on, or null when
 * it can. Fast (a module lookup, no import), so a command can check before it does slow work.
 */
export function motoProblem(python = 'python3'): string | null {
  const probe = `import importlib.util,sys;print(",".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))`;
  const result = spawnSync(python, ['-c', probe, ...MOTO_SERVER_MODULES], {
    encoding: 'utf8',
    timeout: 15_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (result.error) {
    const missing = (result.error as NodeJS.ErrnoException).code === 'ENOENT';
    return missing
      ? `${python} was not found. The local AWS emulator is Python's moto server: install Python 3, then ${MOTO_INSTALL_HINT}`
      : `could not run ${python} (${result.error.message}); the local AWS emulator needs Python 3 with moto[server]`;
  }
  if (result.status !== 0) {
    return `${python} failed (exit ${result.status}): ${result.stderr.trim().split('\n').at(-1) ?? ''}; the local AWS emulator needs Python 3 with moto[server]`;
  }
  const missing = result.stdout.trim();
  if (missing) {
    return `Python's moto server is not installed for ${python} (missing module${missing.includes(',') ? 's' : ''}: ${missing.replaceAll(',', ', ')}). Install it with: ${MOTO_INSTALL_HINT}`;
  }
  return null;
}

export function startMoto(options: StartMotoOptions = {}): Promise<MotoServer> {
  const python = options.python ?? 'python3';
  return launch(python, ['-m', 'moto.server'], {}, 'moto server');
}

export async function startMotoWithClock(options: StartMotoOptions = {}): Promise<MotoClockServer> {
  const python = options.python ?? 'python3';
  const dir = mkdtempSync(join(tmpdir(), 'rekey-moto-clock-'));
  const clockFile = join(dir, 'offset-seconds');
  writeFileSync(clockFile, '0');
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  let server: MotoServer;
  try {
    server = await launch(python, [CLOCK_SCRIPT], { MOTO_CLOCK_FILE: clockFile }, 'moto-clock.py');
  } catch (error) {
    removeDir();
    throw error;
  }
  const setOffsetSeconds = (seconds: number) => writeFileSync(clockFile, String(seconds));
  return {
    ...server,
    stop: async () => {
      await server.stop();
      removeDir();
    },
    setOffsetSeconds,
    setOffsetDays: (days) => setOffsetSeconds(days * 86_400),
  };
}

async function launch(
  python: string,
  args: string[],
  env: Record<string, string>,
  what: string,
): Promise<MotoServer> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  // moto's request recorder (/moto-api/recorder/*) writes to ./moto_recording by default: each
  // server gets a file of its own, so servers running side by side never mix their recordings.
  const recordingDir = mkdtempSync(join(tmpdir(), 'rekey-moto-recording-'));
  const removeRecording = () => rmSync(recordingDir, { recursive: true, force: true });
  const child = spawn(python, [...args, '-H', '127.0.0.1', '-p', String(port)], {
    env: { ...process.env, MOTO_RECORDER_FILEPATH: join(recordingDir, 'requests.jsonl'), ...env },
    // Both pipes must be drained, or moto blocks once the OS buffer fills up.
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  try {
    await waitUntilAnswering(endpoint, child, python, what, () => output);
  } catch (error) {
    await kill(child, exited);
    removeRecording();
    throw error;
  }
  const { pid } = child;
  if (pid === undefined) throw new Error(`${what} has no pid`);

  const post = async (path: string, body?: string) => {
    const response = await fetch(`${endpoint}${path}`, {
      method: 'POST',
      ...(body === undefined ? {} : { body, headers: { 'content-type': 'text/plain' } }),
    });
    if (!response.ok) throw new Error(`POST ${path} answered ${response.status}: ${await response.text()}`);
  };
  return {
    endpoint,
    port,
    pid,
    stop: async () => {
      await kill(child, exited);
      removeRecording();
    },
    reset: () => post('/moto-api/reset'),
    // The body is how many requests may still pass unauthenticated: 0 = check from now on.
    enableAuth: () => post('/moto-api/reset-auth', '0'),
    disableAuth: () => post('/moto-api/reset-auth', 'inf'),
  };
}

/** Lets the OS pick a free loopback port, then releases it for moto to take. */
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
  python: string,
  what: string,
  output: () => string,
): Promise<void> {
  let failure: Error | undefined;
  child.once('error', (error) => {
    failure = new Error(`could not start ${python} (${error.message}); moto needs python3 with moto[server]`);
  });
  child.once('exit', (code, signal) => {
    failure ??= new Error(
      `${what} exited (${signal ?? `code ${code}`}) before answering; is moto installed ` +
        `(${MOTO_INSTALL_HINT})? Its output:\n${output()}`,
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
    failure ?? new Error(`${what} did not answer on ${endpoint} within ${START_TIMEOUT_MS} ms:\n${output()}`)
  );
}

async function kill(child: ChildProcess, exited: Promise<void>): Promise<void> {
  // No pid: it never started (e.g. no python3), so there is nothing to kill or wait for.
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}
