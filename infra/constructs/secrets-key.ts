import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

export interface SecretsKeyProps {
  /**
   * The key's alias. An alias is unique per account and region: one rekey per account/region.
   * @default 'alias/rekey-secrets'
   */
  readonly alias?: string;
}

/**
 * The customer-managed KMS key that encrypts the stored access keys. A key of our own (not
 * aws/secretsmanager) so that who may decrypt a secret is decided in one key policy and
 * every decryption is visible in CloudTrail under this key.
 */
export class SecretsKey extends Construct {
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: SecretsKeyProps = {}) {
    super(scope, id);
    this.key = new kms.Key(this, 'Key', {
      alias: props.alias ?? 'alias/rekey-secrets',
      description: 'rekey: encrypts the rotated IAM access keys stored in Secrets Manager',
      enableKeyRotation: true,
      // Losing this key loses every stored access key: never delete it with the stack, and
      // give a mistaken deletion the longest window to be cancelled.
      removalPolicy: RemovalPolicy.RETAIN,
      pendingWindow: Duration.days(30),
    });
  }
}
