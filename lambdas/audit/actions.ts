/**
 * What the audit does about its findings.
 *
 * - OLD_KEY with autoRotate: start the rotation state machine for the user, with an execution
 *   name derived from the user and the key. Step Functions keeps a name unique per state machine
 *   for 90 days, so a schedule that fires twice, or two audits on one day, start nothing twice:
 *   the second start finds the execution and reports it as already started (running or done).
 * - Retries: an attempt that ended FAILED, ABORTED or TIMED_OUT is followed, at the next run, by
 *   attempt n under `<first attempt's name>-<n>`, up to maxRotationAttempts. When that many have
 *   ended so, the rotation is given up: reported as still failing at every run, never started
 *   again by the audit.
 * - At most maxRotationsPerRun starts per run, new rotations and retries alike: a retry is one
 *   more execution touching one more user's keys, exactly like a first start. Already started and
 *   given-up ones do not count. The oldest keys go first; once the limit is reached the rest are
 *   not looked up.
 * - UNUSED_KEY: an alert only, unless the opt-in policy deactivates active keys idle for longer
 *   than deactivateUnusedAfterDays (strictly longer). Before deactivating, the key's last use is
 *   re-read live (the report can be hours old) and a key used since is left alone. A deactivated
 *   key is not also rotated: minting a new key for a user whose key nobody uses defeats the
 *   point. At most maxRotationsPerRun deactivations per run as well.
 * - Never: protected users, users outside the configured path or without the opt-in tag, users
 *   with a valid exemption, the root user. These are reported as skipped with the reason.
 * - TWO_ACTIVE_KEYS: an OLD_KEY of such a user is not rotated (the workflow would stop with
 *   TwoActiveKeys); the alert asks for a human. Counted per kind: two active access keys do not
 *   hold back the rotation of a Keyspaces credential, nor two CodeCommit credentials a key's.
 * - Service-specific credentials: an OLD_KEY one is rotated like a key (the input names its
 *   serviceName; the same limit per run, the same refusals). Never deactivated as unused: IAM
 *   records no last use for them, so they never have UNUSED_KEY findings, and the policy refuses
 *   one anyway.
 */
