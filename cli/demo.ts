/**
 * `rekey demo`: rekey's whole job on a local emulator, no AWS account needed. It starts a moto
 * server (loopback only), seeds an account of 23 IAM users with keys back-dated by moving the
 * emulator's clock, runs the audit's scan and its decisions (the same code as `rekey audit` and
 * the audit Lambda), rotates every due user through the synthesized state machine with its waits
 * compressed, while a consumer application keeps using one user's old key, then reads the
 * emulator back to check what happened and reports per user. Then the same across accounts
 * (cli/demo-organization.ts): the account is the management account of an organization whose two
 * member accounts hold the member roles of the synthesized member template; their due users are
 * found by the code of `rekey audit --organization` and rotated with `accountId` in the input.
 *
 * runDemo() is the core, usable from a test with its own emulator; the CLI wraps it (main.ts).
 */

import { IAMClient, ListAccessKeysCommand } from '@aws-sdk/client-iam';
import { OrganizationsClient } from '@aws-sdk/client-organizations';
import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { STSClient } from '@aws-sdk/client-sts';
import { loadEnv } from '../contract/env.ts';
import { AUDIT_POLICY_ENV } from '../contract/functions.ts';
import {
  type ActionOutcome,
  applyActions,
  firstAttemptStarted,
  type RotationRequest,
} from '../lambdas/audit/actions.ts';
import { auditPolicyFromEnv, scanAccount } from '../lambdas/audit/audit.ts';
import { CallCounter } from '../lambdas/audit/calls.ts';
import type { Finding, FindingType } from '../lambdas/audit/findings.ts';
import type { ReportInput } from '../lambdas/audit/report/columns.ts';
import {
  bindToInvocations,
  invocationCredentials,
  runInInvocation,
} from '../lambdas/shared/clients/invocation.ts';
import { systemClock } from '../lambdas/shared/clock.ts';
import { tableLines } from './audit.ts';
import { type LoadedDefinition, loadDefinitionAsync, walkStates } from './definition.ts';
import { type AcrossAccountsReport, runAcrossAccounts } from './demo-organization.ts';
import {
  CONSUMER_USER,
  type Consumer,
  type Credentials,
  createAdmin,
  DEMO_ADMIN,
  DEMO_MEMBERS,
  DEMO_USERS,
  type DemoUserSpec,
  PROTECTED_USER,
  pool,
  type SeededKey,
  seedAccount,
  startConsumer,
} from './demo-seed.ts';
import {
  connectEmulator,
  deployedRoles,
  synthesizeMemberTemplate,
  synthesizeTemplate,
} from './deployed-roles.ts';
import { type MotoClockServer, motoProblem, startMotoWithClock } from './emulator.ts';
import { seedOrganization } from './emulator-organization.ts';
import { prepareLocalEnv } from './local-env.ts';
import { outcomeOf, type RotationResult, runRotation, type TaskOverride } from './local-runner.ts';
import { finalDocument, humanDuration, maskKeyId, type Paint, plain } from './progress.ts';

const REGION = 'us-east-1';

/**
 * The configuration of the demo's handlers and audit: rekey's defaults (not cdk.json's `rekey`
 * context, so every clone shows the same thing) plus a protected break-glass user and the demo's
 * own admin, and a short first backoff for the new-key check (the emulator accepts a new key at
 * once). The waits are the synthesized state machine's own; the demo skips them.
 */
export const DEMO_CONFIG = {
  protectedUsers: [PROTECTED_USER, DEMO_ADMIN],
  verifyBaseDelayMs: 200,
} as const;

/** How often the consumer application calls AWS with its old key. */
const CONSUMER_INTERVAL_MS = 200;

/** The prerequisites are missing (python3, moto): nothing was started. */
export class DemoPrerequisiteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DemoPrerequisiteError';
  }
}

export class DemoInterrupted extends Error {
  constructor() {
    super('interrupted; the emulator was stopped');
    this.name = 'DemoInterrupted';
  }
}

export type DemoOutcome = 'rotated' | 'stopped safely' | 'refused' | 'reported' | 'nothing to do' | 'failed';

export interface DemoUserReport {
  userName: string;
  story: string;
  /** The audit's findings for this user, most severe first. */
  findings: Array<{ type: FindingType; ageDays: number; accessKeyId: string | null }>;
  /** What the audit decided. */
  action: string;
  oldKeyId: string | null;
  newKeyId: string | null;
  outcome: DemoOutcome;
  /** Why it stopped, was refused or failed; null when rotated or untouched. */
  why: string | null;
  executionName: string | null;
}

