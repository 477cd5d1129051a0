/**
 * PlanRotation: validate the request, look at the user and its keys, take the user's lock, decide.
 * Refusals that need nobody's attention (exempt, protected, nothing to do) are STOP plans without
 * an alert; conditions a human must resolve (two active keys) are STOP plans with an alert.
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { tagConsumers } from '../../../contract/consumers.ts';
import type { RekeyEnv } from '../../../contract/env.ts';
import { AccountRefused, ConfigurationError, InvalidInput } from '../../../contract/errors.ts';
import { memberAccountOf } from '../../../contract/organization.ts';
import {
  type KeyRef,
  type Plan,
  type PlanInput,
  RotationInput,
  rotationInputProblems,
  type StopReason,
} from '../../../contract/schemas.ts';
import type { Clock } from '../../shared/clock.ts';
import { type CredentialKind, credentialKind } from '../../shared/credentials.ts';
import { protectedRefusal, readUser, refusalOf } from '../../shared/eligibility.ts';
import { type AccessKeyInfo, isOrphanKey, iso, type LastUse } from '../../shared/keys.ts';
import { acquireLock, type LockDeps, type LockItem, lockSubject, readLock } from '../../shared/lock.ts';
import { inAccount } from '../../shared/member-account.ts';
import { loadOptInClient } from '../../shared/opt-in.ts';
import { type CreatedKey, createdKeyOf } from '../../shared/own-key.ts';
import { ownerOfUser } from '../../shared/owner.ts';
import { describeVersions, secretNameFor, versionTokenFor } from '../../shared/secret.ts';

export type PlanEnv = Pick<
  RekeyEnv,
  | 'REKEY_SECRET_PREFIX'
  | 'REKEY_LOCK_TTL_SECONDS'
  | 'REKEY_EXEMPT_TAG'
  | 'REKEY_PROTECTED_USERS'
  | 'REKEY_USER_PATH_PREFIX'
  | 'REKEY_OPT_IN_TAG'
  | 'REKEY_CONSUMER_TAG'
  | 'REKEY_OWNER_TAG'
  | 'REKEY_HUB_ACCOUNT_ID'
  | 'REKEY_SECRETS_LOCATION'
  | 'REKEY_ORGANIZATION_ID'
  | 'REKEY_ORGANIZATION_SCOPE'
>;

export interface PlanDeps {
  iam: IAMClient;
  /** Reads secrets' metadata (which version is current), never their values. */
  secretsManager: SecretsManagerClient;
  lock: LockDeps;
  clock: Clock;
  env: PlanEnv;
}

/** Parses the execution input; every problem is named (`userName: must be at most 64 characters`). */
export function parseRotationInput(raw: unknown): RotationInput {
  const problems = rotationInputProblems(raw);
  if (problems.length > 0) throw new InvalidInput(`invalid rotation request: ${problems.join('; ')}`);
  return RotationInput.parse(raw);
}

export interface KeyView {
  key: AccessKeyInfo;
  /**
   * null: not read. The plan skips the read for a user's only key when it is active and no create
   * is pending in the journal: no rule of the table below looks at that key's last use then (only
   * orphans, which need a pending create, and extra keys, which are inactive, do), and every step
   * that acts on the key later reads it again right before acting.
   */
  lastUse: LastUse | null;
}

export type Decision = Pick<
  Plan,
  'action' | 'alert' | 'message' | 'oldKey' | 'extraKey' | 'orphanKey' | 'resumeStage' | 'newKey'
> & {
  stopReason?: StopReason;
};

const ref = ({ key, lastUse }: KeyView): KeyRef => ({
  accessKeyId: key.accessKeyId,
  createDate: iso(key.createDate),
  ...(lastUse ? { lastUsedDate: lastUse.date ? iso(lastUse.date) : null } : {}),
});
const describe = ({ key, lastUse }: KeyView) =>
  `${key.accessKeyId} (${key.status}, created ${iso(key.createDate)}, ${!lastUse ? 'last use not read' : lastUse.date ? `last used ${iso(lastUse.date)}` : lastUse.untracked ? 'no last-used data' : 'never used'})`;

function stop(reason: StopReason, alert: boolean, message: string): Decision {
  return {
    action: 'STOP',
    stopReason: reason,
    alert,
    message,
    oldKey: null,
    extraKey: null,
    orphanKey: null,
    resumeStage: null,
  };
}