import { createHash } from 'node:crypto';
import { type IAMClient, UpdateAccessKeyCommand } from '@aws-sdk/client-iam';
import { DescribeExecutionCommand, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { MAX_ROTATION_ATTEMPTS } from '../../contract/env.ts';
import type { ServiceName } from '../../contract/schemas.ts';
import type { Clock } from '../shared/clock.ts';
import { getLastUse } from '../shared/keys.ts';
import type { CallCounter } from './calls.ts';
import { credentialIdOf, type Finding, isActiveExemption, type UserDetail, wholeDays } from './findings.ts';

export interface ActionPolicy {
  autoRotate: boolean;
  maxRotationsPerRun: number;
  /** Executions started for one old key, at most, before its rotation is given up. */
  maxRotationAttempts: number;
  deactivateUnused: boolean;
  deactivateUnusedAfterDays: number;
  protectedUsers: readonly string[];
  userPathPrefix: string;
  optInTag?: string | undefined;
}

export interface RotationRequest {
  executionName: string;
  userName: string;
  /** A member account's user (the organization audit): the account, also in the execution input. */
  accountId?: string;
  /** The old access key; null when a service-specific credential is rotated. */
  accessKeyId: string | null;
  /** A service-specific credential's rotation: its service (also in the execution input)... */
  serviceName?: ServiceName;
  /** ...and its id. */
  serviceSpecificCredentialId?: string;
  /**
   * `audit: OLD_KEY <keyId> <ageDays> days` (a service credential: `audit: OLD_KEY <serviceName>
   * <credentialId> <ageDays> days`): kept with the execution and in its notifications.
   */
  reason: string;
  /**
   * How many attempts to make in all: executionName is attempt 1, attempt n is
   * `<executionName>-<n>` (attemptName).
   */
  maxAttempts: number;
}

/** How an attempt ended when the audit tries again: it neither rotated nor stopped on purpose. */
export const RETRIED_STATUSES = ['FAILED', 'ABORTED', 'TIMED_OUT'] as const;
export type RetriedStatus = (typeof RETRIED_STATUSES)[number];

export interface FailedAttempt {
  attempt: number;
  executionName: string;
  executionArn: string;
  status: RetriedStatus;
  /** The execution's error name (FAILED only, e.g. `States.TaskFailed`); its cause stays in Step Functions. */
  error: string | null;
  /** When it ended (ISO date-time), as Step Functions reports it. */
  stopDate: string | null;
}

export interface StartResult {
  /**
   * STARTED: attempt 1 was started. RETRIED: a later attempt was started because the ones before
   * it failed. ALREADY_STARTED: an attempt is running or succeeded. GIVEN_UP: maxAttempts attempts
   * failed; nothing was started.
   */
  status: 'STARTED' | 'RETRIED' | 'ALREADY_STARTED' | 'GIVEN_UP';
  /** The attempt started or found; GIVEN_UP: the last one that failed. */
  attempt: number;
  executionName: string;
  executionArn: string;
  /** The attempts that ended FAILED, ABORTED or TIMED_OUT, oldest first (GIVEN_UP: all of them). */
  failedAttempts: FailedAttempt[];
}

/** Starts rotations: Step Functions in the Lambda; something else (or nothing) elsewhere. */
export interface RotationStarter {
  start(request: RotationRequest): Promise<StartResult>;
}

/** The answer of a starter that has no earlier attempts to look at and starts attempt 1. */
export const firstAttemptStarted = (request: RotationRequest, executionArn: string): StartResult => ({
  status: 'STARTED',
  attempt: 1,
  executionName: request.executionName,
  executionArn,
  failedAttempts: [],
});

/** Step Functions' name rule: 1-80 of letters, digits, `-` and `_`. */
export const EXECUTION_NAME = /^[A-Za-z0-9_-]{1,80}$/;
const PREFIX = 'rekey-';
const MAX_NAME = 80;
/** The first attempt's name leaves room for the `-<n>` of every later attempt. */
const MAX_FIRST_NAME = MAX_NAME - 1 - String(MAX_ROTATION_ATTEMPTS).length;
const HASH_CHARS = 8;

/**
 * `rekey-<user>-<credentialId>` (a member account's user: `rekey-<accountId>-<user>-<credentialId>`),
 * then `-<attempt>` from attempt 2 on: deterministic per user,
 * credential and attempt, where the credential is an access key (its id) or a service-specific
 * credential (its ServiceSpecificCredentialId, unique in the account like a key id, so the service
 * need not be in the name). IAM user names may hold `+=,.@`, which execution names may not: they
 * become `_`, and then a short hash of the raw name is appended so `a.b` and `a_b` can never share
 * a name. Long names are cut (with the hash) so that every attempt's name fits 80 characters;
 * the credential id (16-128 characters, real ones 20-21) is kept whole up to 62. A credential id
 * has no `-` and at least 16 characters, so the `-<n>` of an attempt never makes another key's name.
 */
export function executionNameFor(
  userName: string,
  credentialId: string,
  attempt = 1,
  memberAccountId?: string,
): string {
  const prefix = memberAccountId ? `${PREFIX}${memberAccountId}-` : PREFIX;
  const key = credentialId
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, MAX_FIRST_NAME - prefix.length - 2 - HASH_CHARS);
  const room = MAX_FIRST_NAME - prefix.length - 1 - key.length;
  const sanitized = userName.replace(/[^A-Za-z0-9_-]/g, '_');
  let user = sanitized;
  if (sanitized !== userName || sanitized.length > room) {
    const hash = createHash('sha256').update(userName, 'utf8').digest('hex').slice(0, HASH_CHARS);
    user = `${sanitized.slice(0, room - HASH_CHARS - 1)}-${hash}`;
  }
  return attemptName(`${prefix}${user}-${key}`, attempt);
}

