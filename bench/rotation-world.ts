/**
 * The emulator world of (b) and (d): a moto server with request signing on (every call is checked
 * as in a real account, as in the demo and the workflow tests), an admin allowed everything, the
 * handlers' environment from cdk.json as `rekey rotate` builds it, and the state machine extracted
 * from the synthesized template. Unlike the workflow tests' world (test/workflow/harness.ts) it
 * routes no notification to read-back queues: moto delivers those inside the publishing request
 * (0.3-0.8 s per notify step here), which would inflate the handler durations (b) prices and the
 * throughput (d) measures.
 *
 * moto's request recorder is on the server (off until `record()`), so (b) can count what the
 * handlers sent to AWS, by service and operation, the way AWS would bill it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateAccessKeyCommand, CreateUserCommand, IAMClient } from '@aws-sdk/client-iam';
import { type LoadedDefinition, loadDefinition } from '../cli/definition.ts';
import { pool } from '../cli/demo-seed.ts';
import { type MotoServer, startMoto } from '../cli/emulator.ts';
import { prepareLocalEnv } from '../cli/local-env.ts';
import { type RotationResult, type RunRotationOptions, runRotation } from '../cli/local-runner.ts';
import { type AwsCredentials, AwsEnv, adminSetup, awsClient } from '../support/aws.ts';
import { progress } from './report.ts';

/** One request as moto's recorder saw it. */
export interface RecordedCall {
  /** The signing name of the service (iam, sts, secretsmanager, dynamodb, sns, events, ...). */
  service: string;
  operation: string;
  /** PutEvents: the number of entries (EventBridge bills each entry). */
  entries?: number;
}

export interface RotationWorld {
  moto: MotoServer;
  admin: AwsCredentials;
  env: Record<string, string>;
  definition: LoadedDefinition;
  /** Creates users `<prefix>0..<prefix>n-1`, one access key each, 8 at a time. */
  seedUsers(prefix: string, n: number): Promise<string[]>;
  /** One rotation through the local runner, every Wait state instant. */
  run(userName: string, options?: Partial<RunRotationOptions>): Promise<RotationResult>;
  /** Records every request moto receives while `fn` runs. */
  record<T>(fn: () => Promise<T>): Promise<{ result: T; calls: RecordedCall[] }>;
  stop(): Promise<void>;
}

export async function startRotationWorld(): Promise<RotationWorld> {
  const definition = loadDefinition({ log: progress });
  const recordings = mkdtempSync(join(tmpdir(), 'rekey-bench-'));
  // moto's recorder writes to this file; the server inherits it from our environment.
  const previous = process.env.MOTO_RECORDER_FILEPATH;
  process.env.MOTO_RECORDER_FILEPATH = join(recordings, 'requests.jsonl');
  let moto: MotoServer;
  try {
    moto = await startMoto();
  } finally {
    if (previous === undefined) delete process.env.MOTO_RECORDER_FILEPATH;
    else process.env.MOTO_RECORDER_FILEPATH = previous;
  }
  try {
    const admin = await adminSetup(moto.endpoint);
    await moto.enableAuth();
    // The handlers' module-scope clients use the SDK's default chain: point it at moto, as admin.
    const applied = new AwsEnv(moto.endpoint, admin).apply();
    const env = await prepareLocalEnv({ source: {}, log: () => {} });
    const iam = awsClient(IAMClient, moto.endpoint, admin);
    const api = async (path: string) => {
      const response = await fetch(`${moto.endpoint}/moto-api/recorder/${path}`, { method: 'POST' });
      if (!response.ok) throw new Error(`moto recorder ${path}: ${response.status}`);
      return response.text();
    };
    progress(`Emulator for (b) and (d): moto on ${moto.endpoint} (pid ${moto.pid}), request signing on`);

    return {
      moto,
      admin,
      env,
      definition,
      async seedUsers(prefix, n) {
        const names = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
        await pool(names, 8, async (UserName) => {
          await iam.send(new CreateUserCommand({ UserName }));
          await iam.send(new CreateAccessKeyCommand({ UserName }));
        });
        return names;
      },
      run: (userName, options = {}) =>
        runRotation({
          input: { userName },
          definition: definition.definition,
          bindings: definition.bindings,
          env,
          noWait: true,
          ...options,
        }),
      async record(fn) {
        await api('reset-recording');
        await api('start-recording');
        let result: Awaited<ReturnType<typeof fn>>;
        try {
          result = await fn();
        } finally {
          await api('stop-recording');
        }
        return { result, calls: parseRecording(await api('download-recording')) };
      },
      async stop() {
        iam.destroy();
        applied.restore();
        await moto.stop();
        rmSync(recordings, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await moto.stop();
    rmSync(recordings, { recursive: true, force: true });
    throw error;
  }
}

interface RecorderEntry {
  headers: Record<string, string>;
  url: string;
  body?: string | null;
  body_encoded?: boolean;
}

/** moto's recording (one JSON request a line) as service and operation names. */
export function parseRecording(text: string): RecordedCall[] {
  return text
    .split('\n')
    .filter((line) => line.trim().length > 0)
    .map((line) => {
      const entry = JSON.parse(line) as RecorderEntry;
      const header = (name: string) =>
        Object.entries(entry.headers).find(([key]) => key.toLowerCase() === name)?.[1] ?? '';
      const body = entry.body_encoded
        ? Buffer.from(entry.body ?? '', 'base64').toString('utf8')
        : (entry.body ?? '');
      // SigV4: Credential=<key id>/<date>/<region>/<service>/aws4_request
      const service =
        /Credential=[^/]+\/[^/]+\/[^/]+\/([^/]+)\//.exec(header('authorization'))?.[1] ?? 'unsigned';
      // JSON protocols name the operation in X-Amz-Target, query protocols in the form's Action.
      const target = header('x-amz-target');
      const operation =
        (target ? target.split('.').at(-1) : new URLSearchParams(body).get('Action')) ??
        /\/operation\/([A-Za-z]+)$/.exec(new URL(entry.url).pathname)?.[1] ??
        'unknown';
      const call: RecordedCall = { service, operation };
      if (service === 'events' && operation === 'PutEvents')
        call.entries = (JSON.parse(body) as { Entries?: unknown[] }).Entries?.length ?? 0;
      return call;
    });
}
