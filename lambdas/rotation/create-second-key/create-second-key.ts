/**
 * CreateSecondKey: create the new access key (or service-specific credential: the plan's
 * `serviceName` picks the kind, see credentials.ts) and store it in the SAME invocation, so the
 * secret never crosses the workflow. Safe to retry and to re-run:
 * - a version written under this execution's token for the key recorded in the journal is
 *   returned as is (no second key); the token names the key too, so a key made after an earlier
 *   one of this execution was removed never reuses that one's version;
 * - a key orphaned by a crash (created after the journal's `creatingSince`, never used, secret
 *   never stored) is deleted before a new one is made (no third key, no key without a secret);
 * - so is the key an earlier rotation made and never handed out (the plan marks it; the journal
 *   and its secret version are asked again), with its version's AWSPENDING label;
 * - a failure to store deletes the new key again (compensation);
 * - any other extra key stops the step without touching anything.
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { RekeyEnv } from '../../../contract/env.ts';
import {
  errorName,
  isAwsError,
  RotationInProgress,
  SecretNotStored,
  safeCause,
  UnexpectedKeyState,
} from '../../../contract/errors.ts';
import { MEMBER_SECRETS_KEY_ALIAS, memberAccountOf, memberRoleArn } from '../../../contract/organization.ts';
import type { NewKey, RotationState } from '../../../contract/schemas.ts';
import type { Clock } from '../../shared/clock.ts';
import { type CreatedCredential, credentialKind } from '../../shared/credentials.ts';
import { type EligibilityEnv, requireEligible } from '../../shared/eligibility.ts';
import { isOrphanKey, iso, requireKey } from '../../shared/keys.ts';
import {
  clearCreating,
  type LockDeps,
  lockSubject,
  markCreating,
  readLock,
  recordCreatedKey,
} from '../../shared/lock.ts';
import { logger } from '../../shared/logger.ts';
import { partitionOf } from '../../shared/member-account.ts';
import { createdKeyOf, removeNeverHandedOut } from '../../shared/own-key.ts';
import {
  describeVersions,
  secretResourcePolicy,
  storePendingKey,
  versionTokenFor,
} from '../../shared/secret.ts';

export interface CreateKeyDeps {
  iam: IAMClient;
  secretsManager: SecretsManagerClient;
  lock: LockDeps;
  clock: Clock;
  env: Pick<
    RekeyEnv,
    | 'REKEY_KMS_KEY_ID'
    | 'REKEY_CONSUMER_PRINCIPALS'
    | 'REKEY_SECRET_READER_ROLES'
    | 'REKEY_HUB_ACCOUNT_ID'
    | 'REKEY_MEMBER_ROLE_PREFIX'
    | 'REKEY_SECRETS_LOCATION'
  > &
    EligibilityEnv;
}

/** The steps that read a secret (REKEY_SECRET_READER_ROLES are their roles in the hub). */
const SECRET_READERS = ['verify-new-key', 'verify-rotation'] as const;

/**
 * The KMS key of the secret and the rekey roles that may read it: the hub's, unless the secret is
 * kept in the member account the user is in (`secrets: member`), where the member stack's key
 * (MEMBER_SECRETS_KEY_ALIAS) encrypts it and the verify steps read it as their member roles.
 */
export function secretSettings(
  env: CreateKeyDeps['env'],
  accountId: string | undefined,
): { kmsKeyId: string; rekeyReaders: readonly string[] | undefined } {
  const member = memberAccountOf({ accountId, hubAccountId: env.REKEY_HUB_ACCOUNT_ID });
  const prefix = env.REKEY_MEMBER_ROLE_PREFIX;
  if (!member || env.REKEY_SECRETS_LOCATION === 'hub' || !prefix) {
    return { kmsKeyId: env.REKEY_KMS_KEY_ID, rekeyReaders: env.REKEY_SECRET_READER_ROLES };
  }
  const partition = partitionOf(process.env.AWS_REGION);
  return {
    kmsKeyId: MEMBER_SECRETS_KEY_ALIAS,
    rekeyReaders:
      env.REKEY_SECRET_READER_ROLES &&
      SECRET_READERS.map((lambda) => memberRoleArn(partition, member, prefix, lambda)),
  };
}