/** Attempt n of the rotation whose first attempt is named `first`: `first`, then `first-<n>`. */
export function attemptName(first: string, attempt: number): string {
  if (!Number.isInteger(attempt) || attempt < 1 || attempt > MAX_ROTATION_ATTEMPTS)
    throw new RangeError(`a rotation attempt is 1 to ${MAX_ROTATION_ATTEMPTS}, not ${attempt}`);
  return attempt === 1 ? first : `${first}-${attempt}`;
}

export function rotationReason(
  f: Pick<Finding, 'accessKeyId' | 'ageDays' | 'serviceName' | 'serviceSpecificCredentialId'>,
): string {
  const service = f.serviceName ? `${f.serviceName} ` : '';
  return `audit: OLD_KEY ${service}${credentialIdOf(f)} ${f.ageDays} days`;
}

/** The execution ARN a name gets: `arn:...:execution:<state machine name>:<execution name>`. */
export function executionArnFor(stateMachineArn: string, executionName: string): string {
  return `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${executionName}`;
}

/** The state machine an execution ARN belongs to (executionArnFor, the other way). */
export function stateMachineArnOf(executionArn: string): string {
  return executionArn.replace(':execution:', ':stateMachine:').replace(/:[^:]*$/, '');
}

/**
 * The rotation state machine as the Lambda starts it. It reads the attempts in order
 * (DescribeExecution on each deterministic ARN) and acts on the first one that did not fail:
 * - none of that name: start it. Asking first matters because StartExecution answers a repeated
 *   name with the same input by returning the running execution as if it were new.
 * - RUNNING, PENDING_REDRIVE (someone redrove it) or SUCCEEDED (rotated, or stopped safely after
 *   its alert): already started, nothing to do.
 * - FAILED, ABORTED or TIMED_OUT: on to the next attempt; when request.maxAttempts attempts all
 *   ended so, give up.
 * A status this code does not know counts as started: a second rotation started on a guess is
 * worse than one that waits for a human. ExecutionAlreadyExists on the start (a race with another
 * audit) also means already started. Step Functions forgets an execution 90 days after it ended,
 * so a rotation given up that long ago is tried again from attempt 1.
 */
export class SfnRotationStarter implements RotationStarter {
  constructor(
    private readonly sfn: SFNClient,
    private readonly stateMachineArn: string,
  ) {}

  async start(request: RotationRequest): Promise<StartResult> {
    const { maxAttempts } = request;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > MAX_ROTATION_ATTEMPTS)
      throw new RangeError(`maxAttempts is 1 to ${MAX_ROTATION_ATTEMPTS}, not ${maxAttempts}`);
    const failedAttempts: FailedAttempt[] = [];
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const executionName = attemptName(request.executionName, attempt);
      const executionArn = executionArnFor(this.stateMachineArn, executionName);
      const here = { attempt, executionName, executionArn };
      const found = await this.describe(executionArn);
      if (!found) return this.startAttempt(request, here, failedAttempts);
      if (!isRetried(found.status)) return { status: 'ALREADY_STARTED', ...here, failedAttempts };
      failedAttempts.push({
        ...here,
        status: found.status,
        // An empty error name (some emulators send one for a stop) is no error name.
        error: found.error || null,
        stopDate: found.stopDate?.toISOString() ?? null,
      });
    }
    // maxAttempts >= 1 attempts were read and every one of them failed.
    const last = failedAttempts.at(-1) as FailedAttempt;
    return {
      status: 'GIVEN_UP',
      attempt: last.attempt,
      executionName: last.executionName,
      executionArn: last.executionArn,
      failedAttempts,
    };
  }

  /** The execution of that ARN, or null when Step Functions has none (never started, or forgotten). */
  private async describe(executionArn: string) {
    try {
      return await this.sfn.send(new DescribeExecutionCommand({ executionArn }));
    } catch (error) {
      if (error instanceof Error && error.name === 'ExecutionDoesNotExist') return null;
      throw error;
    }
  }

  private async startAttempt(
    request: RotationRequest,
    here: Pick<StartResult, 'attempt' | 'executionName' | 'executionArn'>,
    failedAttempts: FailedAttempt[],
  ): Promise<StartResult> {
    // A retry says which attempt it is in its reason, which the rotation keeps with the
    // execution and repeats in its notifications.
    const reason =
      here.attempt === 1
        ? request.reason
        : `${request.reason}, attempt ${here.attempt} of ${request.maxAttempts}`;
    try {
      const out = await this.sfn.send(
        new StartExecutionCommand({
          stateMachineArn: this.stateMachineArn,
          name: here.executionName,
          input: JSON.stringify({
            ...(request.accountId ? { accountId: request.accountId } : {}),
            userName: request.userName,
            ...(request.serviceName ? { serviceName: request.serviceName } : {}),
            reason,
          }),
        }),
      );
      return {
        status: here.attempt === 1 ? 'STARTED' : 'RETRIED',
        ...here,
        executionArn: out.executionArn ?? here.executionArn,
        failedAttempts,
      };
    } catch (error) {
      if (error instanceof Error && error.name === 'ExecutionAlreadyExists')
        return { status: 'ALREADY_STARTED', ...here, failedAttempts };
      throw error;
    }
  }
}