/** What the user's lock journal says about keys rekey itself created. */
export interface Journal {
  /** Set while a create step had not yet confirmed its secret was stored. */
  creatingSince: Date | null;
  /** The key this very execution created and stored in an earlier attempt (a re-run resumes it). */
  ownKeyId: string | null;
  /** The last key any rekey execution created for this user, as its secret version shows it. */
  created: CreatedKey | null;
}

/** The words for the credentials decided on. */
export type Nouns = Pick<CredentialKind, 'noun' | 'plural'>;
const ACCESS_KEYS: Nouns = { noun: 'access key', plural: 'access keys' };

/**
 * The decision table of docs/design.md, as a pure function of the user's keys (or its service-specific
 * credentials for one service: the same table, the same stop reasons, other words). A
 * credential without last-use data counts as never used only where that is safe: an orphan's
 * secret was never stored; an extra Inactive credential, whose past use nobody can show, is left
 * to a human (InactiveUsageUnknown) rather than deleted.
 */
export function decide(userName: string, keys: KeyView[], journal: Journal, nouns = ACCESS_KEYS): Decision {
  if (keys.length === 0)
    return stop('NoAccessKeys', false, `"${userName}" has no ${nouns.plural}: nothing to rotate`);
  const own = keys.find((k) => k.key.accessKeyId === journal.ownKeyId);
  const resumed = own && keys.find((k) => k !== own);
  if (own && resumed) {
    return {
      action: 'ROTATE',
      alert: false,
      message: `resume the rotation of ${resumed.key.accessKeyId} of "${userName}" (new key ${own.key.accessKeyId} was created earlier by this execution)`,
      oldKey: ref(resumed),
      extraKey: null,
      orphanKey: null,
      resumeStage: null,
    };
  }
  const { created } = journal;
  const made = created ? keys.find((k) => k.key.accessKeyId === created.accessKeyId) : undefined;
  const other = made ? keys.find((k) => k !== made) : undefined;
  // The other key is the one that rotation replaced: nothing but rekey's own steps happened since.
  const replacedByMade = keys.length === 2 && other?.key.accessKeyId === created?.replacedKeyId;
  if (created?.current && made && other && replacedByMade) {
    const resume = resumeDecision(userName, made, other, created, nouns);
    if (resume) return resume;
  }
  const creatingSince = journal.creatingSince;
  // A key rekey made and never handed out, beside the key it was to replace, is nobody's.
  const neverHandedOut =
    created && made && replacedByMade && !created.handedOut && made.key.status === 'Active' ? made : null;
  const orphans = keys.filter(
    (k) => k === neverHandedOut || (k.lastUse !== null && isOrphanKey(k.key, k.lastUse, creatingSince)),
  );
  const active = keys.filter((k) => k.key.status === 'Active' && !orphans.includes(k));
  const others = keys.filter((k) => k.key.status !== 'Active');
  if (active.length >= 2) {
    return stop(
      'TwoActiveKeys',
      true,
      `"${userName}" has two active ${nouns.plural}, ${active.map(describe).join(' and ')}; rekey will not guess ` +
        `which one to replace${made && created ? `. ${ownKeyNote(made, created, nouns)}` : ''}: deactivate or ` +
        'delete one of them by hand',
    );
  }
  const old = active[0];
  if (!old) {
    return stop(
      'NoActiveKey',
      false,
      `"${userName}" has no active ${nouns.noun} (${keys.map(describe).join(', ')})`,
    );
  }
  const orphan = orphans[0] ?? null;
  const extra = others[0] ?? null;
  if (extra?.lastUse?.untracked) {
    // An access key is removed only when IAM says it was never used; without last-use data that
    // cannot be shown, and a credential someone deactivated may be their way back: a human decides.
    return stop(
      'InactiveUsageUnknown',
      true,
      `"${userName}" has an inactive ${nouns.noun}, ${describe(extra)}; its slot is needed for the new one, ` +
        'and IAM keeps no last-used data for it, so rekey cannot show it was never used and does not delete ' +
        'it: delete it by hand if it is no longer needed',
    );
  }
  if (extra?.lastUse?.date) {
    return stop(
      'InactiveKeyWasUsed',
      true,
      `"${userName}" has an inactive key that was used before, ${describe(extra)}; its slot is needed for the ` +
        'new key, and rekey only removes keys that were never used: delete it by hand if it is no longer needed',
    );
  }
  return {
    action: 'ROTATE',
    alert: false,
    message: `rotate ${old.key.accessKeyId} of "${userName}"`,
    oldKey: ref(old),
    extraKey: extra ? ref(extra) : null,
    orphanKey: orphan ? ref(orphan) : null,
    resumeStage: null,
  };
}

