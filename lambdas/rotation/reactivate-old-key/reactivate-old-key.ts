/**
 * The rollback: reactivates the old key after a failed verification of the rotation. A key that is
 * already active (a retry after the change went through) is left as it is.
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import type { KeyRef, RotationState } from '../../../contract/schemas.ts';
import { credentialKind } from '../../shared/credentials.ts';
import { requireKey } from '../../shared/keys.ts';
import { logger } from '../../shared/logger.ts';

export async function reactivateOldKey(
  deps: { iam: IAMClient },
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