type CreateInput = RotationState & { oldKey: NonNullable<RotationState['oldKey']> };

export async function createSecondKey(deps: CreateKeyDeps, state: CreateInput): Promise<NewKey> {
  const { userName, userArn, executionId, secretName, serviceName } = state;
  const oldKeyId = state.oldKey.accessKeyId;
  const kind = credentialKind(deps.iam, serviceName);
  const subject = lockSubject(userName, serviceName, {
    accountId: state.accountId,
    hubAccountId: deps.env.REKEY_HUB_ACCOUNT_ID,
  });
  const settings = secretSettings(deps.env, state.accountId);
  // The secret's policy names its user: without the ARN (the plan reads it) nothing is created.
  if (!userArn)
    throw new UnexpectedKeyState(`the plan carries no ARN for "${userName}"; nothing was changed`);
  // Built before any key exists, so a consumer the policy cannot name fails the step unchanged.
  const policy = secretResourcePolicy({
    userArn,
    consumers: [...deps.env.REKEY_CONSUMER_PRINCIPALS, ...(state.consumers ?? [])],
    rekeyReaders: settings.rekeyReaders,
  });

  // The lock is not read up front: the first write of a create, the journal's mark, is
  // conditional on this execution owning the lock and refuses with RotationInProgress otherwise,
  // before any key exists. Only the sweep, which deletes keys without writing first, reads it.
  const keys = await kind.list(userName);
  requireKey(keys, oldKeyId, userName, kind.noun);
  // The secret's versions matter only to the sweep (is one of the extra keys stored by this
  // execution already?): read once, when a sweep first needs them.
  let versionsRead: ReturnType<typeof describeVersions> | undefined;
  const secretVersions = () => {
    versionsRead ??= describeVersions(deps.secretsManager, secretName);
    return versionsRead;
  };

  /**
   * Deletes orphans among the extra keys and counts them; returns the key this execution already
   * stored instead, if there is one. Any other extra key stops the step.
   */
  const sweep = async (
    // The keys just listed are used as is; after a failed create they are listed again.
    listed?: typeof keys,
  ): Promise<{ stored: NewKey | null; removed: number }> => {
    const current = listed ?? (await kind.list(userName));
    const journal = await readLock(deps.lock, subject);
    // The sweep deletes keys: only the lock's owner may (a rival's journal is not this one's).
    if (journal?.owner !== executionId)
      throw new RotationInProgress(subject, journal?.owner ?? 'lock not held');
    const versions = await secretVersions();
    let removed = 0;
    for (const key of current.filter((k) => k.accessKeyId !== oldKeyId)) {
      const token = versionTokenFor(executionId, userName, oldKeyId, key.accessKeyId);
      if (
        versions?.stages[token] !== undefined &&
        journal?.createdKeyId === key.accessKeyId &&
        journal.createdVersionId === token
      ) {
        const stored = {
          accessKeyId: key.accessKeyId,
          createDate: iso(key.createDate),
          ...(key.serviceUserName ? { serviceUserName: key.serviceUserName } : {}),
          secretArn: versions.arn,
          versionId: token,
        };
        return { stored, removed };
      }
      if (key.accessKeyId === state.orphanKey?.accessKeyId) {
        // The plan found a key an earlier rotation made and never handed out. Asked again here,
        // right before the delete: still the journal's, still replacing this old key, still never
        // AWSCURRENT.
        const made = await createdKeyOf(deps.secretsManager, journal, secretName);
        if (made?.accessKeyId === key.accessKeyId && made.replacedKeyId === oldKeyId && !made.handedOut) {
          await removeNeverHandedOut(deps.secretsManager, kind, userName, made);
          removed++;
          continue;
        }
      }
      const lastUse = await kind.lastUse(key.accessKeyId);
      if (!isOrphanKey(key, lastUse, journal?.creatingSince ?? null)) {
        throw new UnexpectedKeyState(
          `"${userName}" has another ${kind.noun}, ${key.accessKeyId} (${key.status}), that this rotation did not ` +
            'create; nothing was changed',
        );
      }
      logger.warn('deleting a credential orphaned by a crashed create attempt', {
        kind: kind.noun,
        userName,
        ...(serviceName ? { serviceName } : {}),
        accessKeyId: key.accessKeyId,
      });
      await kind.remove(userName, key.accessKeyId);
      removed++;
    }
    return { stored: null, removed };
  };

  if (keys.length > 1) {
    const { stored } = await sweep(keys);
    if (stored) {
      await clearCreating(deps.lock, subject, executionId);
      return stored;
    }
  }

  let created: CreatedCredential | undefined;
  for (let attempt = 1; !created; attempt++) {
    await requireEligible(deps, userName, `creating a new ${kind.noun}`);
    await markCreating(deps.lock, subject, executionId, deps.clock.now());
    try {
      created = await kind.create(userName, deps.clock.now());
    } catch (error) {
      // The key may exist although the response was lost (and an SDK retry may then have hit the
      // two-key limit): remove such orphans now rather than leave keys whose secret nobody holds.
      // Once swept, the journal's intent is cleared so no later key is mistaken for an orphan.
      const { removed } = await sweep();
      await clearCreating(deps.lock, subject, executionId);
      const limit = isAwsError(error, 'LimitExceeded', 'LimitExceededException');
      if (limit && removed > 0 && attempt === 1) continue;
      if (limit)
        throw new UnexpectedKeyState(`"${userName}" already has two ${kind.plural}; nothing was changed`);
      throw error;
    }
  }
  const token = versionTokenFor(executionId, userName, oldKeyId, created.id);
  let stored: { arn: string; versionId: string };
  try {
    await recordCreatedKey(deps.lock, subject, executionId, {
      accessKeyId: created.id,
      versionId: token,
      replacedKeyId: oldKeyId,
      secretName,
    });
    stored = await storePendingKey(deps.secretsManager, {
      name: secretName,
      kmsKeyId: settings.kmsKeyId,
      token,
      policy,
      value: created.value,
    });
  } catch (error) {
    // A store whose answer was lost may have landed all the same: its version id is the token.
    // Then the secret holds this key (as AWSCURRENT, if it is the secret's first version), and
    // deleting the key would leave consumers a dead one. If this read fails too, its error fails
    // the attempt with the journal intact: the retry's sweep resumes the stored key or removes
    // the orphan.
    const landed = await describeVersions(deps.secretsManager, secretName);
    if (landed?.stages[token] === undefined) {
      await kind.remove(userName, created.id);
      await clearCreating(deps.lock, subject, executionId);
      // Only the error's name (and a denial's message): a service message could quote the
      // request, and the request held the secret.
      throw new SecretNotStored(userName, safeCause(error), kind.noun);
    }
    logger.warn('the store reported an error but its version is there: the key is stored', {
      userName,
      errorName: errorName(error),
    });
    stored = { arn: landed.arn, versionId: token };
  }
  await clearCreating(deps.lock, subject, executionId);
  logger.info(`new ${kind.noun} created and stored`, {
    userName,
    ...(serviceName ? { serviceName } : {}),
    accessKeyId: created.id,
    versionId: stored.versionId,
  });
  return {
    accessKeyId: created.id,
    createDate: iso(created.createDate),
    ...(created.serviceUserName ? { serviceUserName: created.serviceUserName } : {}),
    secretArn: stored.arn,
    versionId: stored.versionId,
  };
}
