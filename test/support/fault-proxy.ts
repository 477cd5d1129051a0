/**
 * A fault-injecting HTTP proxy for the workflow tests: it sits between rekey's SDK clients and the
 * moto server and, from a seed, answers chosen or random requests with the faults AWS clients meet
 * in production, at the HTTP level, so the real SDK (its error parsing, retries and time limits)
 * and the real state machine (Retry/Catch) see them as they would:
 * - `throttle`: a 400/429 with the service's own throttling error code and body;
 * - `server-error`: a 500 with the service's internal error code;
 * - `reset`: the connection is destroyed before anything is forwarded;
 * - `timeout`: the request is held (not forwarded) until the client gives up;
 * - `lost`: the request is forwarded and applied by moto, then the client connection is reset or
 *   answered with a 500, so the client does not learn that it succeeded.
 * Each request is identified by service (the SigV4 credential scope) and operation (X-Amz-Target
 * for JSON protocols, `Action=` of the form body for query protocols). Decisions come from a
 * seeded PRNG, one draw sequence per plan, so a plan and the same request sequence give the same
 * faults.
 */
import { randomUUID } from 'node:crypto';
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export const FAULT_KINDS = ['throttle', 'server-error', 'reset', 'timeout', 'lost'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** What a request is: its service (SigV4 signing name) and operation. */
export interface RequestInfo {
  service: string;
  operation: string;
  /** Anything but a read (Get*, List*, Describe*, ...): it changes state when applied. */
  mutating: boolean;
}

/** One rule of a plan. The first rule that matches a request and fires decides its fault. */
export interface FaultRule {
  /** Only these operations (e.g. `CreateAccessKey`). @default every operation */
  operations?: readonly string[];
  /** Only these services (signing names: `iam`, `secretsmanager`, ...). @default every service */
  services?: readonly string[];
  /** Only mutating calls. @default false */
  mutatingOnly?: boolean;
  /** Chance that a matching request gets a fault. @default 1 */
  rate?: number;
  /** At most this many faults from this rule (then it lets requests pass). @default unlimited */
  limit?: number;
  /** The kinds to inject, with weights; one is drawn per fault. */
  kinds: Partial<Record<FaultKind, number>>;
}

export interface FaultPlan {
  seed: number;
  rules: readonly FaultRule[];
}

export type FaultCounts = Record<FaultKind, number>;

export interface FaultStats {
  requests: number;
  faults: FaultCounts;
  /** `service:Operation` -> faults injected into it, by kind. */
  byOperation: Record<string, Partial<FaultCounts>>;
  /** `service:Operation` -> requests seen (faulted or not). */
  seen: Record<string, number>;
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: what AWS_ENDPOINT_URL of the handlers points at. */
  endpoint: string;
  /** Replaces the plan (and restarts its PRNG from the plan's seed); null lets everything pass. */
  setPlan(plan: FaultPlan | null): void;
  /** Counters since the proxy started. */
  stats(): FaultStats;
  /** Stops listening and destroys every open connection (held ones included). */
  stop(): Promise<void>;
}

export interface FaultProxyOptions {
  /** The moto endpoint requests are forwarded to. */
  target: string;
  /** How long a `timeout` fault holds a request if the client does not give up first. @default 30 s */
  maxHoldMs?: number;
}

/** mulberry32: a tiny, fast, deterministic PRNG over 32-bit state; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed derived from a campaign seed and an index (one independent stream per run). */
export function deriveSeed(seed: number, index: number): number {
  return Math.floor(mulberry32((seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0)() * 4294967296);
}

const READ_OPERATION = /^(Get|List|Describe|Head|Scan|Query|BatchGet|Lookup)/;

/** Service from the SigV4 credential scope, operation from X-Amz-Target or the query `Action`. */
export function classifyRequest(headers: IncomingHttpHeaders, body: string): RequestInfo {
  const authorization = String(headers.authorization ?? '');
  const scope = /Credential=[^/]+\/\d{8}\/[^/]+\/([^/]+)\/aws4_request/.exec(authorization);
  const service = scope?.[1] ?? 'unknown';
  const target = headers['x-amz-target'];
  let operation: string | undefined;
  if (typeof target === 'string' && target.includes('.')) {
    operation = target.slice(target.lastIndexOf('.') + 1);
  } else {
    operation = new URLSearchParams(body).get('Action') ?? undefined;
  }
  operation ??= 'Unknown';
  return { service, operation, mutating: !READ_OPERATION.test(operation) };
}

/** The services rekey's handlers call with the query protocol (XML errors); the rest speak JSON. */
const QUERY_SERVICES = new Set(['iam', 'sts', 'sns']);

/** Each service's own error codes, as its API reports them (and as the SDK parses them). */
const THROTTLE: Record<string, { status: number; code: string }> = {
  iam: { status: 400, code: 'Throttling' },
  sts: { status: 400, code: 'Throttling' },
  sns: { status: 429, code: 'Throttled' },
  dynamodb: { status: 400, code: 'ThrottlingException' },
};
const INTERNAL: Record<string, string> = {
  iam: 'ServiceFailure',
  sts: 'InternalFailure',
  sns: 'InternalError',
  secretsmanager: 'InternalServiceError',
  dynamodb: 'InternalServerError',
  events: 'InternalException',
};

/** An error response shaped like the service's protocol: XML ErrorResponse or JSON __type. */
export function errorResponse(
  service: string,
  kind: 'throttle' | 'server-error',
): { status: number; headers: Record<string, string>; body: string } {
  const throttle = THROTTLE[service] ?? { status: 400, code: 'ThrottlingException' };
  const status = kind === 'throttle' ? throttle.status : 500;
  const code = kind === 'throttle' ? throttle.code : (INTERNAL[service] ?? 'InternalFailure');
  const message =
    kind === 'throttle' ? 'Rate exceeded' : 'We encountered an internal error. Please try again.';
  const requestId = randomUUID();
  if (QUERY_SERVICES.has(service)) {
    const type = kind === 'throttle' ? 'Sender' : 'Receiver';
    return {
      status,
      headers: { 'content-type': 'text/xml', 'x-amzn-requestid': requestId },
      body: `<ErrorResponse xmlns="https://${service}.amazonaws.com/doc/"><Error><Type>${type}</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
    };
  }
  return {
    status,
    headers: {
      'content-type': 'application/x-amz-json-1.1',
      'x-amzn-requestid': requestId,
      'x-amzn-errortype': code,
    },
    body: JSON.stringify({ __type: code, message }),
  };
}

/** A decided fault. `drop`: a `lost` answer is a dropped connection (else a 500 after the fact). */
export interface Fault {
  kind: FaultKind;
  drop: boolean;
}

/**
 * The decision procedure of a plan, apart from the network: one PRNG draw per matching rule
 * (rate), two more per fault (kind, drop). Exported for unit tests of determinism.
 */
export function planDecider(plan: FaultPlan): (info: RequestInfo) => Fault | null {
  const random = mulberry32(plan.seed);
  const fired = plan.rules.map(() => 0);
  return (info) => {
    for (const [i, rule] of plan.rules.entries()) {
      if (rule.operations && !rule.operations.includes(info.operation)) continue;
      if (rule.services && !rule.services.includes(info.service)) continue;
      if (rule.mutatingOnly && !info.mutating) continue;
      if ((fired[i] ?? 0) >= (rule.limit ?? Number.POSITIVE_INFINITY)) continue;
      if (random() >= (rule.rate ?? 1)) continue;
      const kind = pickWeighted(rule.kinds, random());
      if (!kind) continue;
      fired[i] = (fired[i] ?? 0) + 1;
      return { kind, drop: random() < 0.5 };
    }
    return null;
  };
}

function pickWeighted(kinds: Partial<Record<FaultKind, number>>, draw: number): FaultKind | null {
  const entries = FAULT_KINDS.map((k) => [k, kinds[k] ?? 0] as const).filter(([, w]) => w > 0);
  const total = entries.reduce((sum, [, w]) => sum + w, 0);
  let at = draw * total;
  for (const [kind, weight] of entries) {
    if (at < weight) return kind;
    at -= weight;
  }
  return entries.at(-1)?.[0] ?? null;
}

const emptyCounts = (): FaultCounts => ({ throttle: 0, 'server-error': 0, reset: 0, timeout: 0, lost: 0 });

/** Starts the proxy on a free 127.0.0.1 port. */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const maxHoldMs = options.maxHoldMs ?? 30_000;
  const agent = new Agent({ keepAlive: true });
  const sockets = new Set<Socket>();
  const held = new Set<NodeJS.Timeout>();
  const stats: FaultStats = { requests: 0, faults: emptyCounts(), byOperation: {}, seen: {} };
  let decide: ((info: RequestInfo) => Fault | null) | null = null;

  const forward = (req: IncomingMessage, body: Buffer) =>
    new Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const upstream = httpRequest(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          // Unchanged, Host included: SigV4 signed them, and moto checks the signature.
          headers: req.headers,
          agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      upstream.on('error', reject);
      upstream.end(body);
    });

  const reply = (
    res: ServerResponse,
    status: number,
    headers: IncomingHttpHeaders,
    body: Buffer | string,
  ) => {
    const out = { ...headers, 'content-length': String(Buffer.byteLength(body)) };
    delete out['transfer-encoding'];
    res.writeHead(status, out);
    res.end(body);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks);
        const info = classifyRequest(req.headers, body.toString('utf8'));
        const name = `${info.service}:${info.operation}`;
        stats.requests++;
        stats.seen[name] = (stats.seen[name] ?? 0) + 1;
        const decided = decide?.(info) ?? null;
        const fault = decided?.kind ?? null;
        if (fault) {
          stats.faults[fault]++;
          const byKind = stats.byOperation[name] ?? {};
          byKind[fault] = (byKind[fault] ?? 0) + 1;
          stats.byOperation[name] = byKind;
        }
        switch (fault) {
          case 'throttle':
          case 'server-error': {
            const error = errorResponse(info.service, fault);
            reply(res, error.status, error.headers, error.body);
            return;
          }
          case 'reset':
            req.socket.destroy();
            return;
          case 'timeout': {
            // Nothing is forwarded and nothing answered: the client's request time limit fires.
            const timer = setTimeout(() => {
              held.delete(timer);
              req.socket.destroy();
            }, maxHoldMs);
            held.add(timer);
            req.socket.once('close', () => {
              clearTimeout(timer);
              held.delete(timer);
            });
            return;
          }
          default:
            break;
        }
        let answer: Awaited<ReturnType<typeof forward>>;
        try {
          answer = await forward(req, body);
        } catch {
          req.socket.destroy();
          return;
        }
        if (fault === 'lost') {
          // moto applied the request; the client learns nothing of it: the connection drops, or
          // a 500 arrives instead of the real answer.
          if (decided?.drop) {
            req.socket.destroy();
          } else {
            const error = errorResponse(info.service, 'server-error');
            reply(res, error.status, error.headers, error.body);
          }
          return;
        }
        reply(res, answer.status, answer.headers, answer.body);
      })();
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    setPlan(plan) {
      decide = plan ? planDecider(plan) : null;
    },
    stats: () => structuredClone(stats),
    async stop() {
      for (const timer of held) clearTimeout(timer);
      held.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
      agent.destroy();
    },
  };
}
