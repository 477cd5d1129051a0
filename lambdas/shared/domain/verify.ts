/**
 * The two verifications of the workflow:
 * - verifyNewKey, right after creation: the stored key must authenticate as its user (retried
 *   while IAM propagates); then it becomes AWSCURRENT. If it never works it is deleted again and
 *   the old key, which was never touched, stays in service.
 * - verifyRotation, after the wait that follows deactivation: the old key must still be inactive
 *   and unused since the rotation's quiet-since instant, and the current secret must still hold a
 *   working new key.
 *   Any failure raises RotationVerificationFailed, on which the workflow reactivates the old key.
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Clock } from '../clock.ts';
import { NewKeyNotWorking, RotationVerificationFailed } from '../errors.ts';
import { logger } from '../logger.ts';
import type { KeyRef, NewKey, RotationState } from '../schemas.ts';
import { type AuthResult, authenticate, type StsFactory, waitUntilKeyWorks } from './authenticate.ts';
import { type CredentialKind, credentialKind } from './credentials.ts';
import { iso, usedAtOrAfter } from './keys.ts';
import {
  describeVersions,
  isHandedOut,
  isServiceCredential,
  promoteVersion,
  readStoredCredential,
  type ServiceCredentialSecret,
  type StoredCredential,
  storedCredentialId,
} from './secret.ts';

export interface VerifyDeps {
  iam: IAMClient;
  secretsManager: SecretsManagerClient;
  stsFor: StsFactory;
  clock: Clock;
}

/**
 * Returns the rotation's quiet-since instant Q: the state's, if it has one (a resumed run), else
 * the hand-out, taken just before the promotion (so a use racing the promotion counts as after it).
 * When an earlier attempt already promoted the version, the hand-out time is unknown and the key's
 * creation, which came before it, stands in: an earlier Q only ever counts more uses.
 */
export async function verifyNewKey(
  deps: VerifyDeps & { env: { REKEY_VERIFY_ATTEMPTS: number; REKEY_VERIFY_BASE_DELAY_MS: number } },
  state: RotationState & { newKey: NewKey },
): Promise<string> {
  const { newKey, userName } = state;
  const kind = credentialKind(deps.iam, state.serviceName);
  const credential = await readStoredCredential(deps.secretsManager, newKey.secretArn, {
    versionId: newKey.versionId,
  });
  const storedId = storedCredentialId(credential);
  if (storedId !== newKey.accessKeyId) {
    throw new NewKeyNotWorking(
      `secret version ${newKey.versionId} holds ${storedId}, not ${newKey.accessKeyId}`,
    );
  }
  const attempts = deps.env.REKEY_VERIFY_ATTEMPTS;
  const result = isServiceCredential(credential)
    ? await waitUntilListedActive(deps, kind, state, credential, attempts)
    : await waitUntilKeyWorks(deps, credential, state.userArn, attempts, deps.env.REKEY_VERIFY_BASE_DELAY_MS);
  if (!result.ok) {
    // A resumed run re-proves a key handed out earlier: consumers may already use it, and a key
    // that fails here may be failing for a while only. It is kept and a human looks.
    const stages =
      (await describeVersions(deps.secretsManager, newKey.secretArn))?.stages[newKey.versionId] ?? [];
    if (isHandedOut(stages)) {
      throw new NewKeyNotWorking(
        `${kind.noun} ${newKey.accessKeyId} of "${userName}", handed out earlier (${stages.join(', ')}), failed ` +
          `verification after ${attempts} attempts (${result.reason}); it was kept, and the old ${kind.noun} is unchanged`,
      );
    }
    // Never handed out (it is only AWSPENDING): remove it so the user is left as it was.
    const keys = await kind.list(userName);
    if (keys.some((k) => k.accessKeyId === newKey.accessKeyId))
      await kind.remove(userName, newKey.accessKeyId);
    throw new NewKeyNotWorking(
      kind.tracksLastUse
        ? `new key ${newKey.accessKeyId} of "${userName}" did not authenticate after ${attempts} ` +
            `attempts (${result.reason}); it was deleted and the old key is unchanged`
        : `new ${kind.noun} ${newKey.accessKeyId} of "${userName}" failed verification after ${attempts} ` +
            `attempts (${result.reason}); it was deleted and the old credential is unchanged`,
    );
  }
  const handOut = iso(deps.clock.now());
  const { alreadyCurrent } = await promoteVersion(deps.secretsManager, newKey.secretArn, newKey.versionId);
  const quietSince = state.quietSince ?? (alreadyCurrent ? newKey.createDate : handOut);
  logger.info('new key verified and made current', {
    userName,
    ...(state.serviceName ? { serviceName: state.serviceName } : {}),
    accessKeyId: newKey.accessKeyId,
    quietSince,
  });
  return quietSince;
}

/**
 * What can be verified of a service-specific credential without a service to log in to: the
 * stored secret belongs to this user and service, and IAM lists the credential, Active, with the
 * stored user name (retried with backoff while IAM propagates). The password itself is proven by
 * the consumer's first connection: IAM offers no call that checks it.
 */
async function waitUntilListedActive(
  deps: VerifyDeps & { env: { REKEY_VERIFY_BASE_DELAY_MS: number } },
  kind: CredentialKind,
  state: RotationState & { newKey: NewKey },
  credential: ServiceCredentialSecret,
  attempts: number,
): Promise<AuthResult> {
  const mismatch = serviceCredentialMismatch(credential, state);
  if (mismatch) return { ok: false, reason: mismatch };
  let last: AuthResult = { ok: false, reason: 'not tried' };
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const listed = (await kind.list(state.userName)).find((k) => k.accessKeyId === state.newKey.accessKeyId);
    if (listed?.status === 'Active' && listed.serviceUserName === credential.ServiceUserName) {
      return { ok: true, arn: state.userArn ?? '' };
    }
    last = {
      ok: false,
      reason: listed
        ? `IAM lists it as ${listed.status}${listed.serviceUserName === credential.ServiceUserName ? '' : ` for another service user name (${listed.serviceUserName ?? 'none'})`}`
        : `IAM does not list it for ${kind.serviceName}`,
    };
    // Only a credential IAM does not list yet may still appear (eventual consistency).
    if (listed) return last;
    if (attempt < attempts) await deps.clock.sleep(deps.env.REKEY_VERIFY_BASE_DELAY_MS * 2 ** (attempt - 1));
  }
  return last;
}

/** The stored secret must name the user, the service and the credential the workflow carries. */
function serviceCredentialMismatch(
  credential: ServiceCredentialSecret,
  state: RotationState & { newKey: NewKey },
): string | null {
  if (credential.UserName !== state.userName) return `the secret names the user "${credential.UserName}"`;
  if (credential.ServiceName !== state.serviceName) return `the secret is for ${credential.ServiceName}`;
  if (state.newKey.serviceUserName && credential.ServiceUserName !== state.newKey.serviceUserName)
    return `the secret holds the service user name ${credential.ServiceUserName}, not ${state.newKey.serviceUserName}`;
  return null;
}

/** Re-proves the current credential: an access key signs a call; a service-specific credential is re-read from IAM. */
async function stillValid(
  deps: VerifyDeps,
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
  deps: VerifyDeps & { env: { REKEY_LAST_USED_GRACE_SECONDS: number } },
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