/**
 * The user's newer key is rekey's own (its secret version is AWSCURRENT) and the other one is the
 * key that rotation replaced: whatever stopped, failed or ended that run, this one carries it on
 * with the key consumers already have, and creates none. Where it re-enters follows from the keys:
 * both active, the adoption check; the old one inactive, the verification and then the delete.
 */
function resumeDecision(
  userName: string,
  made: KeyView,
  other: KeyView,
  created: CreatedKey,
  nouns: Nouns,
): Decision | null {
  // The current key is the older one: something besides rekey made the newer key.
  if (made.key.createDate.getTime() <= other.key.createDate.getTime() || made.key.status !== 'Active')
    return null;
  const stage =
    other.key.status === 'Active' ? 'ADOPTION' : other.key.status === 'Inactive' ? 'DELETION' : null;
  if (!stage || !created.secretArn) return null;
  const fresh = made.key.accessKeyId;
  const old = other.key.accessKeyId;
  return {
    action: 'RESUME',
    resumeStage: stage,
    alert: false,
    message:
      `resume the rotation of ${old} of "${userName}": the new ${nouns.noun} ${fresh}, handed out earlier ` +
      `(AWSCURRENT in ${created.secretName}), is kept and none is created; ` +
      (stage === 'ADOPTION'
        ? `${old} is still active: check it went quiet, then deactivate and later delete it`
        : `${old} is already inactive: verify it stayed unused, then delete it`),
    oldKey: ref(other),
    newKey: {
      accessKeyId: fresh,
      createDate: iso(made.key.createDate),
      ...(made.key.serviceUserName ? { serviceUserName: made.key.serviceUserName } : {}),
      secretArn: created.secretArn,
      versionId: created.versionId,
    },
    extraKey: null,
    orphanKey: null,
  };
}

/** What the journal tells a human about one of two active keys that rekey made. */
function ownKeyNote(made: KeyView, created: CreatedKey, nouns: Nouns): string {
  const id = made.key.accessKeyId;
  if (!created.handedOut) {
    return (
      `${id} is rekey's own ${nouns.noun}, created by ${created.createdBy ?? 'an earlier rotation'} and never handed ` +
      `out (its version in ${created.secretName} was never AWSCURRENT), so nobody holds it and it can be deleted`
    );
  }
  return created.current
    ? `${id} is rekey's own ${nouns.noun}, AWSCURRENT in ${created.secretName}, but the other one is not the key it replaced or is newer`
    : `${id} is a ${nouns.noun} rekey handed out earlier (no longer AWSCURRENT in ${created.secretName})`;
}

function stepsFor(plan: Decision, userName: string, secretName: string, kind: CredentialKind): string[] {
  if (plan.action === 'STOP' || !plan.oldKey) return [plan.message];
  const old = plan.oldKey.accessKeyId;
  if (plan.action === 'RESUME') {
    const fresh = plan.newKey?.accessKeyId;
    const since = 'since this run started (or since the last check that found it used)';
    return plan.resumeStage === 'ADOPTION'
      ? [
          `keep the new ${kind.noun} ${fresh} (AWSCURRENT in ${secretName}); create none`,
          `prove ${fresh} still works, and announce it again`,
          `wait for consumers to adopt it; check ${old} was not used ${since}`,
          `deactivate ${old}, wait, verify it stayed unused and ${fresh} still works (else reactivate ${old})`,
          `delete ${old}`,
        ]
      : [
          `keep the new ${kind.noun} ${fresh} (AWSCURRENT in ${secretName}); create none`,
          `wait, verify ${old} stayed inactive and unused since this run started and ${fresh} still works (else reactivate ${old})`,
          `delete ${old}`,
        ];
  }
  const orphan = plan.orphanKey
    ? [
        `delete ${plan.orphanKey.accessKeyId}, which an earlier attempt made and nobody holds (never handed out)`,
      ]
    : [];
  if (kind.tracksLastUse) {
    return [
      ...(plan.extraKey ? [`delete the inactive, never-used key ${plan.extraKey.accessKeyId}`] : []),
      ...orphan,
      `create a second access key for "${userName}" and store it in ${secretName} (AWSPENDING)`,
      'prove the new key authenticates as the user, then make it AWSCURRENT and announce it',
      `wait for consumers to adopt it; check ${old} was not used since the hand-out (or since the last check that found it used)`,
      `deactivate ${old}, wait, verify it stayed unused and the new key still works (else reactivate ${old})`,
      `delete ${old}`,
    ];
  }
  return [
    ...orphan,
    `create a second ${kind.noun} for "${userName}" and store it in ${secretName} (AWSPENDING)`,
    "check the stored credential is the user's and Active in IAM, then make it AWSCURRENT and announce it " +
      "(the password itself is proven by the consumer's first connection)",
    `wait for consumers to adopt it: IAM keeps no last-used data for ${old}, so the adoption wait is what ` +
      'this rotation relies on (plus CloudTrail, when enabled)',
    `deactivate ${old}, wait, verify it stayed inactive and the new credential is still Active (else reactivate ${old})`,
    `delete ${old}`,
  ];
}

