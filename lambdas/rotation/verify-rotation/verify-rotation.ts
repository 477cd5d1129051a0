/**
 * The check after the wait that follows deactivation: the old key must still be inactive and
 * unused since the rotation's quiet-since instant, and the current secret must still hold a
 * working new key. Any failure raises RotationVerificationFailed, on which the workflow
 * reactivates the old key.
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { RotationVerificationFailed } from '../../../contract/errors.ts';
import type { KeyRef, NewKey, RotationState } from '../../../contract/schemas.ts';
import { authenticate, type StsFactory } from '../../shared/authenticate.ts';
import { credentialKind } from '../../shared/credentials.ts';
import { iso, usedAtOrAfter } from '../../shared/keys.ts';
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
  deps: VerifyRotationDeps & { env: { REKEY_LAST_USED_GRACE_SECONDS: number } },
  state: RotationState & { oldKey: KeyRef; newKey: NewKey; quietSince: string },
): Promise<{ verified: true }> {
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
  if (old) {
    if (old.status === 'Active') fail(`the old key ${old.accessKeyId} is active again`);
    const lastUse = await kind.lastUse(old.accessKeyId);
    if (usedAtOrAfter(lastUse, quietSince, deps.env.REKEY_LAST_USED_GRACE_SECONDS)) {
      fail(
        `the old key ${old.accessKeyId} was used at ${lastUse.date ? iso(lastUse.date) : '?'}` +
          `${lastUse.service ? ` (${lastUse.service}${lastUse.region ? `, ${lastUse.region}` : ''})` : ''}` +
          `, at or after ${iso(quietSince)}, since when it had to be quiet${deactivated}`,
      );
    }
  }
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
  return { verified: true };
}