const isRetried = (status: string | undefined): status is RetriedStatus =>
  (RETRIED_STATUSES as readonly (string | undefined)[]).includes(status);

export type ActionStatus =
  | 'STARTED'
  | 'RETRIED'
  | 'ALREADY_STARTED'
  | 'GIVEN_UP'
  | 'DEACTIVATED'
  | 'WOULD_START'
  | 'WOULD_DEACTIVATE'
  | 'SKIPPED'
  | 'FAILED';

export interface ActionOutcome {
  kind: 'ROTATION' | 'DEACTIVATION';
  status: ActionStatus;
  /** The organization audit's account (its findings carry the same); absent in a single-account audit. */
  accountId?: string;
  userName: string;
  /** The access key acted on; null for the root user's and a service credential's. */
  accessKeyId: string | null;
  /** A service-specific credential's action: its service and id. */
  serviceName?: ServiceName;
  serviceSpecificCredentialId?: string;
  /** Why it was skipped or failed, or what was done: for the digest and the events. */
  detail: string;
  executionName?: string;
  executionArn?: string;
  /** A rotation the starter handled: the attempt started or found (GIVEN_UP: the last that failed)... */
  attempt?: number;
  /** ...and the attempts that ended FAILED, ABORTED or TIMED_OUT, oldest first. */
  failedAttempts?: readonly FailedAttempt[];
}

/** One failed attempt, as the digest and the details show it. */
export const attemptText = (a: FailedAttempt): string =>
  `${a.executionName} ${a.status}${a.error ? ` (${a.error})` : ''}`;

/** What the starter did, as the outcome's detail. */
function startDetail(result: StartResult, maxAttempts: number): string {
  const of = `attempt ${result.attempt} of ${maxAttempts}`;
  switch (result.status) {
    case 'STARTED':
      return 'rotation started';
    case 'RETRIED': {
      const last = result.failedAttempts.at(-1);
      return `rotation retried: ${of}, after ${last ? attemptText(last) : 'a failed attempt'}`;
    }
    case 'ALREADY_STARTED':
      return result.attempt === 1
        ? 'rotation already started earlier'
        : `rotation already started earlier (${of})`;
    case 'GIVEN_UP':
      return `still failing after ${result.failedAttempts.length} attempts (${result.failedAttempts
        .map((a) => a.status)
        .join(', ')}): not retried again`;
  }
}