/** Reads the journal: is one of the keys the one this execution created and stored before? */
function journalOf(
  lock: LockItem | null,
  keys: AccessKeyInfo[],
  executionId: string,
  userName: string,
  created: CreatedKey | null,
): Journal {
  const own = keys.find(
    (k) =>
      k.accessKeyId === lock?.createdKeyId &&
      keys.some(
        (other) =>
          other !== k &&
          lock.createdVersionId === versionTokenFor(executionId, userName, other.accessKeyId, k.accessKeyId),
      ),
  );
  return { creatingSince: lock?.creatingSince ?? null, ownKeyId: own?.accessKeyId ?? null, created };
}

/**
 * Refuses a member account the request names unless the organization option is on and
 * Organizations shows the account active, in this organization and in scope
 * (lambdas/shared/organization-membership.ts): before any call into that account. The check and
 * its client are the opt-in 'organizations' bundle, loaded only here.
 */
async function requireMemberAccount(accountId: string, env: PlanEnv): Promise<void> {
  if (!env.REKEY_ORGANIZATION_ID) {
    throw new AccountRefused(
      accountId,
      `it is not this deployment's own account (${env.REKEY_HUB_ACCOUNT_ID ?? 'unknown'}), and the organization option is not set`,
    );
  }
  const { organizations, memberAccountRefusal } = await loadOptInClient('organizations');
  const reason = await memberAccountRefusal(organizations, accountId, env);
  if (reason) throw new AccountRefused(accountId, reason);
}

export async function planRotation(deps: PlanDeps, request: PlanInput): Promise<Plan> {
  const input = parseRotationInput(request.input);
  const { env } = deps;
  const accountId = input.accountId ?? env.REKEY_HUB_ACCOUNT_ID;
  if (!accountId) {
    throw new ConfigurationError(
      'REKEY_HUB_ACCOUNT_ID is not set: the plan cannot tell which account it is in',
    );
  }
  const member = memberAccountOf({ accountId, hubAccountId: env.REKEY_HUB_ACCOUNT_ID });
  if (member) await requireMemberAccount(member, env);
  // In a member account, IAM (and there, Secrets Manager) sign as the plan's member role; the
  // lock table stays the hub's. In the hub's own account nothing changes.
  return inAccount({ accountId: member, lambda: 'plan' }, () =>
    planInAccount(deps, request, input, accountId),
  );
}

