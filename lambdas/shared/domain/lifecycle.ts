/**
 * The three key-status changes of the workflow. Each one re-reads the key first and re-checks the
 * safety rule that applies at that moment, so a decision made minutes (or days) earlier can never
 * be acted on blindly: never deactivate a key used at or after the rotation's quiet-since instant
 * Q, never delete a key that is active or was used at or after Q (both less the last-use grace).
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import type { Clock } from '../clock.ts';
import { OldKeyStillInUse, STILL_IN_USE_ADVICE, UnsafeToDelete } from '../errors.ts';
import { logger } from '../logger.ts';
import type { Deactivation, DeleteKeyInput, KeyRef, NewKey, RotationState } from '../schemas.ts';
import { credentialKind, credentialKindOfId } from './credentials.ts';
import { type EligibilityEnv, requireEligible } from './eligibility.ts';
import { iso, requireKey, usedAtOrAfter } from './keys.ts';

export interface LifecycleDeps {
  iam: IAMClient;
  clock: Clock;
  env: { REKEY_LAST_USED_GRACE_SECONDS: number } & EligibilityEnv;
}

export async function deactivateOldKey(
  deps: LifecycleDeps,
  state: RotationState & { oldKey: KeyRef; newKey: NewKey; quietSince: string },
): Promise<Deactivation> {
  const { userName, oldKey, newKey } = state;
  const kind = credentialKind(deps.iam, state.serviceName);
  const key = requireKey(await kind.list(userName), oldKey.accessKeyId, userName, kind.noun);
  if (key.status !== 'Active') {
    // A retry after the status change went through: it happened at Q or later, and the checks
    // after this one compare with Q, not with this instant.
    return { deactivatedAt: state.quietSince };
  }
  const lastUse = await kind.lastUse(key.accessKeyId);
  if (usedAtOrAfter(lastUse, new Date(state.quietSince), deps.env.REKEY_LAST_USED_GRACE_SECONDS)) {
    throw new OldKeyStillInUse(
      `old key ${key.accessKeyId} of "${userName}" was used at ${lastUse.date ? iso(lastUse.date) : '?'}, ` +
        `at or after ${state.quietSince}, when it had to be quiet: it was not deactivated. Both keys stay ` +
        `active and the secret holds the new key ${newKey.accessKeyId}. ${STILL_IN_USE_ADVICE}`,
    );
  }
  await requireEligible(deps, userName, `deactivating ${key.accessKeyId}, which stays active`);
  // Taken before the call: a use racing the deactivation then counts as after it.
  const deactivatedAt = iso(deps.clock.now());
  await kind.setStatus(userName, key.accessKeyId, 'Inactive');
  logger.info('old key deactivated', {
    userName,
    kind: kind.noun,
    accessKeyId: key.accessKeyId,
    deactivatedAt,
  });
  return { deactivatedAt };
}

export async function reactivateOldKey(
  deps: Pick<LifecycleDeps, 'iam'>,
  state: RotationState & { oldKey: KeyRef },
): Promise<{ reactivated: boolean }> {
  const { userName, oldKey } = state;
  const kind = credentialKind(deps.iam, state.serviceName);
  const key = requireKey(await kind.list(userName), oldKey.accessKeyId, userName, kind.noun);
  if (key.status === 'Active') return { reactivated: false };
  await kind.setStatus(userName, key.accessKeyId, 'Active');
  logger.warn('old key reactivated (rollback)', { userName, kind: kind.noun, accessKeyId: key.accessKeyId });
  return { reactivated: true };
}

export async function deleteKey(deps: LifecycleDeps, input: DeleteKeyInput): Promise<{ deleted: boolean }> {
  const { userName, accessKeyId, notUsedSince } = input;
  // The payload carries only the id (the same three fields for both kinds): its prefix tells the kind.
  const kind = credentialKindOfId(deps.iam, accessKeyId);
  const key = (await kind.list(userName)).find((k) => k.accessKeyId === accessKeyId);
  if (!key) return { deleted: false }; // a retry after the delete went through
  if (key.status === 'Active') {
    throw new UnsafeToDelete(`${kind.noun} ${accessKeyId} of "${userName}" is active; it was not deleted`);
  }
  const lastUse = await kind.lastUse(accessKeyId);
  const used =
    notUsedSince === null
      ? lastUse.date !== null
      : usedAtOrAfter(lastUse, new Date(notUsedSince), deps.env.REKEY_LAST_USED_GRACE_SECONDS);
  if (used) {
    throw new UnsafeToDelete(
      `${kind.noun} ${accessKeyId} of "${userName}" was used at ${lastUse.date ? iso(lastUse.date) : '?'}` +
        (notUsedSince ? `, at or after ${notUsedSince}, since when it had to be quiet` : '') +
        '; it was not deleted',
    );
  }
  await requireEligible(deps, userName, `deleting ${accessKeyId}, which is kept`);
  await kind.remove(userName, accessKeyId);
  logger.info(`${kind.noun} deleted`, { userName, accessKeyId });
  return { deleted: true };
}
