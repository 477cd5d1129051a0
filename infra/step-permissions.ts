/**
 * The IAM table of the rotation steps: each step's role gets exactly the actions its calls need,
 * on the resources rekey owns (users under the path, secrets under the prefix, its lock table,
 * topic and keys), and every role that can change a key also carries the protected users' Deny.
 * The deployed-permission tests (test/workflow/deployed-roles.test.ts) run every step under the
 * role this synthesizes, and remove each action in turn to see a test fail.
 */
import { ArnFormat, type Stack, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import { STEP_NAMES, type StepName } from '../contract/functions.ts';
import type { RekeyConfig } from './config.ts';
import type { Notifications } from './constructs/notifications.ts';
import type { RekeyFunction } from './constructs/rekey-function.ts';
import { isMutatingKeyAction, MUTATING_CREDENTIAL_ACTIONS, type UserScope } from './user-scope.ts';

export interface StepPermissionsProps {
  readonly config: RekeyConfig;
  readonly functions: Readonly<Record<StepName, RekeyFunction>>;
  readonly userScope: UserScope;
  readonly lockTable: dynamodb.ITable;
  readonly secretsKey: kms.IKey;
  readonly notifications: Notifications;
}

/** Adds each step's statements (and the Deny) to its role, and acknowledges its prefix wildcards for cdk-nag. */
export function grantStepPermissions(stack: Stack, props: StepPermissionsProps): void {
  const { config, functions, userScope, lockTable, secretsKey, notifications } = props;
  const users = userScope.users;
  const onUsers = (actions: string[]) => userScope.allow(actions);
  const secrets = stack.formatArn({
    service: 'secretsmanager',
    resource: 'secret',
    resourceName: `${config.secretPrefix}*`,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
  const defaultEventBus = stack.formatArn({
    service: 'events',
    resource: 'event-bus',
    resourceName: 'default',
  });
  // The KMS keys are usable only through the service they serve, never directly.
  const via = (service: string) => ({
    StringEquals: { 'kms:ViaService': `${service}.${stack.region}.amazonaws.com` },
  });
  const allow = (actions: string[], resources: string[], conditions?: Record<string, unknown>) =>
    new iam.PolicyStatement({ actions, resources, ...(conditions ? { conditions } : {}) });

  // Service-specific credentials (Keyspaces, CodeCommit) go through the same steps: each role
  // that lists, creates, updates or deletes access keys does the same to them, nothing more.
  // IAM keeps no last-used data for them, so nothing parallels GetAccessKeyLastUsed.
  const LIST_SSC = 'iam:ListServiceSpecificCredentials';
  const permissions: Record<StepName, iam.PolicyStatement[]> = {
    plan: [
      // GetUser tells the plan the user's path and tags: it must answer for users outside the
      // path too, which the plan then refuses (UserOutOfScope) instead of failing.
      allow(['iam:GetUser'], [userScope.everyUser]),
      ...onUsers(['iam:ListUserTags', 'iam:ListAccessKeys', 'iam:GetAccessKeyLastUsed', LIST_SSC]),
      // Reads the lock (and its journal) before deciding; takes it with a conditional update.
      allow(['dynamodb:GetItem', 'dynamodb:UpdateItem'], [lockTable.tableArn]),
      // Which secret exists and which of its versions is current: metadata, never a value.
      allow(['secretsmanager:DescribeSecret'], [secrets]),
    ],
    'create-second-key': [
      ...onUsers([
        // The eligibility re-check right before CreateAccessKey.
        'iam:GetUser',
        'iam:ListAccessKeys',
        'iam:CreateAccessKey',
        'iam:DeleteAccessKey',
        'iam:GetAccessKeyLastUsed',
        LIST_SSC,
        'iam:CreateServiceSpecificCredential',
        'iam:DeleteServiceSpecificCredential',
      ]),
      allow(
        [
          'secretsmanager:CreateSecret',
          // Each secret gets a policy naming who may read it (its user, the consumers).
          'secretsmanager:PutResourcePolicy',
          'secretsmanager:PutSecretValue',
          'secretsmanager:DescribeSecret',
          'secretsmanager:TagResource',
          // Drops the AWSPENDING label of a never-handed-out key it removes.
          'secretsmanager:UpdateSecretVersionStage',
        ],
        [secrets],
      ),
      allow(['kms:Encrypt', 'kms:GenerateDataKey'], [secretsKey.keyArn], via('secretsmanager')),
      allow(['dynamodb:GetItem', 'dynamodb:UpdateItem'], [lockTable.tableArn]),
    ],
    'verify-new-key': [
      allow(
        [
          'secretsmanager:GetSecretValue',
          'secretsmanager:DescribeSecret',
          'secretsmanager:UpdateSecretVersionStage',
        ],
        [secrets],
      ),
      allow(['kms:Decrypt'], [secretsKey.keyArn], via('secretsmanager')),
      // To discard a new key that never authenticates (or a credential IAM does not list Active).
      ...onUsers([
        'iam:DeleteAccessKey',
        'iam:ListAccessKeys',
        LIST_SSC,
        'iam:DeleteServiceSpecificCredential',
      ]),
    ],
    'check-last-used': [
      ...onUsers(['iam:GetAccessKeyLastUsed']),
      // cloudtrail:LookupEvents has no resource type: '*' is the only possible resource.
      ...(config.cloudTrailLookup ? [allow(['cloudtrail:LookupEvents'], ['*'])] : []),
    ],
    // Re-reads the old key's last use right before deactivating it.
    'deactivate-old-key': onUsers([
      'iam:GetUser',
      'iam:UpdateAccessKey',
      'iam:ListAccessKeys',
      'iam:GetAccessKeyLastUsed',
      LIST_SSC,
      'iam:UpdateServiceSpecificCredential',
    ]),
    // Verifies, then deletes the old key after re-reading its last use and the user (the re-check).
    'verify-rotation': [
      ...onUsers([
        'iam:GetUser',
        'iam:ListAccessKeys',
        'iam:GetAccessKeyLastUsed',
        'iam:DeleteAccessKey',
        LIST_SSC,
        'iam:DeleteServiceSpecificCredential',
      ]),
      allow(['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], [secrets]),
      allow(['kms:Decrypt'], [secretsKey.keyArn], via('secretsmanager')),
    ],
    'reactivate-old-key': onUsers([
      'iam:UpdateAccessKey',
      'iam:ListAccessKeys',
      LIST_SSC,
      'iam:UpdateServiceSpecificCredential',
    ]),
    'delete-key': onUsers([
      'iam:GetUser',
      'iam:DeleteAccessKey',
      'iam:ListAccessKeys',
      'iam:GetAccessKeyLastUsed',
      LIST_SSC,
      'iam:DeleteServiceSpecificCredential',
    ]),
    // After an ended execution: its journal and lock, the key it made, that key's secret version.
    cleanup: [
      allow(['dynamodb:GetItem', 'dynamodb:UpdateItem'], [lockTable.tableArn]),
      ...onUsers([
        'iam:ListAccessKeys',
        'iam:GetAccessKeyLastUsed',
        'iam:DeleteAccessKey',
        LIST_SSC,
        'iam:DeleteServiceSpecificCredential',
      ]),
      allow(['secretsmanager:DescribeSecret', 'secretsmanager:UpdateSecretVersionStage'], [secrets]),
    ],
    notify: [
      // sns:Publish is also the action of PublishBatch, which notify sends.
      allow(['sns:Publish'], [notifications.topic.topicArn]),
      // Publishing to an encrypted topic: SNS generates a data key with the caller's rights.
      allow(['kms:GenerateDataKey', 'kms:Decrypt'], [notifications.key.keyArn], via('sns')),
      allow(['events:PutEvents'], [defaultEventBus]),
      allow(['dynamodb:UpdateItem'], [lockTable.tableArn]),
    ],
  };
  // The users to rotate and their secrets are not known at deploy time: the wildcard is the
  // path (IAM) or name prefix (Secrets Manager) rekey owns, nothing wider.
  const prefixWildcards = [
    {
      arn: userScope.everyUser,
      nagId: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user/*]',
      reason:
        'the plan reads any IAM user named in a request (GetUser: its path and tags) to tell whether it is in scope; every other user action is scoped to the path',
    },
    {
      arn: users,
      nagId: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user${config.userPathPrefix}*]`,
      reason: `rotates any IAM user under the path ${config.userPathPrefix}, chosen at run time`,
    },
    {
      arn: secrets,
      nagId: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:${config.secretPrefix}*]`,
      reason: `secrets are named ${config.secretPrefix}<userName> (plus the random suffix Secrets Manager adds)`,
    },
  ];
  const protectedUsersDeny = userScope.protectedUsersDeny(MUTATING_CREDENTIAL_ACTIONS);
  for (const step of STEP_NAMES) {
    const fn = functions[step];
    for (const statement of permissions[step]) fn.lambdaFunction.addToRolePolicy(statement);
    // Every role that can change a key carries the Deny, whatever else it is allowed.
    if (protectedUsersDeny && permissions[step].some((s) => s.actions.some(isMutatingKeyAction))) {
      fn.lambdaFunction.addToRolePolicy(protectedUsersDeny);
    }
    // With the path '/', the users in scope are every user: one finding, both reasons.
    const reasons = new Map<string, string[]>();
    for (const { arn, nagId, reason } of prefixWildcards) {
      if (permissions[step].some((s) => s.resources.includes(arn))) {
        reasons.set(nagId, [...(reasons.get(nagId) ?? []), reason]);
      }
    }
    for (const [id, why] of reasons) Validations.of(fn.role).acknowledge({ id, reason: why.join('; ') });
  }
}