async function planInAccount(
  deps: PlanDeps,
  request: PlanInput,
  input: RotationInput,
  accountId: string,
): Promise<Plan> {
  const { serviceName } = input;
  const dryRun = input.dryRun ?? false;
  const { env } = deps;
  const place = { accountId, hubAccountId: env.REKEY_HUB_ACCOUNT_ID, secrets: env.REKEY_SECRETS_LOCATION };
  const kind = credentialKind(deps.iam, serviceName);
  const base = {
    userName: input.userName,
    accountId,
    ...(serviceName ? { serviceName } : {}),
    userArn: null as string | null,
    dryRun,
    ...(input.reason ? { reason: input.reason } : {}),
    executionId: request.executionId,
    secretName: secretNameFor(env.REKEY_SECRET_PREFIX, input.userName, serviceName, place),
    quietSince: null as string | null,
  };
  /** A note appended to the plan's message (the secret kept under the request's case of the name). */
  let note = '';
  /** Who the user's consumer tag lets read its secret: set once the tag was read and found valid. */
  let consumers: string[] = [];
  /** The user's owner (lambdas/shared/owner.ts), once the user was read. */
  let owner: { owner?: string } = {};
  const finish = (d: Decision, userArn: string | null = null): Plan => {
    const decision = note ? { ...d, message: `${d.message}; ${note}` } : d;
    return {
      ...base,
      userArn,
      ...decision,
      ...(consumers.length > 0 ? { consumers } : {}),
      ...owner,
      steps: stepsFor(decision, base.userName, base.secretName, kind),
    };
  };

  // Protected users are refused before any AWS call.
  const protectedUser = protectedRefusal(input.userName, env);
  if (protectedUser) return finish(stop(protectedUser.reason, false, protectedUser.message));

  // IAM user names are unique case-insensitively: from here on the plan uses IAM's own spelling
  // (for the secret name, the version token and the lock), so "alice" and "Alice" are one rotation.
  const user = await readUser(deps.iam, input.userName);
  const userName = user.userName;
  base.userName = userName;
  owner = ownerOfUser(userName, user.tags, env.REKEY_OWNER_TAG);
  base.secretName = secretNameFor(env.REKEY_SECRET_PREFIX, userName, serviceName, place);
  if (userName !== input.userName) {
    const asRequested = secretNameFor(env.REKEY_SECRET_PREFIX, input.userName, serviceName, place);
    // Secret names are case-sensitive: consumers may already read a secret made under the
    // request's spelling; moving them to another name would break them, so that one is kept.
    if (await describeVersions(deps.secretsManager, asRequested)) {
      base.secretName = asRequested;
      note = `IAM spells the user "${userName}"; its existing secret ${asRequested} (named as requested) is kept`;
    }
  }
  const userArn = user.arn;
  const refusal = refusalOf(user, env, deps.clock.now());
  if (refusal) return finish(stop(refusal.reason, false, refusal.message), userArn);

  // A tag the create step could not write into the secret's policy stops the plan here, before
  // anything changes, rather than the create step once the new key exists.
  const tagged = tagConsumers(env.REKEY_CONSUMER_TAG, user.tags, userArn);
  if (!tagged.ok) {
    return finish(
      stop(
        'InvalidConsumerTag',
        true,
        `the tag ${env.REKEY_CONSUMER_TAG} of "${userName}" names who may read its secret, but ${tagged.problem}; ` +
          'nothing was changed: list IAM role or user ARNs of its account, separated by spaces, and start the rotation again',
      ),
      userArn,
    );
  }
  consumers = tagged.consumers;

  // Everything up to the decision only reads: a plan that stops (or a dry run) changes nothing,
  // not even the lock table. The lock is taken only to rotate, with a conditional write.
  const subject = lockSubject(userName, serviceName, place);
  const inProgress = (owner: string) =>
    finish(
      stop('RotationInProgress', false, `a rotation of "${subject}" is in progress (${owner})`),
      userArn,
    );
  const lock = await readLock(deps.lock, subject);
  if (
    lock?.owner &&
    lock.owner !== request.executionId &&
    lock.expiresAt * 1000 > deps.clock.now().getTime()
  ) {
    return inProgress(lock.owner);
  }
  const keys = await kind.list(userName);
  // The only key, active, and no create pending: nothing decides on its last use (KeyView).
  const onlyActive = keys.length === 1 && keys[0]?.status === 'Active' && !lock?.creatingSince;
  const views: KeyView[] = [];
  for (const key of keys)
    views.push({ key, lastUse: onlyActive ? null : await kind.lastUse(key.accessKeyId) });
  const created = await createdKeyOf(deps.secretsManager, lock, base.secretName);
  const decision = decide(
    userName,
    views,
    journalOf(lock, keys, request.executionId, userName, created),
    kind,
  );
  // A resumed run is a new start: only uses of the old key from now on (less the grace) count.
  if (decision.action === 'RESUME') base.quietSince = iso(deps.clock.now());
  if (decision.action === 'STOP' || dryRun) return finish(decision, userArn);

  // A rival that took the lock since the read above wins; the steps after this one re-read the
  // keys before acting, so a decision made just before the lock was taken is never acted on blindly.
  const taken = await acquireLock(
    deps.lock,
    subject,
    request.executionId,
    deps.clock.now(),
    env.REKEY_LOCK_TTL_SECONDS,
  );
  if (!taken.acquired) return inProgress(taken.owner);
  return finish(decision, userArn);
}
