import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

/**
 * What the account (root) may do with the key: manage it, never use it. Without kms:Decrypt,
 * kms:GenerateDataKey* or kms:CreateGrant here, no identity policy in the account can decrypt a
 * secret; only the principals this key policy names can. kms:PutKeyPolicy must stay, or nobody
 * could ever change the policy again (KMS refuses such a policy at creation).
 */
export const KEY_ADMIN_ACTIONS = [
  'kms:CancelKeyDeletion',
  'kms:CreateAlias',
  'kms:DeleteAlias',
  'kms:DescribeKey',
  'kms:DisableKey',
  'kms:DisableKeyRotation',
  'kms:EnableKey',
  'kms:EnableKeyRotation',
  'kms:GetKeyPolicy',
  'kms:GetKeyRotationStatus',
  'kms:ListGrants',
  'kms:ListKeyRotations',
  'kms:ListResourceTags',
  'kms:PutKeyPolicy',
  'kms:RevokeGrant',
  'kms:ScheduleKeyDeletion',
  'kms:TagResource',
  'kms:UntagResource',
  'kms:UpdateAlias',
  'kms:UpdateKeyDescription',
];

export interface SecretsKeyProps {
  /**
   * The key's alias. An alias is unique per account and region: one rekey per account/region.
   * @default 'alias/rekey-secrets'
   */
  readonly alias?: string;
  /**
   * The key's description.
   * @default 'rekey: encrypts the rotated IAM access keys stored in Secrets Manager'
   */
  readonly description?: string;
  /**
   * The secret name prefix: the key encrypts and decrypts only secrets named with it (Secrets
   * Manager puts the secret's ARN in the encryption context).
   * @default - required
   */
  readonly secretPrefix: string;
  /**
   * IAM users under this path may decrypt through Secrets Manager; which secret each may read is
   * decided by the secret's own resource policy (only its own).
   * @default - required
   */
  readonly userPathPrefix: string;
  /**
   * IAM users and roles, of this account or another, that read every stored key; each is named
   * here (a principal of another account can use the key only if this policy names it).
   * @default - none
   */
  readonly consumerPrincipals?: readonly string[];
  /**
   * Whether users' consumer tags may name who reads their secret. Those principals are known
   * only at run time, so the key policy must let any IAM user or role of this account decrypt
   * through Secrets Manager; each secret's resource policy then decides who reads it. Off, only
   * the users under the path (and consumerPrincipals) may decrypt.
   * @default false
   */
  readonly consumersByTag?: boolean;
}

/**
 * The customer-managed KMS key that encrypts the stored access keys. A key of our own (not
 * aws/secretsmanager) so that who may decrypt a secret is decided in one key policy and
 * every decryption is visible in CloudTrail under this key. The key policy names every user of
 * the key and does not delegate its use to IAM: rekey's create step may encrypt; its verify
 * steps, the configured consumers and the IAM users (and, with consumer tags, roles) of this
 * account may decrypt, each only through Secrets Manager and only for rekey's secrets; the
 * account may administer the key. No account root and no federated session is ever a decrypter.
 * Which secret a user or role of the account may read is not decided here, but by each secret's
 * resource policy, whose Deny refuses the value (and so the decryption) to all it does not name.
 */
export class SecretsKey extends Construct {
  readonly key: kms.Key;
  private readonly viaSecretsManager: Record<string, Record<string, unknown>>;

  constructor(scope: Construct, id: string, props: SecretsKeyProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const secrets = stack.formatArn({
      service: 'secretsmanager',
      resource: 'secret',
      resourceName: `${props.secretPrefix}*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    this.viaSecretsManager = {
      StringEquals: { 'kms:ViaService': `secretsmanager.${stack.region}.amazonaws.com` },
      StringLike: { 'kms:EncryptionContext:SecretARN': secrets },
    };

    // A policy of our own: the default one grants kms:* to the account, i.e. to any IAM policy.
    const policy = new iam.PolicyDocument({
      statements: [
        new iam.PolicyStatement({
          sid: 'AccountAdministersTheKey',
          principals: [new iam.AccountRootPrincipal()],
          actions: KEY_ADMIN_ACTIONS,
          resources: ['*'],
        }),
      ],
    });
    this.key = new kms.Key(this, 'Key', {
      alias: props.alias ?? 'alias/rekey-secrets',
      description:
        props.description ?? 'rekey: encrypts the rotated IAM access keys stored in Secrets Manager',
      enableKeyRotation: true,
      policy,
      // Losing this key loses every stored access key: never delete it with the stack, and
      // give a mistaken deletion the longest window to be cancelled.
      removalPolicy: RemovalPolicy.RETAIN,
      pendingWindow: Duration.days(30),
    });

    const consumers = props.consumerPrincipals ?? [];
    if (consumers.length > 0) {
      this.allow(
        'ConsumersDecrypt',
        consumers.map((arn) => new iam.ArnPrincipal(arn)),
        ['kms:Decrypt'],
      );
    }
    // Principals of this account that read a secret: always its own user (under the path);
    // with consumer tags, also whatever users and roles a tag names, which no deploy-time policy
    // can list. Matched by aws:PrincipalArn (an assumed role's is the role's ARN), so neither the
    // account root nor a federated-user session is among them. The secret's own policy denies
    // every one of them the secrets that are not theirs.
    const principalArn = (resource: string) =>
      stack.formatArn({ service: 'iam', region: '', resource, arnFormat: ArnFormat.NO_RESOURCE_NAME });
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: props.consumersByTag ? 'UsersAndRolesOfTheAccountDecrypt' : 'UsersUnderThePathDecrypt',
        principals: [new iam.AnyPrincipal()],
        actions: ['kms:Decrypt'],
        resources: ['*'],
        conditions: {
          ...this.viaSecretsManager,
          StringEquals: {
            ...this.viaSecretsManager.StringEquals,
            'kms:CallerAccount': stack.account,
          },
          ArnLike: {
            'aws:PrincipalArn': props.consumersByTag
              ? [principalArn('user/*'), principalArn('role/*')]
              : principalArn(`user${props.userPathPrefix}*`),
          },
        },
      }),
    );
  }

  /** The create step: Secrets Manager generates a data key under this key for a new version. */
  allowEncrypt(sid: string, role: iam.IRole): void {
    this.allow(sid, [new iam.ArnPrincipal(role.roleArn)], ['kms:Encrypt', 'kms:GenerateDataKey']);
  }

  /** The verify steps: Secrets Manager decrypts a version's data key under this key. */
  allowDecrypt(sid: string, role: iam.IRole): void {
    this.allow(sid, [new iam.ArnPrincipal(role.roleArn)], ['kms:Decrypt']);
  }

  private allow(sid: string, principals: iam.IPrincipal[], actions: string[]): void {
    // In a key policy the resource '*' is this key and nothing else.
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid,
        principals,
        actions,
        resources: ['*'],
        conditions: this.viaSecretsManager,
      }),
    );
  }
}