/** Why the audit must not act on this finding's user, or null when it may. */
export function refusal(
  f: Finding,
  users: ReadonlyMap<string, UserDetail>,
  policy: ActionPolicy,
): string | null {
  if (f.type === 'ROOT_ACCESS_KEY') return "root user: rekey never touches the root user's keys";
  const lower = f.userName.toLowerCase();
  if (policy.protectedUsers.some((u) => u.toLowerCase() === lower)) return 'protected user';
  const user = users.get(f.userName);
  const path = user?.path ?? '/';
  if (!path.startsWith(policy.userPathPrefix))
    return `out of scope: path ${path} is outside ${policy.userPathPrefix}`;
  if (policy.optInTag && !user?.tags.has(policy.optInTag))
    return `out of scope: no opt-in tag ${policy.optInTag}`;
  if (isActiveExemption(f.exemption)) {
    const until = f.exemption?.until ? ` until ${f.exemption.until.slice(0, 10)}` : '';
    return `exempt${until}: ${f.exemption?.reason}`;
  }
  if (!credentialIdOf(f)) return f.serviceName ? 'credential id unknown' : 'access key id unknown';
  return null;
}

/** Who and what an action is about: the user and the access key, or the service credential. */
function target(
  f: Finding,
): Pick<ActionOutcome, 'userName' | 'accessKeyId' | 'serviceName' | 'serviceSpecificCredentialId'> {
  return {
    userName: f.userName,
    accessKeyId: f.accessKeyId,
    ...(f.serviceName
      ? { serviceName: f.serviceName, serviceSpecificCredentialId: f.serviceSpecificCredentialId as string }
      : {}),
  };
}

export interface ActionDeps {
  iam: IAMClient;
  starter: RotationStarter;
  clock: Clock;
  calls: CallCounter;
}

export async function applyActions(
  deps: ActionDeps,
  findings: readonly Finding[],
  users: ReadonlyMap<string, UserDetail>,
  policy: ActionPolicy,
  options: {
    dryRun: boolean;
    /**
     * The organization audit's account: every outcome carries it; in a member account (`member`)
     * the rotations are also named after it and started with it in their input.
     */
    account?: { accountId: string; member: boolean };
  },
): Promise<ActionOutcome[]> {
  const outcomes: ActionOutcome[] = [];
  const tagged = await decide(deps, findings, users, policy, options);
  const account = options.account;
  if (!account) return tagged;
  for (const o of tagged) outcomes.push({ accountId: account.accountId, ...o });
  return outcomes;
}

