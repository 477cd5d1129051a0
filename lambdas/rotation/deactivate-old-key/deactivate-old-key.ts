/**
 * Deactivates the old key. Like every key-status change of the workflow it re-reads the key first
 * and re-checks the safety rule that applies at that moment, so a decision made minutes (or days)
 * earlier is never acted on blindly: never deactivate a key used at or after the rotation's
 * quiet-since instant Q (less the last-use grace).
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import { OldKeyStillInUse, STILL_IN_USE_ADVICE } from '../../../contract/errors.ts';
import type { Deactivation, KeyRef, NewKey, RotationState } from '../../../contract/schemas.ts';
import type { Clock } from '../../shared/clock.ts';
import { credentialKind } from '../../shared/credentials.ts';
import { type EligibilityEnv, requireEligible } from '../../shared/eligibility.ts';
import { iso, requireKey, usedAtOrAfter } from '../../shared/keys.ts';
import { logger } from '../../shared/logger.ts';

export interface DeactivateDeps {
  iam: IAMClient;
  clock: Clock;
  env: { REKEY_LAST_USED_GRACE_SECONDS: number } & EligibilityEnv;
}

export async function deactivateOldKey(
  deps: DeactivateDeps,
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
