/**
 * A moto server (the AWS emulator) for one test file: `python3 -m moto.server` on a free
 * 127.0.0.1 port, started and stopped by the test's own hooks.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';

export interface MotoServer {
  /** http://127.0.0.1:<port>, for AWS_ENDPOINT_URL or a client's `endpoint`. */
  endpoint: string;
  port: number;
  pid: number;
  /** Kills the server and waits until it has exited. */
  stop(): Promise<void>;
  /** Forgets every resource (POST /moto-api/reset). */
  reset(): Promise<void>;
  /** Turns request signature checking on: from now on only real IAM credentials in moto work. */
  enableAuth(): Promise<void>;
  /** Turns request signature checking off (moto's default: any key id is accepted). */
  disableAuth(): Promise<void>;
}

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;
/** moto logs every request; only the end of its output is kept for error messages. */
const OUTPUT_TAIL_CHARS = 4_000;

export interface StartMotoOptions {
  /** The Python that has moto installed. @default 'python3' */
  python?: string;
}

export async function startMoto(options: StartMotoOptions = {}): Promise<MotoServer> {
  const python = options.python ?? 'python3';
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn(python, ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    detached: false,
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
    await waitUntilAnswering(endpoint, child, python, () => output);
  } catch (error) {
    await kill(child, exited);
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
  return {
    endpoint,
    port,
    pid,
    stop: () => kill(child, exited),
    reset: () => post('/moto-api/reset'),
    // The body is how many requests may still pass unauthenticated: 0 = check from now on.
    enableAuth: () => post('/moto-api/reset-auth', '0'),
    disableAuth: () => post('/moto-api/reset-auth', 'inf'),
  };
}

/** Lets the OS pick a free port, then releases it for moto to take. */
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
  output: () => string,
): Promise<void> {
  let failure: Error | undefined;
  child.once('error', (error) => {
    failure = new Error(`could not start ${python} (${error.message}); moto needs python3 with moto[server]`);
  });
  child.once('exit', (code, signal) => {
    failure ??= new Error(
      `moto server exited (${signal ?? `code ${code}`}) before answering; is moto installed ` +
        `(pip install "moto[server]")? Its output:\n${output()}`,
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
    new Error(`moto server did not answer on ${endpoint} within ${START_TIMEOUT_MS} ms:\n${output()}`)
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
