/**
 * SDK clients, one per service, created once per container (module scope) and exported so unit
 * tests can `mockClient()` them. Region, credentials and endpoint come from the SDK's default
 * chain (AWS_REGION, AWS_ENDPOINT_URL, ...), which is how the local runner points them at an
 * emulator.
 */
import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { IAMClient } from '@aws-sdk/client-iam';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SNSClient } from '@aws-sdk/client-sns';
import { STSClient } from '@aws-sdk/client-sts';

/** Standard retry mode with a few more attempts: IAM throttles at low request rates. */
const common = { maxAttempts: 5 } as const;

export const iam = new IAMClient(common);
export const secretsManager = new SecretsManagerClient(common);
export const dynamodb = new DynamoDBClient(common);
export const sns = new SNSClient(common);
export const eventBridge = new EventBridgeClient(common);
export const cloudTrail = new CloudTrailClient(common);

/**
 * An STS client signed with a given access key: the only client built per call, because proving
 * that a key works means signing a request with that key. One attempt: the caller owns retries.
 */
export function stsClientFor(credentials: { accessKeyId: string; secretAccessKey: string }): STSClient {
  return new STSClient({ credentials, maxAttempts: 1 });
}
