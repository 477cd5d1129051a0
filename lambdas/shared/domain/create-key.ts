/**
 * CreateSecondKey: create the new access key and store it in the SAME invocation, so the secret
 * never crosses the workflow. Safe to retry and to re-run:
 * - a version written under this execution's token for the key recorded in the journal is
 *   returned as is (no second key);
 * - a key orphaned by a crash (created after the journal's `creatingSince`, never used, secret
 *   never stored) is deleted before a new one is made (no third key, no key without a secret);
 * - a failure to store deletes the new key again (compensation);
 * - any other extra key stops the step without touching anything.
 */
import { CreateAccessKeyCommand, type IAMClient } from '@aws-sdk/client-iam';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Clock } from '../clock.ts';
import type { RekeyEnv } from '../env.ts';
import { errorName, isAwsError, RotationInProgress, SecretNotStored, UnexpectedKeyState } from '../errors.ts';
import { logger } from '../logger.ts';
import type { NewKey, RotationState } from '../schemas.ts';
import { deleteAccessKey, getLastUse, isOrphanKey, iso, listAccessKeys, requireKey } from './keys.ts';
import { clearCreating, type LockDeps, markCreating, readLock, recordCreatedKey } from './lock.ts';
import { describeVersions, secretResourcePolicy, storePendingKey, versionTokenFor } from './secret.ts';

export interface CreateKeyDeps {
  iam: IAMClient;
  secretsManager: SecretsManagerClient;
  lock: LockDeps;
  clock: Clock;
  env: Pick<RekeyEnv, 'REKEY_KMS_KEY_ID' | 'REKEY_CONSUMER_PRINCIPALS' | 'REKEY_SECRET_READER_ROLES'>;
}

type CreateInput = RotationState & { oldKey: NonNullable<RotationState['oldKey']> };

export async function createSecondKey(deps: CreateKeyDeps, state: CreateInput): Promise<NewKey> {
  const { userName, userArn, executionId, secretName } = state;
  const oldKeyId = state.oldKey.accessKeyId;
  // The secret's policy names its user: without the ARN (the plan reads it) nothing is created.
  if (!userArn)
    throw new UnexpectedKeyState(`the plan carries no ARN for "${userName}"; nothing was changed`);

  const lock = await readLock(deps.lock, userName);
  if (lock?.owner !== executionId) throw new RotationInProgress(userName, lock?.owner ?? 'lock not held');

  const token = versionTokenFor(executionId, userName, oldKeyId);
  const keys = await listAccessKeys(deps.iam, userName);
  requireKey(keys, oldKeyId, userName);
  const versions = await describeVersions(deps.secretsManager, secretName);

  /**
   * Deletes orphans among the extra keys and counts them; returns the key this execution already
   * stored instead, if there is one. Any other extra key stops the step.
   */
  const sweep = async (
    // What was just read is used as is; after a failed create both are read again.
    seen?: { current: typeof keys; journal: typeof lock },
  ): Promise<{ stored: NewKey | null; removed: number }> => {
    const current = seen?.current ?? (await listAccessKeys(deps.iam, userName));
    const journal = seen ? seen.journal : await readLock(deps.lock, userName);
    let removed = 0;
    for (const key of current.filter((k) => k.accessKeyId !== oldKeyId)) {
      if (
        versions?.stages[token] !== undefined &&
        journal?.createdKeyId === key.accessKeyId &&
        journal.createdVersionId === token
      ) {
        const stored = {
          accessKeyId: key.accessKeyId,
          createDate: iso(key.createDate),
          secretArn: versions.arn,
          versionId: token,
        };
        return { stored, removed };
      }
      const lastUse = await getLastUse(deps.iam, key.accessKeyId);
      if (!isOrphanKey(key, lastUse, journal?.creatingSince ?? null)) {
        throw new UnexpectedKeyState(
          `"${userName}" has another access key, ${key.accessKeyId} (${key.status}), that this rotation did not ` +
            'create; nothing was changed',
        );
      }
      logger.warn('deleting an access key orphaned by a crashed create attempt', {
        userName,
        accessKeyId: key.accessKeyId,
      });
      await deleteAccessKey(deps.iam, userName, key.accessKeyId);
      removed++;
    }
    return { stored: null, removed };
  };

  if (keys.length > 1) {
    const { stored } = await sweep({ current: keys, journal: lock });
    if (stored) {
      await clearCreating(deps.lock, userName, executionId);
      return stored;
    }
  }

  let created: { AccessKeyId?: string; SecretAccessKey?: string; CreateDate?: Date } | undefined;
  for (let attempt = 1; !created; attempt++) {
    await markCreating(deps.lock, userName, executionId, deps.clock.now());
    try {
      created = (await deps.iam.send(new CreateAccessKeyCommand({ UserName: userName }))).AccessKey;
    } catch (error) {
      // The key may exist although the response was lost (and an SDK retry may then have hit the
      // two-key limit): remove such orphans now rather than leave keys whose secret nobody holds.
      // Once swept, the journal's intent is cleared so no later key is mistaken for an orphan.
      const { removed } = await sweep();
      await clearCreating(deps.lock, userName, executionId);
      const limit = isAwsError(error, 'LimitExceeded', 'LimitExceededException');
      if (limit && removed > 0 && attempt === 1) continue;
      if (limit)
        throw new UnexpectedKeyState(`"${userName}" already has two access keys; nothing was changed`);
      throw error;
    }
  }
  if (!created.AccessKeyId || !created.SecretAccessKey) {
    throw new UnexpectedKeyState('CreateAccessKey returned no key');
  }
  const createDate = created.CreateDate ?? deps.clock.now();
  let stored: { arn: string; versionId: string };
  try {
    await recordCreatedKey(deps.lock, userName, executionId, created.AccessKeyId, token);
    stored = await storePendingKey(deps.secretsManager, {
      name: secretName,
      kmsKeyId: deps.env.REKEY_KMS_KEY_ID,
      token,
      policy: secretResourcePolicy({
        userArn,
        consumers: deps.env.REKEY_CONSUMER_PRINCIPALS,
        rekeyReaders: deps.env.REKEY_SECRET_READER_ROLES,
      }),
      value: {
        Version: 1,
        AccessKeyId: created.AccessKeyId,
        SecretAccessKey: created.SecretAccessKey,
        UserName: userName,
        CreateDate: iso(createDate),
      },
    });
  } catch (error) {
    await deleteAccessKey(deps.iam, userName, created.AccessKeyId);
    await clearCreating(deps.lock, userName, executionId);
    // Only the error's name: a service message could quote the request, and the request held the secret.
    throw new SecretNotStored(userName, errorName(error));
  }
  await clearCreating(deps.lock, userName, executionId);
  logger.info('new access key created and stored', {
    userName,
    accessKeyId: created.AccessKeyId,
    versionId: stored.versionId,
  });
  return {
    accessKeyId: created.AccessKeyId,
    createDate: iso(createDate),
    secretArn: stored.arn,
    versionId: stored.versionId,
  };
}
