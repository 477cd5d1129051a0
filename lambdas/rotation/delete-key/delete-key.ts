/**
 * Deletes an inactive key: in the workflow, the unused extra key that holds the second slot (the
 * old key is deleted by verify-rotation, right after its checks). It re-reads the key and
 * re-checks the rule first: never delete a key that is active or was used at or after the instant
 * it had to be quiet from (less the last-use grace; null: never used at all), nor one of a user
 * who left rekey's scope meanwhile.
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import { UnsafeToDelete } from '../../../contract/errors.ts';
import type { DeleteKeyInput } from '../../../contract/schemas.ts';
import type { Clock } from '../../shared/clock.ts';
import { credentialKindOfId } from '../../shared/credentials.ts';
import { type EligibilityEnv, requireEligible } from '../../shared/eligibility.ts';
import { iso, usedAtOrAfter } from '../../shared/keys.ts';
import { logger } from '../../shared/logger.ts';

export interface DeleteKeyDeps {
  iam: IAMClient;
  clock: Clock;
  env: { REKEY_LAST_USED_GRACE_SECONDS: number } & EligibilityEnv;
}

export async function deleteKey(deps: DeleteKeyDeps, input: DeleteKeyInput): Promise<{ deleted: boolean }> {
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
