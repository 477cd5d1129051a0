/**
 * The three key-status changes of the workflow. Each one re-reads the key first and re-checks the
 * safety rule that applies at that moment, so a decision made minutes (or days) earlier can never
 * be acted on blindly: never deactivate a key used after the hand-out, never delete a key that is
 * active or was used since deactivation.
 */
import { type IAMClient, UpdateAccessKeyCommand } from '@aws-sdk/client-iam';
import type { Clock } from '../clock.ts';
import { RekeyError, UnsafeToDelete } from '../errors.ts';
import { logger } from '../logger.ts';
import type { Deactivation, DeleteKeyInput, KeyRef, NewKey, RotationState } from '../schemas.ts';
import { deleteAccessKey, getLastUse, iso, listAccessKeys, requireKey, usedAtOrAfter } from './keys.ts';

export interface LifecycleDeps {
  iam: IAMClient;
  clock: Clock;
  env: { REKEY_LAST_USED_GRACE_SECONDS: number };
}

export async function deactivateOldKey(
  deps: LifecycleDeps,
  state: RotationState & { oldKey: KeyRef; newKey: NewKey },
): Promise<Deactivation> {
  const { userName, oldKey, newKey } = state;
  const key = requireKey(await listAccessKeys(deps.iam, userName), oldKey.accessKeyId, userName);
  if (key.status !== 'Active') {
    // A retry after the status change went through: from the hand-out on is the safe window to
    // watch, since the key is known to have been quiet until the adoption check.
    return { deactivatedAt: newKey.createDate };
  }
  const lastUse = await getLastUse(deps.iam, key.accessKeyId);
  if (usedAtOrAfter(lastUse, new Date(newKey.createDate), deps.env.REKEY_LAST_USED_GRACE_SECONDS)) {
    throw new RekeyError(
      'OldKeyStillInUse',
      `old key ${key.accessKeyId} of "${userName}" was used at ${lastUse.date ? iso(lastUse.date) : '?'}, after the new key was handed out; it was not deactivated`,
    );
  }
  // Taken before the call: a use racing the deactivation then counts as "since deactivation".
  const deactivatedAt = iso(deps.clock.now());
  await deps.iam.send(
    new UpdateAccessKeyCommand({ UserName: userName, AccessKeyId: key.accessKeyId, Status: 'Inactive' }),
  );
  logger.info('old key deactivated', { userName, accessKeyId: key.accessKeyId, deactivatedAt });
  return { deactivatedAt };
}

export async function reactivateOldKey(
  deps: Pick<LifecycleDeps, 'iam'>,
  state: RotationState & { oldKey: KeyRef },
): Promise<{ reactivated: boolean }> {
  const { userName, oldKey } = state;
  const key = requireKey(await listAccessKeys(deps.iam, userName), oldKey.accessKeyId, userName);
  if (key.status === 'Active') return { reactivated: false };
  await deps.iam.send(
    new UpdateAccessKeyCommand({ UserName: userName, AccessKeyId: key.accessKeyId, Status: 'Active' }),
  );
  logger.warn('old key reactivated (rollback)', { userName, accessKeyId: key.accessKeyId });
  return { reactivated: true };
}

export async function deleteKey(deps: LifecycleDeps, input: DeleteKeyInput): Promise<{ deleted: boolean }> {
  const { userName, accessKeyId, notUsedSince } = input;
  const key = (await listAccessKeys(deps.iam, userName)).find((k) => k.accessKeyId === accessKeyId);
  if (!key) return { deleted: false }; // a retry after the delete went through
  if (key.status === 'Active') {
    throw new UnsafeToDelete(`access key ${accessKeyId} of "${userName}" is active; it was not deleted`);
  }
  const lastUse = await getLastUse(deps.iam, accessKeyId);
  const used =
    notUsedSince === null
      ? lastUse.date !== null
      : usedAtOrAfter(lastUse, new Date(notUsedSince), deps.env.REKEY_LAST_USED_GRACE_SECONDS);
  if (used) {
    throw new UnsafeToDelete(
      `access key ${accessKeyId} of "${userName}" was used at ${lastUse.date ? iso(lastUse.date) : '?'}` +
        (notUsedSince ? `, after its deactivation at ${notUsedSince}` : '') +
        '; it was not deleted',
    );
  }
  await deleteAccessKey(deps.iam, userName, accessKeyId);
  logger.info('access key deleted', { userName, accessKeyId });
  return { deleted: true };
}
