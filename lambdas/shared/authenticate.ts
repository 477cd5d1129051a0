/**
 * There is no API that says whether an access key is live: the only proof is a request signed
 * with it. sts:GetCallerIdentity needs no permission, so it works for any user.
 */
import { GetCallerIdentityCommand, type STSClient } from '@aws-sdk/client-sts';
import { isAwsError } from '../../contract/errors.ts';
import type { Clock } from './clock.ts';
import type { CredentialSecret } from './secret.ts';

/** Errors that mean "this key/secret pair is not (yet) accepted", as opposed to a transient fault. */
export const AUTH_REJECTED_ERRORS = [
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'AccessDeniedException',
  'UnrecognizedClientException',
  'InvalidAccessKeyId',
  'ExpiredToken',
];

export type StsFactory = (credentials: { accessKeyId: string; secretAccessKey: string }) => STSClient;

export type AuthResult = { ok: true; arn: string } | { ok: false; reason: string };

/** One attempt. Rejections are results; anything else (network, 5xx) is thrown for the caller's retry. */
export async function authenticate(stsFor: StsFactory, credential: CredentialSecret): Promise<AuthResult> {
  const sts = stsFor({ accessKeyId: credential.AccessKeyId, secretAccessKey: credential.SecretAccessKey });
  try {
    const out = await sts.send(new GetCallerIdentityCommand({}));
    return { ok: true, arn: out.Arn ?? '' };
  } catch (error) {
    if (isAwsError(error, ...AUTH_REJECTED_ERRORS)) return { ok: false, reason: (error as Error).name };
    throw error;
  } finally {
    sts.destroy();
  }
}

/**
 * Tries the key until it authenticates as `expectedArn`, with exponential backoff while IAM
 * propagates the new key (reported 4-15 s). Returns the last result.
 */
export async function waitUntilKeyWorks(
  deps: { stsFor: StsFactory; clock: Clock },
  credential: CredentialSecret,
  expectedArn: string | null,
  attempts: number,
  baseDelayMs: number,
): Promise<AuthResult> {
  let last: AuthResult = { ok: false, reason: 'not tried' };
  for (let attempt = 1; attempt <= attempts; attempt++) {
    last = await authenticate(deps.stsFor, credential);
    if (last.ok) {
      if (expectedArn && last.arn !== expectedArn) {
        return { ok: false, reason: `authenticated as ${last.arn}, expected ${expectedArn}` };
      }
      return last;
    }
    if (attempt < attempts) await deps.clock.sleep(baseDelayMs * 2 ** (attempt - 1));
  }
  return last;
}
