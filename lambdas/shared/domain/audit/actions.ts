/**
 * What the audit does about its findings.
 *
 * - OLD_KEY with autoRotate: start the rotation state machine for the user, with an execution
 *   name derived from the user and the key. Step Functions keeps a name unique per state machine
 *   for 90 days, so a schedule that fires twice, or two audits on one day, start nothing twice:
 *   the second start finds the execution and reports it as already started.
 *   At most maxRotationsPerRun NEW executions per run (already started ones do not count), the
 *   oldest keys first.
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
import type { Clock } from '../../clock.ts';
import type { ServiceName } from '../../schemas.ts';
import { getLastUse } from '../keys.ts';
import type { CallCounter } from './calls.ts';
import { credentialIdOf, type Finding, isActiveExemption, type UserDetail, wholeDays } from './findings.ts';

export interface ActionPolicy {
  autoRotate: boolean;
  maxRotationsPerRun: number;
  deactivateUnused: boolean;
  deactivateUnusedAfterDays: number;
  protectedUsers: readonly string[];
  userPathPrefix: string;
  optInTag?: string | undefined;
}

export interface RotationRequest {
  executionName: string;
  userName: string;
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
}

export interface StartResult {
  status: 'STARTED' | 'ALREADY_STARTED';
  executionArn: string;
}

/** Starts rotations: Step Functions in the Lambda; something else (or nothing) elsewhere. */
export interface RotationStarter {
  start(request: RotationRequest): Promise<StartResult>;
}

/** Step Functions' name rule: 1-80 of letters, digits, `-` and `_`. */
export const EXECUTION_NAME = /^[A-Za-z0-9_-]{1,80}$/;
const PREFIX = 'rekey-';
/** Access key and service-specific credential ids are 16-128 / 20-128 characters; real ones 20-21. */
const MAX_NAME = 80;
const HASH_CHARS = 8;

/**
 * `rekey-<user>-<credentialId>`: deterministic per user and credential, where the credential is
 * an access key (its id) or a service-specific credential (its ServiceSpecificCredentialId, unique
 * in the account like a key id, so the service need not be in the name). IAM user names may hold
 * `+=,.@`, which execution names may not: they become `_`, and then a short hash of the raw name is
 * appended so `a.b` and `a_b` can never share a name. Long names are cut (with the hash) so the
 * whole name fits 80 characters; the credential id is always kept whole.
 */
export function executionNameFor(userName: string, credentialId: string): string {
  const key = credentialId
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, MAX_NAME - PREFIX.length - 2 - HASH_CHARS);
  const room = MAX_NAME - PREFIX.length - 1 - key.length;
  const sanitized = userName.replace(/[^A-Za-z0-9_-]/g, '_');
  let user = sanitized;
  if (sanitized !== userName || sanitized.length > room) {
    const hash = createHash('sha256').update(userName, 'utf8').digest('hex').slice(0, HASH_CHARS);
    user = `${sanitized.slice(0, room - HASH_CHARS - 1)}-${hash}`;
  }
  return `${PREFIX}${user}-${key}`;
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

/**
 * The rotation state machine as the Lambda starts it. It first asks whether the execution exists
 * (DescribeExecution on the deterministic ARN) because StartExecution answers a repeated name with
 * the same input by returning the running execution as if it were new; ExecutionAlreadyExists
 * (a finished one, or different input such as a later day's age) also means "already started".
 */
export class SfnRotationStarter implements RotationStarter {
  constructor(
    private readonly sfn: SFNClient,
    private readonly stateMachineArn: string,
  ) {}

  async start(request: RotationRequest): Promise<StartResult> {
    const executionArn = executionArnFor(this.stateMachineArn, request.executionName);
    try {
      await this.sfn.send(new DescribeExecutionCommand({ executionArn }));
      return { status: 'ALREADY_STARTED', executionArn };
    } catch (error) {
      if (!(error instanceof Error) || error.name !== 'ExecutionDoesNotExist') throw error;
    }
    try {
      const out = await this.sfn.send(
        new StartExecutionCommand({
          stateMachineArn: this.stateMachineArn,
          name: request.executionName,
          input: JSON.stringify({
            userName: request.userName,
            ...(request.serviceName ? { serviceName: request.serviceName } : {}),
            reason: request.reason,
          }),
        }),
      );
      return { status: 'STARTED', executionArn: out.executionArn ?? executionArn };
    } catch (error) {
      if (error instanceof Error && error.name === 'ExecutionAlreadyExists')
        return { status: 'ALREADY_STARTED', executionArn };
      throw error;
    }
  }
}

export type ActionStatus =
  | 'STARTED'
  | 'ALREADY_STARTED'
  | 'DEACTIVATED'
  | 'WOULD_START'
  | 'WOULD_DEACTIVATE'
  | 'SKIPPED'
  | 'FAILED';

export interface ActionOutcome {
  kind: 'ROTATION' | 'DEACTIVATION';
  status: ActionStatus;
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
  options: { dryRun: boolean },
): Promise<ActionOutcome[]> {
  const outcomes: ActionOutcome[] = [];
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
    const executionName = executionNameFor(f.userName, credentialId);
    if (started >= policy.maxRotationsPerRun) {
      skip('ROTATION', f, `limit of ${policy.maxRotationsPerRun} new rotations per run reached`);
      continue;
    }
    const base = { kind: 'ROTATION' as const, ...target(f), executionName };
    if (options.dryRun) {
      started++;
      outcomes.push({ ...base, status: 'WOULD_START', detail: `would start rotation ${executionName}` });
      continue;
    }
    try {
      const result = await deps.starter.start({ executionName, ...target(f), reason: rotationReason(f) });
      if (result.status === 'STARTED') started++;
      outcomes.push({
        ...base,
        status: result.status,
        executionArn: result.executionArn,
        detail: result.status === 'STARTED' ? 'rotation started' : 'rotation already started earlier',
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
