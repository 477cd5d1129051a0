/**
 * What actually reached the emulator, read from moto's request recorder (/moto-api/recorder/*):
 * one entry per request, named by service (from the SigV4 credential scope) and operation (from
 * X-Amz-Target or the query protocol's Action). moto records a request before it checks the
 * signature or dispatches it, so refused and failed calls are counted too.
 *
 * "Zero mutating calls" is measured here rather than assumed from the code: an operation is
 * read-only only when its name says so (Get/List/Describe/...); anything else, including an
 * operation this module has never heard of, counts as mutating.
 *
 * The recording holds whole requests (a PutSecretValue carries a secret): only the service and
 * operation names leave this module, so an assertion that fails prints no secret.
 */
import type { MotoServer } from './moto.ts';

export interface RecordedRequest {
  /** The signing name: iam, secretsmanager, dynamodb, sns, events, kms, sts, sqs; 'unsigned' without one. */
  service: string;
  /** The API operation, e.g. CreateAccessKey; for a request without one, `METHOD /path`. */
  operation: string;
  mutating: boolean;
  /** The access key id that signed it ('unsigned' without one): AKIA... a user's, ASIA... a role session's. */
  signedBy: string;
}

/** Operations that only read. Everything else (Create, Put, Update, Delete, Tag, Publish...) mutates. */
const READ_ONLY = /^(Get|List|Describe|Scan|Query|BatchGet|Head)[A-Z]/;

/** Whether an API operation may change something: true unless its name says it only reads. */
export function isMutating(operation: string): boolean {
  return !READ_ONLY.test(operation);
}

interface RecordingEntry {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string | null;
  body_encoded?: boolean;
}

const header = (headers: Record<string, string>, name: string): string | undefined =>
  Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1];

/** Parses moto's recording (JSON lines) into requests. */
export function parseRecording(text: string): RecordedRequest[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const entry = JSON.parse(line) as RecordingEntry;
      const body = entry.body_encoded
        ? Buffer.from(entry.body ?? '', 'base64').toString('utf8')
        : (entry.body ?? '');
      const scope = /Credential=([^/]+)\/[^/]+\/[^/]+\/([^/]+)\/aws4_request/.exec(
        header(entry.headers, 'authorization') ?? '',
      );
      const target = header(entry.headers, 'x-amz-target');
      const url = new URL(entry.url);
      const action =
        target?.split('.').at(-1) ??
        url.searchParams.get('Action') ??
        new URLSearchParams(body).get('Action') ??
        undefined;
      const operation = action ?? `${entry.method} ${url.pathname}`;
      const readOnlyRest = action === undefined && (entry.method === 'GET' || entry.method === 'HEAD');
      return {
        service: scope?.[2] ?? 'unsigned',
        operation,
        mutating: readOnlyRest ? false : isMutating(operation),
        signedBy: scope?.[1] ?? 'unsigned',
      };
    });
}

async function recorder(moto: MotoServer, path: string, method = 'POST'): Promise<string> {
  const response = await fetch(`${moto.endpoint}/moto-api/recorder/${path}`, { method });
  const text = await response.text();
  if (!response.ok) throw new Error(`moto recorder ${path} answered ${response.status}: ${text}`);
  return text;
}

/**
 * Runs `action` with moto's recorder on and returns every request that reached the emulator
 * meanwhile. The recorder is global to the server: nothing else may call moto while it runs.
 */
export async function recordRequests<T>(
  moto: MotoServer,
  action: () => Promise<T>,
): Promise<{ result: T; requests: RecordedRequest[] }> {
  await recorder(moto, 'reset-recording');
  await recorder(moto, 'start-recording');
  let result: T;
  try {
    result = await action();
  } finally {
    await recorder(moto, 'stop-recording');
  }
  const requests = parseRecording(await recorder(moto, 'download-recording', 'GET'));
  return { result, requests };
}

/**
 * `service:Operation` of each mutating request not signed by a role session (ASIA...): a local
 * run as deployed makes none, apart from the harness making the roles (iam:CreateRole,
 * iam:PutRolePolicy, sts:AssumeRole, as the emulator's administrator).
 */
export const mutatingCallsNotAsRole = (requests: readonly RecordedRequest[]): string[] =>
  requests
    .filter((r) => r.mutating && !r.signedBy.startsWith('ASIA'))
    .map((r) => `${r.service}:${r.operation}`)
    .filter((call) => !['iam:CreateRole', 'iam:PutRolePolicy', 'sts:AssumeRole'].includes(call));

/** `service:Operation` of each mutating request, for assertions that print what went wrong. */
export const mutatingCalls = (requests: readonly RecordedRequest[]): string[] =>
  requests.filter((r) => r.mutating).map((r) => `${r.service}:${r.operation}`);