export interface DemoCheck {
  ok: boolean;
  text: string;
}

export interface DemoReport {
  endpoint: string;
  users: DemoUserReport[];
  audit: { usersScanned: number; findings: Record<string, number>; iamCalls: number };
  consumer: { userName: string; calls: number; failures: number } | null;
  /** What the demo read back from the emulator after the run. */
  checks: DemoCheck[];
  /** The audit's findings as the report files show them (key ids masked, as everywhere in the demo). */
  auditReport: ReportInput;
  /** The run across the accounts of the demo's organization (cli/demo-organization.ts). */
  acrossAccounts: AcrossAccountsReport;
  seconds: { total: number; rotations: number };
}

export interface DemoOptions {
  /** A moto server with a movable clock (fresh) to seed. @default one started (and stopped) here */
  emulator?: MotoClockServer;
  /** The Python with moto[server]. @default 'python3' */
  python?: string;
  /** @default loadDefinitionAsync() (synthesizes when cdk.out is missing or stale) */
  definition?: LoadedDefinition;
  /** Progress lines (the CLI writes them to stderr). */
  log?: (line: string) => void;
  paint?: Paint;
  /** Aborting stops the emulator (and a running synth) and makes runDemo reject with DemoInterrupted. */
  signal?: AbortSignal;
  /** Rotations run this many at a time. @default 3 */
  concurrency?: number;
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoReport> {
  const started = Date.now();
  const paint = options.paint ?? plain;
  const elapsed = () => `[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s]`;
  const log = (line: string) => options.log?.(`${paint('dim', elapsed())} ${line}`);
  const { signal } = options;
  const checkAborted = () => {
    if (signal?.aborted) throw new DemoInterrupted();
  };

  let emulator = options.emulator;
  const ownEmulator = emulator === undefined;
  if (ownEmulator) {
    const problem = motoProblem(options.python);
    if (problem) throw new DemoPrerequisiteError(problem);
  }
  // What was started, stopped in reverse order. Steps pushed while a stop is under way (an
  // emulator that came up just after Ctrl-C) are stopped too: each call drains after the last.
  const cleanup: Array<() => Promise<void> | void> = [];
  let stopped: Promise<void> = Promise.resolve();
  const stopAll = () => {
    stopped = stopped.then(async () => {
      for (let step = cleanup.pop(); step; step = cleanup.pop()) {
        try {
          await step();
        } catch {
          // Best effort: every other step must still run.
        }
      }
    });
    return stopped;
  };
  const onAbort = () => void stopAll();
  signal?.addEventListener('abort', onAbort, { once: true });

  try {
    checkAborted();
    // The synth (15-60 s on a fresh clone) and the emulator start together.
    if (ownEmulator) log(`Starting the AWS emulator (moto, 127.0.0.1 only, with a movable clock)`);
    const [definitionResult, emulatorResult] = await Promise.allSettled([
      options.definition ??
        loadDefinitionAsync({ log, ...(signal ? { signal } : {}) }).then((d) => {
          log(
            'State machine definition extracted from the synthesized template; every Task bound to its handler',
          );
          return d;
        }),
      emulator ??
        startMotoWithClock(options.python ? { python: options.python } : {}).then((server) => {
          // An exit hook too: if anything ends the process abruptly, the emulator goes with it.
          const killOnExit = () => {
            try {
              process.kill(server.pid, 'SIGTERM');
            } catch {
              // Already stopped.
            }
          };
          process.once('exit', killOnExit);
          cleanup.push(async () => {
            await server.stop();
            process.removeListener('exit', killOnExit);
            log(`Emulator stopped (pid ${server.pid})`);
          });
          log(`Emulator up at ${server.endpoint} (pid ${server.pid})`);
          return server;
        }),
    ]);
    checkAborted();
    if (emulatorResult.status === 'rejected') throw emulatorResult.reason;
    if (definitionResult.status === 'rejected') throw definitionResult.reason;
    emulator = emulatorResult.value;
    const definition = definitionResult.value;
    const { endpoint } = emulator;

    // 1. The account, made while request signing is off (moto's default).
    const bootstrap = new IAMClient({ endpoint, region: REGION, credentials: ANYBODY, maxAttempts: 3 });
    cleanup.push(() => bootstrap.destroy());
    const admin = await createAdmin(bootstrap);
    // The organization: the hub is its management account; each member gets its administrator
    // now (signing still off) and its member secrets key.
    const organization = await seedOrganization({
      endpoint,
      region: REGION,
      admin,
      members: DEMO_MEMBERS.map((m) => ({ name: m.name })),
      secrets: 'member',
    });
    cleanup.push(() => organization.close());
    const config = {
      ...DEMO_CONFIG,
      organization: {
        organizationId: organization.organizationId,
        stackSetTargets: [organization.rootId],
        stackSetRegions: [REGION],
      },
    };
    // The in-process synth of the templates for the demo's configuration (the hub's and the member
    // stack's), which the roles come from, runs while the accounts are seeded. The emulator does
    // not implement ListServiceSpecificCredentials: the demo audits access keys.
    const templateConfig = { ...config, auditServiceCredentials: false };
    const templates = Promise.all([
      synthesizeTemplate(templateConfig),
      synthesizeMemberTemplate(templateConfig),
    ]);
    // Awaited below; this keeps a failure before then from being reported as unhandled.
    templates.catch(() => {});
    const seeded = await seedAccount(emulator, bootstrap, DEMO_USERS);
    const oldest = Math.max(...DEMO_USERS.flatMap((u) => u.keys.map((k) => k.createdDaysAgo)));
    log(
      `Seeded ${DEMO_USERS.length} IAM users with ${seeded.length} access keys, back-dated up to ${oldest} days ` +
        'by moving the emulator clock',
    );
    await emulator.enableAuth();
    log(`Request signing is on: every call is checked as in a real account (the demo runs as ${DEMO_ADMIN})`);
    // Each member's users, made as its administrator (with signing on, a key acts in its own account).
    const memberSeeds = new Map<string, SeededKey[]>();
    for (const [index, spec] of DEMO_MEMBERS.entries()) {
      const member = organization.members[index];
      if (member) memberSeeds.set(member.accountId, await seedAccount(emulator, member.iam, spec.users));
    }
    log(
      `Organization ${organization.organizationId}: the hub ${organization.hub.accountId} is its management account; ` +
        organization.members
          .map((m, i) => `${m.name} ${m.accountId} (${DEMO_MEMBERS[i]?.users.length ?? 0} users)`)
          .join(', '),
    );
    checkAborted();

    // 2. Handlers and the demo's own clients reach the emulator through the SDK's default chain.
    const restoreEnv = pointSdkAt(endpoint, admin);
    cleanup.push(restoreEnv);
    // Handlers log JSON at WARN and above (rotate's default): a rollback or a crash still shows.
    const env = await prepareLocalEnv({ config, source: {}, log: () => {} });
    log('Local resources ready: SNS topic rekey-local, DynamoDB lock table, KMS key alias/rekey-local');

    const clients = { endpoint, region: REGION, credentials: admin, maxAttempts: 3 };
    const iam = new IAMClient(clients);
    const sts = new STSClient(clients);
    const secrets = new SecretsManagerClient(clients);
    // The audit's own IAM client, signing as the invocation it runs in (the audit's role below).
    const auditIam = new IAMClient({ ...clients, credentials: invocationCredentials });
    bindToInvocations(auditIam, 'iam');
    cleanup.push(() => {
      for (const client of [iam, sts, secrets, auditIam]) client.destroy();
    });

    // Every Lambda, the audit included, runs as its deployed role: the stack's template for the
    // demo's configuration, each role made in the emulator (the admin only sets up and reads back).
    const [[template, memberTemplate], emulatorRoles] = await Promise.all([
      templates,
      connectEmulator({ iam, sts }, REGION, organization.emulatorOrganization()),
    ]);
    const roles = deployedRoles(emulatorRoles, { template, env, memberTemplate });
    const memberRoles = await organization.installMemberRoles(roles);
    log(
      `Each of the ${roles.roles.length} Lambdas runs as its deployed role (from the synthesized template), ` +
        'checked call by call: a step can do here only what it can do in AWS',
    );
    log(
      `Member roles from the synthesized member template: ${memberRoles.length / organization.members.length} ` +
        `in each member account (${env.REKEY_MEMBER_ROLE_PREFIX}<lambda>)`,
    );
    checkAborted();

    // 3. The audit: the credential report, scanned exactly as `rekey audit` and the Lambda do.
    const policy = auditPolicyFromEnv(
      loadEnv(AUDIT_POLICY_ENV, { ...env, REKEY_AUDIT_SERVICE_CREDENTIALS: 'false' }),
    );
    const calls = new CallCounter();
    const asAudit = await roles.contextFor('audit');
    const scan = await runInInvocation(asAudit, () =>
      scanAccount({ iam: auditIam, clock: systemClock, calls }, policy),
    );
    const counts = Object.fromEntries(
      [...new Set(scan.findings.map((f) => f.type))].map((t) => [
        t,
        scan.findings.filter((f) => f.type === t).length,
      ]),
    );
    log(
      `Audit (the scan of \`rekey audit\`): ${scan.usersScanned} users, ${scan.findings.length} findings ` +
        `(${Object.entries(counts)
          .map(([t, n]) => `${t} ${n}`)
          .join(', ')}) in ${calls.total} IAM calls`,
    );
    for (const line of tableLines(scan.findings.map(masked))) log(`  ${line}`);
    checkAborted();

    // 4. The audit's decisions: which OLD_KEY findings it may rotate (exempt, protected, two active keys are refused).
    const requests: RotationRequest[] = [];
    const actions = await runInInvocation(asAudit, () =>
      applyActions(
        {
          iam: auditIam,
          clock: systemClock,
          calls,
          starter: {
            start: async (request) => {
              requests.push(request);
              // Each demo runs in a fresh emulator: no earlier attempt to look at, always attempt 1.
              return firstAttemptStarted(request, `local:${request.executionName}`);
            },
          },
        },
        scan.findings,
        scan.users,
        policy,
        { dryRun: false },
      ),
    );
    const refused = actions.filter((a) => a.status === 'SKIPPED');
    log(
      `Audit decisions: rotate ${requests.length} user(s); refused ${[
        ...new Set(refused.map((a) => a.userName)),
      ]
        .map((u) => `${u} (${refused.find((a) => a.userName === u)?.detail})`)
        .join(', ')}`,
    );

    // 5. The rotations, through the synthesized state machine, waits compressed to 0 s.
    const concurrency = options.concurrency ?? 3;
    log(
      `Rotating ${requests.length} users through the local state machine, ${concurrency} at a time; ` +
        `its waits take 0 s here (in AWS: ${describeWaits(definition)})`,
    );
    const runs = new Map<string, RotationResult>();
    let consumerStats: DemoReport['consumer'] = null;
    const rotationsStarted = Date.now();
    await pool(requests, concurrency, async (request) => {
      checkAborted();
      const t0 = Date.now();
      let consumer: Consumer | undefined;
      const handlers: Record<string, TaskOverride> = {};
      if (request.userName === CONSUMER_USER) {
        const key = seeded.find((k) => k.userName === CONSUMER_USER && k.accessKeyId === request.accessKeyId);
        if (key) {
          consumer = startConsumer(endpoint, key, CONSUMER_INTERVAL_MS);
          log(
            `${CONSUMER_USER}: its application keeps calling sts:GetCallerIdentity with the old key ` +
              `${maskKeyId(key.accessKeyId)} every ${CONSUMER_INTERVAL_MS} ms, whatever rekey does`,
          );
          handlers['check-last-used'] = consumerAwareCheck(consumer, log);
        }
      }
      let result: RotationResult;
      try {
        result = await runRotation({
          input: { userName: request.userName, reason: request.reason },
          definition: definition.definition,
          bindings: definition.bindings,
          env,
          noWait: true,
          executionName: request.executionName,
          handlers,
          roles,
        });
      } finally {
        if (consumer) {
          const stats = await consumer.stop();
          consumerStats = { userName: CONSUMER_USER, calls: stats.calls, failures: stats.failures };
          log(
            `${CONSUMER_USER}: its application made ${stats.calls} signed calls with the old key during the rotation, ` +
              `${stats.failures} failed${stats.lastError ? ` (last error ${stats.lastError})` : ''}`,
          );
        }
      }
      runs.set(request.userName, result);
      log(
        `${progressMark(result, paint)} ${request.userName}: ${describeRun(result)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
      );
    });
    const rotationSeconds = (Date.now() - rotationsStarted) / 1000;
    checkAborted();

    // 6. The report, and what the emulator says now.
    const users = DEMO_USERS.map((spec) => userReport(spec, scan.findings, actions, runs.get(spec.userName)));
    const checks = await verifyInEmulator(
      { iam, secrets, prefix: env.REKEY_SECRET_PREFIX ?? 'rekey/' },
      users,
      seeded,
      consumerStats,
    );
    for (const check of checks) log(`${check.ok ? paint('green', '✓') : paint('red', '✗')} ${check.text}`);
    checkAborted();

    // 7. The same job across the organization's accounts.
    const organizations = new OrganizationsClient(clients);
    cleanup.push(() => organizations.destroy());
    const acrossAccounts = await runAcrossAccounts({
      organizationId: organization.organizationId,
      hub: organization.hub,
      members: organization.members,
      seeded: memberSeeds,
      organizations,
      sts,
      iamClient: (credentials) => new IAMClient({ ...clients, credentials }),
      definition,
      env,
      roles,
      concurrency,
      log,
      paint,
      checkAborted,
      describeRun,
      progressMark: (result) => progressMark(result, paint),
      stopWords: STOP_WORDS,
      keyIdAt,
    });
    return {
      endpoint,
      users,
      audit: { usersScanned: scan.usersScanned, findings: counts, iamCalls: calls.total },
      consumer: consumerStats,
      checks,
      auditReport: {
        findings: scan.findings.map(masked),
        thresholds: policy.thresholds,
        auditedAt: scan.auditedAt,
        accountIds: scan.accountId ? [scan.accountId] : [],
      },
      acrossAccounts,
      seconds: { total: (Date.now() - started) / 1000, rotations: rotationSeconds },
    };
  } catch (error) {
    if (signal?.aborted) throw new DemoInterrupted();
    throw error;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await stopAll();
  }
}

/** Accepted by moto while request signing is off; never valid once it is on. */
const ANYBODY: Credentials = { accessKeyId: 'AKIADEMOBOOTSTRAP000', secretAccessKey: 'bootstrap' };

/**
 * Points the SDK's default chain at the emulator as the admin; returns the function that puts the
 * previous environment back. A profile, session token or service-specific endpoint left in the
 * shell must not leak into emulator requests (nor real credentials into the emulator's logs).
 */
function pointSdkAt(endpoint: string, credentials: Credentials): () => void {
  const values: Record<string, string | undefined> = {
    AWS_ENDPOINT_URL: endpoint,
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: undefined,
  };
  for (const key of Object.keys(process.env))
    if (key.startsWith('AWS_ENDPOINT_URL_')) values[key] = undefined;
  const saved = Object.keys(values).map((key) => [key, process.env[key]] as const);
  const set = (key: string, value: string | undefined) => {
    if (value === undefined) Reflect.deleteProperty(process.env, key);
    else process.env[key] = value;
  };
  for (const [key, value] of Object.entries(values)) set(key, value);
  return () => {
    for (const [key, value] of saved) set(key, value);
  };
}

/**
 * The consumer's rotation: each adoption check first waits for the application's next call with
 * the old key. In AWS the check comes after days of waiting, in which such an application calls
 * many times; here the wait is 0 s, so the demo makes sure at least one call falls inside it.
 */
function consumerAwareCheck(consumer: Consumer, log: (line: string) => void): TaskOverride {
  return async (input, invoke) => {
    await consumer.nextCall();
    const output = await invoke(input);
    const adoption = output as {
      checks?: number;
      inUse?: boolean;
      lastUsedDate?: string | null;
      mayWaitAgain?: boolean;
    };
    const when = adoption.lastUsedDate ? adoption.lastUsedDate.slice(11, 19) : 'never';
    log(
      `${CONSUMER_USER}: adoption check ${adoption.checks}: old key last used at ${when} UTC, ` +
        (adoption.inUse
          ? `after it had to be quiet (the hand-out, or the last check that found it used): still in use${adoption.mayWaitAgain ? ', wait and check again' : ''}`
          : 'before it had to be quiet: safe to deactivate'),
    );
    return output;
  };
}

/** `Wait for consumers to adopt the new key 7 days, ...`: the Wait states of the definition. */
function describeWaits({ definition }: LoadedDefinition): string {
  const waits: string[] = [];
  walkStates(definition, (name, state) => {
    if (state.Type === 'Wait' && state.Seconds !== undefined)
      waits.push(`"${name}" ${humanDuration(state.Seconds)}`);
  });
  return waits.join(', ') || 'none';
}

function masked(f: Finding): Finding {
  return { ...f, accessKeyId: f.accessKeyId ? maskKeyId(f.accessKeyId) : null };
}

function progressMark(result: RotationResult, paint: Paint): string {
  const status = outcomeOf(result.status === 'SUCCEEDED' ? result.output : undefined)?.status;
  if (status === 'ROTATED') return paint('green', '✓');
  if (status === 'STOPPED') return paint('yellow', '■');
  return paint('red', '✗');
}

const STOP_WORDS: Record<string, string> = {
  OldKeyStillInUse: 'old key still in use',
  TwoActiveKeys: 'two active keys',
  UserExempt: 'exempt',
  UserProtected: 'protected user',
  RotationInProgress: 'another rotation in progress',
  NoAccessKeys: 'no access keys',
  NoActiveKey: 'no active key',
};

function keyIdAt(document: unknown, field: 'oldKey' | 'newKey' | 'extraKey'): string | null {
  if (typeof document !== 'object' || document === null) return null;
  const key = (document as Record<string, unknown>)[field];
  if (typeof key !== 'object' || key === null) return null;
  const id = (key as { accessKeyId?: unknown }).accessKeyId;
  return typeof id === 'string' ? id : null;
}

function describeRun(result: RotationResult): string {
  const document = finalDocument(result);
  const outcome = outcomeOf(document);
  const oldKey = keyIdAt(document, 'oldKey');
  const newKey = keyIdAt(document, 'newKey');
  const keys = oldKey && newKey ? ` ${maskKeyId(oldKey)} → ${maskKeyId(newKey)}` : '';
  if (result.status === 'SUCCEEDED' && outcome?.status === 'ROTATED') {
    const extra = keyIdAt(document, 'extraKey');
    return `rotated${keys}${extra ? ` (first removed the unused inactive key ${maskKeyId(extra)})` : ''}`;
  }
  if (result.status === 'SUCCEEDED' && outcome?.status === 'STOPPED') {
    const why = STOP_WORDS[outcome.reason ?? ''] ?? outcome.reason ?? 'stopped';
    const both =
      oldKey && newKey
        ? `; both keys stay active (old ${maskKeyId(oldKey)}, new ${maskKeyId(newKey)}), the secret holds the new one`
        : '';
    return `stopped safely: ${why}${both}`;
  }
  return `failed: ${result.error ?? outcome?.status ?? 'unknown'}${result.lastState ? ` at "${result.lastState}"` : ''}`;
}

function userReport(
  spec: DemoUserSpec,
  findings: readonly Finding[],
  actions: readonly ActionOutcome[],
  run: RotationResult | undefined,
): DemoUserReport {
  const own = findings.filter((f) => f.userName === spec.userName);
  const base = {
    userName: spec.userName,
    story: spec.story,
    findings: own.map((f) => ({ type: f.type, ageDays: f.ageDays, accessKeyId: f.accessKeyId })),
    executionName: null,
    newKeyId: null,
  };
  const oldest = own.find((f) => f.type === 'OLD_KEY') ?? own[0];
  if (run) {
    const document = finalDocument(run);
    const outcome = outcomeOf(document);
    const extra = keyIdAt(document, 'extraKey');
    const rotated = run.status === 'SUCCEEDED' && outcome?.status === 'ROTATED';
    const stopped = run.status === 'SUCCEEDED' && outcome?.status === 'STOPPED';
    return {
      ...base,
      action: extra ? 'rotation (unused inactive key removed first)' : 'rotation',
      oldKeyId: keyIdAt(document, 'oldKey'),
      newKeyId: keyIdAt(document, 'newKey'),
      outcome: rotated ? 'rotated' : stopped ? 'stopped safely' : 'failed',
      why: rotated
        ? null
        : stopped
          ? (STOP_WORDS[outcome?.reason ?? ''] ?? outcome?.reason ?? null)
          : `${run.error ?? 'unknown error'}${run.lastState ? ` at "${run.lastState}"` : ''}`,
      executionName: run.executionName,
    };
  }
  const refusal = actions.find((a) => a.userName === spec.userName && a.status === 'SKIPPED');
  if (refusal) {
    return {
      ...base,
      action: 'none: refused by the audit',
      oldKeyId: oldest?.accessKeyId ?? null,
      outcome: 'refused',
      why: refusal.detail.startsWith('two active keys')
        ? 'two active keys: a human must pick one'
        : refusal.detail,
    };
  }
  if (own.length > 0) {
    return {
      ...base,
      action: 'none: alert only',
      oldKeyId: oldest?.accessKeyId ?? null,
      outcome: 'reported',
      why: null,
    };
  }
  return { ...base, action: 'none', oldKeyId: null, outcome: 'nothing to do', why: null };
}

interface VerifyDeps {
  iam: IAMClient;
  secrets: SecretsManagerClient;
  prefix: string;
}

/** What the emulator holds after the run, checked against what each outcome promises. */
async function verifyInEmulator(
  deps: VerifyDeps,
  users: readonly DemoUserReport[],
  seeded: readonly SeededKey[],
  consumer: DemoReport['consumer'],
): Promise<DemoCheck[]> {
  const keysOf = async (userName: string) =>
    ((await deps.iam.send(new ListAccessKeysCommand({ UserName: userName }))).AccessKeyMetadata ?? []).map(
      (k) => `${k.AccessKeyId}:${k.Status}`,
    );
  const currentKeyId = async (userName: string): Promise<string | null> => {
    try {
      const out = await deps.secrets.send(
        new GetSecretValueCommand({ SecretId: `${deps.prefix}${userName}`, VersionStage: 'AWSCURRENT' }),
      );
      return (JSON.parse(out.SecretString ?? '{}') as { AccessKeyId?: string }).AccessKeyId ?? null;
    } catch (error) {
      if (error instanceof ResourceNotFoundException) return null;
      throw error;
    }
  };
  const seededKeys = (userName: string) =>
    seeded
      .filter((k) => k.userName === userName)
      .map((k) => `${k.accessKeyId}:${k.status}`)
      .sort();

  const rotated = users.filter((u) => u.outcome === 'rotated');
  let rotatedOk = 0;
  for (const u of rotated) {
    const keys = await keysOf(u.userName);
    if (
      keys.length === 1 &&
      keys[0] === `${u.newKeyId}:Active` &&
      (await currentKeyId(u.userName)) === u.newKeyId
    )
      rotatedOk++;
  }
  const stopped = users.filter(
    (u) => u.outcome === 'stopped safely' && u.why === STOP_WORDS.OldKeyStillInUse,
  );
  let stoppedOk = 0;
  for (const u of stopped) {
    const keys = (await keysOf(u.userName)).sort();
    const expected = [`${u.oldKeyId}:Active`, `${u.newKeyId}:Active`].sort();
    if (JSON.stringify(keys) === JSON.stringify(expected) && (await currentKeyId(u.userName)) === u.newKeyId)
      stoppedOk++;
  }
  const untouched = async (u: DemoUserReport) =>
    JSON.stringify((await keysOf(u.userName)).sort()) === JSON.stringify(seededKeys(u.userName)) &&
    (await currentKeyId(u.userName)) === null;
  const refused = users.filter((u) => u.outcome === 'refused');
  let refusedOk = 0;
  for (const u of refused) if (await untouched(u)) refusedOk++;
  const others = users.filter((u) => u.outcome === 'reported' || u.outcome === 'nothing to do');
  let othersOk = 0;
  for (const u of others) if (await untouched(u)) othersOk++;
  const failed = users.filter((u) => u.outcome === 'failed');

  const checks: DemoCheck[] = [
    {
      ok: rotated.length > 0 && rotatedOk === rotated.length,
      text: `${rotatedOk} of ${rotated.length} rotated users have exactly one key, the new one, active, and AWSCURRENT holds it`,
    },
    {
      ok: stopped.length > 0 && stoppedOk === stopped.length && (consumer?.failures ?? 1) === 0,
      text:
        `${stoppedOk} of ${stopped.length} user(s) whose old key stayed in use kept both keys active (AWSCURRENT holds ` +
        `the new one); the consumer made ${consumer?.calls ?? 0} calls, ${consumer?.failures ?? 0} failed`,
    },
    {
      ok: refused.some((u) => u.why?.startsWith('two active keys')) && refusedOk === refused.length,
      text: `${refusedOk} of ${refused.length} refused users (two active keys, exempt, protected) are untouched: same keys, same status, no secret`,
    },
    {
      ok: othersOk === others.length,
      text: `${othersOk} of ${others.length} users without a due rotation are untouched`,
    },
    { ok: failed.length === 0, text: `${failed.length} rotation(s) failed` },
  ];
  return checks;
}
