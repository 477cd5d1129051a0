import { STSClient } from '@aws-sdk/client-sts';
import { HTTP_TIMEOUTS } from './config.ts';

/**
 * An STS client signed with a given access key: the only client built per call, because proving
 * that a key works means signing a request with that key. One attempt: the caller owns retries.
 */
export function stsClientFor(credentials: { accessKeyId: string; secretAccessKey: string }): STSClient {
  return new STSClient({ credentials, maxAttempts: 1, requestHandler: { ...HTTP_TIMEOUTS } });
}
