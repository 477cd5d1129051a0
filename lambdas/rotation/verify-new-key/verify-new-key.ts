/**
 * The check right after creation: the stored key must authenticate as its user (retried while IAM
 * propagates); then it becomes AWSCURRENT. If it never works it is deleted again and the old key,
 * which was never touched, stays in service.
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { NewKeyNotWorking } from '../../../contract/errors.ts';
import type { NewKey, RotationState } from '../../../contract/schemas.ts';
import { type AuthResult, type StsFactory, waitUntilKeyWorks } from '../../shared/authenticate.ts';
import type { Clock } from '../../shared/clock.ts';
import { type CredentialKind, credentialKind } from '../../shared/credentials.ts';
import { iso } from '../../shared/keys.ts';
import { logger } from '../../shared/logger.ts';
import {
  describeVersions,
  isHandedOut,
  isServiceCredential,
  promoteVersion,
  readStoredVersion,
  type ServiceCredentialSecret,
  storedCredentialId,
} from '../../shared/secret.ts';

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
  const { value: credential, stages: storedStages } = await readStoredVersion(
    deps.secretsManager,
    newKey.secretArn,
    { versionId: newKey.versionId },
  );
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
  // The labels the read above reported: a version already AWSCURRENT needs no DescribeSecret.
  const { alreadyCurrent } = await promoteVersion(
    deps.secretsManager,
    newKey.secretArn,
    newKey.versionId,
    storedStages,
  );
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