async function decide(
  deps: ActionDeps,
  findings: readonly Finding[],
  users: ReadonlyMap<string, UserDetail>,
  policy: ActionPolicy,
  options: { dryRun: boolean; account?: { accountId: string; member: boolean } },
): Promise<ActionOutcome[]> {
  const outcomes: ActionOutcome[] = [];
  const member = options.account?.member ? options.account.accountId : undefined;
  const skip = (kind: ActionOutcome['kind'], f: Finding, detail: string) =>
    outcomes.push({ kind, status: 'SKIPPED', ...target(f), detail });
  const deactivated = new Set<string>();

  // 1. The opt-in deactivation of long-unused keys (before rotations: a deactivated key is not rotated).
  // Access keys only: a service credential's idle time is unknown (and it has no UNUSED_KEY finding).
  if (policy.deactivateUnused) {
    let budget = policy.maxRotationsPerRun;
    const due = findings
      .filter(
        (f): f is Finding & { idleDays: number } =>
          f.type === 'UNUSED_KEY' &&
          !f.serviceName &&
          f.idleDays !== null &&
          f.idleDays > policy.deactivateUnusedAfterDays,
      )
      .sort((a, b) => b.idleDays - a.idleDays || a.userName.localeCompare(b.userName));
    for (const f of due) {
      const why = refusal(f, users, policy);
      if (why) {
        skip('DEACTIVATION', f, why);
        continue;
      }
      const accessKeyId = f.accessKeyId as string;
      if (budget <= 0) {
        skip('DEACTIVATION', f, `limit of ${policy.maxRotationsPerRun} deactivations per run reached`);
        continue;
      }
      // The report may be hours old: a key used since then is not unused.
      deps.calls.add('GetAccessKeyLastUsed');
      const lastUse = await getLastUse(deps.iam, accessKeyId);
      const idle = lastUse.date ? wholeDays(lastUse.date, deps.clock.now()) : f.idleDays;
      if (idle <= policy.deactivateUnusedAfterDays) {
        skip('DEACTIVATION', f, `used since the report was generated (${lastUse.date?.toISOString()})`);
        continue;
      }
      budget--;
      if (options.dryRun) {
        outcomes.push({
          kind: 'DEACTIVATION',
          status: 'WOULD_DEACTIVATE',
          userName: f.userName,
          accessKeyId,
          detail: `would deactivate: unused for ${f.idleDays} days`,
        });
        deactivated.add(accessKeyId);
        continue;
      }
      try {
        deps.calls.add('UpdateAccessKey');
        await deps.iam.send(
          new UpdateAccessKeyCommand({ UserName: f.userName, AccessKeyId: accessKeyId, Status: 'Inactive' }),
        );
        deactivated.add(accessKeyId);
        outcomes.push({
          kind: 'DEACTIVATION',
          status: 'DEACTIVATED',
          userName: f.userName,
          accessKeyId,
          detail: `deactivated: unused for ${f.idleDays} days (policy: more than ${policy.deactivateUnusedAfterDays})`,
        });
      } catch (error) {
        outcomes.push({
          kind: 'DEACTIVATION',
          status: 'FAILED',
          userName: f.userName,
          accessKeyId,
          detail: `deactivation failed: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
        });
      }
    }
  }

  // 2. Rotations of old keys and service credentials, oldest first.
  const kindOf = (f: Finding) => `${f.userName}\n${f.serviceName ?? ''}`;
  const twoActive = new Set(findings.filter((f) => f.type === 'TWO_ACTIVE_KEYS').map(kindOf));
  const old = findings
    .filter((f) => f.type === 'OLD_KEY')
    .sort((a, b) => b.ageDays - a.ageDays || a.userName.localeCompare(b.userName));
  let started = 0;
  for (const f of old) {
    const why = refusal(f, users, policy);
    if (why) {
      skip('ROTATION', f, why);
      continue;
    }
    const credentialId = credentialIdOf(f) as string;
    if (!policy.autoRotate) {
      skip('ROTATION', f, 'automatic rotation is off');
      continue;
    }
    if (deactivated.has(credentialId)) {
      skip('ROTATION', f, 'deactivated as unused instead of rotated');
      continue;
    }
    if (twoActive.has(kindOf(f))) {
      skip(
        'ROTATION',
        f,
        f.serviceName
          ? `two active ${f.serviceName} credentials: rekey will not pick one; deactivate or delete one by hand`
          : 'two active keys: rekey will not pick one; deactivate or delete one by hand',
      );
      continue;
    }
    const executionName = executionNameFor(f.userName, credentialId, 1, member);
    if (started >= policy.maxRotationsPerRun) {
      skip(
        'ROTATION',
        f,
        `limit of ${policy.maxRotationsPerRun} rotation starts per run reached (new rotations and retries)`,
      );
      continue;
    }
    const base = { kind: 'ROTATION' as const, ...target(f), executionName };
    if (options.dryRun) {
      // A dry run reads no executions: it cannot tell a first start from a retry or a rotation
      // already under way, and says what it would ask Step Functions.
      started++;
      outcomes.push({ ...base, status: 'WOULD_START', detail: `would start rotation ${executionName}` });
      continue;
    }
    try {
      const result = await deps.starter.start({
        executionName,
        ...(member ? { accountId: member } : {}),
        ...target(f),
        reason: rotationReason(f),
        maxAttempts: policy.maxRotationAttempts,
      });
      if (result.status === 'STARTED' || result.status === 'RETRIED') started++;
      outcomes.push({
        ...base,
        status: result.status,
        executionName: result.executionName,
        executionArn: result.executionArn,
        attempt: result.attempt,
        failedAttempts: result.failedAttempts,
        detail: startDetail(result, policy.maxRotationAttempts),
      });
    } catch (error) {
      outcomes.push({
        ...base,
        status: 'FAILED',
        detail: `could not start the rotation: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
      });
    }
  }
  return outcomes;
}
