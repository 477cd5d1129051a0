/**
 * The check after the wait that follows deactivation, and the delete it allows, in one
 * invocation: the current secret must still hold a working new key, and the old key must still
 * be inactive and unused since the rotation's quiet-since instant. Any failure raises
 * RotationVerificationFailed, on which the workflow reactivates the old key. Then the user is
 * re-checked (exempt, protected, out of scope: a safe stop, the old key kept inactive) and the
 * old key deleted. The old key's last use is read after the new key's proof, right before the
 * re-check and DeleteAccessKey: nothing the delete relies on is older than this invocation, and
 * the one listing of the keys serves both (a separate delete step listed them and read the last
 * use again).
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { RotationVerificationFailed } from '../../../contract/errors.ts';
import type { KeyRef, NewKey, RotationState } from '../../../contract/schemas.ts';
import { authenticate, type StsFactory } from '../../shared/authenticate.ts';
import type { Clock } from '../../shared/clock.ts';
import { credentialKind } from '../../shared/credentials.ts';
import { type EligibilityEnv, requireEligible } from '../../shared/eligibility.ts';
import { iso, usedAtOrAfter } from '../../shared/keys.ts';
import { logger } from '../../shared/logger.ts';
import {
  isServiceCredential,
  readStoredCredential,
  type StoredCredential,
  storedCredentialId,
} from '../../shared/secret.ts';

export interface VerifyRotationDeps {
  iam: IAMClient;
  secretsManager: SecretsManagerClient;
  stsFor: StsFactory;
  clock: Clock;
  env: { REKEY_LAST_USED_GRACE_SECONDS: number } & EligibilityEnv;
}

/** Re-proves the current credential: an access key signs a call; a service-specific credential is re-read from IAM. */
async function stillValid(
  deps: VerifyRotationDeps,
  current: StoredCredential,
  state: RotationState,
): Promise<string | null> {
  if (isServiceCredential(current)) {
    if (current.UserName !== state.userName || current.ServiceName !== state.serviceName)
      return `the secret's AWSCURRENT version is not the ${current.ServiceName} credential of "${state.userName}"`;
    return null;
  }
  const auth = await authenticate(deps.stsFor, current);
  if (!auth.ok) return `the new key ${current.AccessKeyId} no longer authenticates (${auth.reason})`;
  if (state.userArn && auth.arn !== state.userArn) return `the new key authenticates as ${auth.arn}`;
  return null;
}

export async function verifyRotation(
  deps: VerifyRotationDeps,
  state: RotationState & { oldKey: KeyRef; newKey: NewKey; quietSince: string },
): Promise<{ verified: true; deleted: boolean }> {
  const { userName, oldKey, newKey } = state;
  const kind = credentialKind(deps.iam, state.serviceName);
  // Q, not the deactivation: a use made before the deactivation but after Q may surface only now
  // (IAM documents no delivery bound for last-used data), and it means a consumer still held the key.
  const quietSince = new Date(state.quietSince);
  const deactivated = state.deactivation ? `; deactivated at ${state.deactivation.deactivatedAt}` : '';
  const keys = await kind.list(userName);
  const old = keys.find((k) => k.accessKeyId === oldKey.accessKeyId);
  const fail = (why: string) => {
    throw new RotationVerificationFailed(`verification of the rotation of "${userName}" failed: ${why}`);
  };
  if (old?.status === 'Active') fail(`the old key ${old.accessKeyId} is active again`);
  const fresh = keys.find((k) => k.accessKeyId === newKey.accessKeyId);
  if (fresh?.status !== 'Active')
    fail(`the new key ${newKey.accessKeyId} is ${fresh ? fresh.status : 'gone'}`);
  const current = await readStoredCredential(deps.secretsManager, newKey.secretArn, { stage: 'AWSCURRENT' });
  const currentId = storedCredentialId(current);
  if (currentId !== newKey.accessKeyId) {
    fail(`the secret's AWSCURRENT version holds ${currentId}, not the new key ${newKey.accessKeyId}`);
  }
  const problem = await stillValid(deps, current, state);
  if (problem) fail(problem);
  // A retry after the delete went through finds the old key gone: verified, nothing to delete.
  if (!old) return { verified: true, deleted: false };
  const lastUse = await kind.lastUse(old.accessKeyId);
  if (usedAtOrAfter(lastUse, quietSince, deps.env.REKEY_LAST_USED_GRACE_SECONDS)) {
    fail(
      `the old key ${old.accessKeyId} was used at ${lastUse.date ? iso(lastUse.date) : '?'}` +
        `${lastUse.service ? ` (${lastUse.service}${lastUse.region ? `, ${lastUse.region}` : ''})` : ''}` +
        `, at or after ${iso(quietSince)}, since when it had to be quiet${deactivated}`,
    );
  }
  await requireEligible(deps, userName, `deleting ${old.accessKeyId}, which is kept inactive`);
  await kind.remove(userName, old.accessKeyId);
  logger.info(`old ${kind.noun} deleted`, { userName, accessKeyId: old.accessKeyId });
  return { verified: true, deleted: true };
}
