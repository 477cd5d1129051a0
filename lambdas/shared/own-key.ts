/**
 * rekey's own key: the key the lock journal says a create step made, seen through the secret
 * version that holds it. DescribeSecret shows each version's labels, never a value, so the plan and
 * the cleanup can tell a key rekey handed out (its version is or was AWSCURRENT) from one it never
 * did, without any right to read secrets.
 */
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { UnexpectedKeyState } from '../../contract/errors.ts';
import type { CredentialKind } from './credentials.ts';
import type { LockItem } from './lock.ts';
import { logger } from './logger.ts';
import { describeVersions, dropPendingLabel, isHandedOut } from './secret.ts';

export interface CreatedKey {
  accessKeyId: string;
  versionId: string;
  /** The execution whose create step made it. */
  createdBy: string | null;
  /** The key it was made to replace. */
  replacedKeyId: string | null;
  secretName: string;
  /** null when the secret does not exist (the store never happened). */
  secretArn: string | null;
  /** Its version's labels; none when the version does not exist. */
  stages: string[];
  /** Its version is AWSCURRENT: this is the key consumers read now. */
  current: boolean;
  /** Its version is or was AWSCURRENT: somebody may hold it, so cleanup never removes it. */
  handedOut: boolean;
}

/** The created key of the journal, or null when the journal records none. */
export async function createdKeyOf(
  sm: SecretsManagerClient,
  lock: LockItem | null,
  secretName: string,
): Promise<CreatedKey | null> {
  if (!lock?.createdKeyId || !lock.createdVersionId) return null;
  // Journals written before the secret name was recorded name the plan's secret.
  const name = lock.secretName ?? secretName;
  const described = await describeVersions(sm, name);
  const stages = described?.stages[lock.createdVersionId] ?? [];
  return {
    accessKeyId: lock.createdKeyId,
    versionId: lock.createdVersionId,
    createdBy: lock.createdBy,
    replacedKeyId: lock.replacedKeyId,
    secretName: name,
    secretArn: described?.arn ?? null,
    stages,
    current: stages.includes('AWSCURRENT'),
    handedOut: isHandedOut(stages),
  };
}

/**
 * Removes a created key that was never handed out, then the AWSPENDING label of its version.
 * Nobody reads AWSPENDING but rekey's own verify step, so nobody holds the key; a handed-out key
 * is refused here whatever the caller thought.
 */
export async function removeNeverHandedOut(
  sm: SecretsManagerClient,
  kind: CredentialKind,
  userName: string,
  created: CreatedKey,
): Promise<void> {
  if (created.handedOut) {
    throw new UnexpectedKeyState(
      `${kind.noun} ${created.accessKeyId} of "${userName}" was handed out (${created.secretName}); it is not removed`,
    );
  }
  logger.warn('removing a credential rekey created but never handed out', {
    userName,
    kind: kind.noun,
    accessKeyId: created.accessKeyId,
    createdBy: created.createdBy,
  });
  await kind.remove(userName, created.accessKeyId);
  if (created.stages.includes('AWSPENDING')) {
    await dropPendingLabel(sm, created.secretName, created.versionId);
  }
}
