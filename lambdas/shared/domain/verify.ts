/**
 * The two verifications of the workflow:
 * - verifyNewKey, right after creation: the stored key must authenticate as its user (retried
 *   while IAM propagates); then it becomes AWSCURRENT. If it never works it is deleted again and
 *   the old key, which was never touched, stays in service.
 * - verifyRotation, after the wait that follows deactivation: the old key must still be inactive
 *   and unused since deactivation, and the current secret must still hold a working new key.
 *   Any failure raises RotationVerificationFailed, on which the workflow reactivates the old key.
 */
import { DeleteAccessKeyCommand, type IAMClient } from '@aws-sdk/client-iam';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Clock } from '../clock.ts';
import { NewKeyNotWorking, RotationVerificationFailed } from '../errors.ts';
import { logger } from '../logger.ts';
import type { Deactivation, KeyRef, NewKey, RotationState } from '../schemas.ts';
import { authenticate, type StsFactory, waitUntilKeyWorks } from './authenticate.ts';
import { getLastUse, iso, listAccessKeys, usedAtOrAfter } from './keys.ts';
import { promoteVersion, readCredential } from './secret.ts';

export interface VerifyDeps {
  iam: IAMClient;
  secretsManager: SecretsManagerClient;
  stsFor: StsFactory;
  clock: Clock;
}

export async function verifyNewKey(
  deps: VerifyDeps & { env: { REKEY_VERIFY_ATTEMPTS: number; REKEY_VERIFY_BASE_DELAY_MS: number } },
  state: RotationState & { newKey: NewKey },
): Promise<{ verified: true; arn: string }> {
  const { newKey, userName } = state;
  const credential = await readCredential(deps.secretsManager, newKey.secretArn, {
    versionId: newKey.versionId,
  });
  if (credential.AccessKeyId !== newKey.accessKeyId) {
    throw new NewKeyNotWorking(
      `secret version ${newKey.versionId} holds ${credential.AccessKeyId}, not ${newKey.accessKeyId}`,
    );
  }
  const result = await waitUntilKeyWorks(
    deps,
    credential,
    state.userArn,
    deps.env.REKEY_VERIFY_ATTEMPTS,
    deps.env.REKEY_VERIFY_BASE_DELAY_MS,
  );
  if (!result.ok) {
    // Never handed out (it is only AWSPENDING): remove it so the user is left as it was.
    const keys = await listAccessKeys(deps.iam, userName);
    if (keys.some((k) => k.accessKeyId === newKey.accessKeyId)) {
      await deps.iam.send(
        new DeleteAccessKeyCommand({ UserName: userName, AccessKeyId: newKey.accessKeyId }),
      );
    }
    throw new NewKeyNotWorking(
      `new key ${newKey.accessKeyId} of "${userName}" did not authenticate after ${deps.env.REKEY_VERIFY_ATTEMPTS} ` +
        `attempts (${result.reason}); it was deleted and the old key is unchanged`,
    );
  }
  await promoteVersion(deps.secretsManager, newKey.secretArn, newKey.versionId);
  logger.info('new key verified and made current', { userName, accessKeyId: newKey.accessKeyId });
  return { verified: true, arn: result.arn };
}

export async function verifyRotation(
  deps: VerifyDeps & { env: { REKEY_LAST_USED_GRACE_SECONDS: number } },
  state: RotationState & { oldKey: KeyRef; newKey: NewKey; deactivation: Deactivation },
): Promise<{ verified: true }> {
  const { userName, oldKey, newKey } = state;
  const deactivatedAt = new Date(state.deactivation.deactivatedAt);
  const keys = await listAccessKeys(deps.iam, userName);
  const old = keys.find((k) => k.accessKeyId === oldKey.accessKeyId);
  const fail = (why: string) => {
    throw new RotationVerificationFailed(`verification of the rotation of "${userName}" failed: ${why}`);
  };
  if (old) {
    if (old.status === 'Active') fail(`the old key ${old.accessKeyId} is active again`);
    const lastUse = await getLastUse(deps.iam, old.accessKeyId);
    if (usedAtOrAfter(lastUse, deactivatedAt, deps.env.REKEY_LAST_USED_GRACE_SECONDS)) {
      fail(
        `the old key ${old.accessKeyId} was used at ${lastUse.date ? iso(lastUse.date) : '?'}` +
          `${lastUse.service ? ` (${lastUse.service}${lastUse.region ? `, ${lastUse.region}` : ''})` : ''}` +
          `, after its deactivation at ${iso(deactivatedAt)}`,
      );
    }
  }
  const fresh = keys.find((k) => k.accessKeyId === newKey.accessKeyId);
  if (fresh?.status !== 'Active')
    fail(`the new key ${newKey.accessKeyId} is ${fresh ? fresh.status : 'gone'}`);
  const current = await readCredential(deps.secretsManager, newKey.secretArn, { stage: 'AWSCURRENT' });
  if (current.AccessKeyId !== newKey.accessKeyId) {
    fail(
      `the secret's AWSCURRENT version holds ${current.AccessKeyId}, not the new key ${newKey.accessKeyId}`,
    );
  }
  const auth = await authenticate(deps.stsFor, current);
  if (!auth.ok) fail(`the new key ${newKey.accessKeyId} no longer authenticates (${auth.reason})`);
  if (auth.ok && state.userArn && auth.arn !== state.userArn)
    fail(`the new key authenticates as ${auth.arn}`);
  return { verified: true };
}
