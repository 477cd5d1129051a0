import { ArnFormat, CfnOutput, Duration, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { STEP_NAMES, type StepName } from '../lambdas/shared/steps.ts';
import { type RekeyConfig, type RekeyResources, verifyNewKeyTimeoutSeconds } from './config.ts';
import { LockTable } from './constructs/lock-table.ts';
import { Notifications } from './constructs/notifications.ts';
import { RekeyFunction } from './constructs/rekey-function.ts';
import { RotationStateMachine } from './constructs/rotation-state-machine.ts';
import { SecretsKey } from './constructs/secrets-key.ts';

export interface RekeyStackProps extends StackProps {
  /**
   * The validated configuration (infra/config.ts `loadConfig`).
   * @default - required
   */
  readonly config: RekeyConfig;
}

/** `create-second-key` -> `CreateSecondKey`: readable construct ids and logical ids. */
const constructId = (step: StepName) =>
  step
    .split('-')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');

/** One value per workflow step, in STEPS order. */
function byStep<T>(make: (step: StepName) => T): Record<StepName, T> {
  return Object.fromEntries(STEP_NAMES.map((step) => [step, make(step)])) as Record<StepName, T>;
}

/**
 * rekey: the rotation state machine, one Lambda per step with least-privilege permissions,
 * the secrets key, the notifications topic and the lock table. Wiring only: each concern is a
 * construct of its own.
 */
export class RekeyStack extends Stack {
  readonly functions: Readonly<Record<StepName, RekeyFunction>>;
  readonly rotation: RotationStateMachine;

  constructor(scope: Construct, id: string, props: RekeyStackProps) {
    super(scope, id, props);
    const { config } = props;

    const secretsKey = new SecretsKey(this, 'SecretsKey').key;
    const notifications = new Notifications(this, 'Notifications', { emails: config.notificationEmails });
    const lockTable = new LockTable(this, 'LockTable').table;

    const resources: RekeyResources = {
      kmsKeyId: secretsKey.keyArn,
      topicArn: notifications.topic.topicArn,
      lockTable: lockTable.tableName,
    };
    const functions = byStep(
      (step) =>
        new RekeyFunction(this, constructId(step), {
          step,
          config,
          resources,
          ...(step === 'verify-new-key'
            ? { timeout: Duration.seconds(verifyNewKeyTimeoutSeconds(config)) }
            : {}),
        }),
    );
    this.functions = functions;

    // Scoped resources. IAM users: only those under the configured path; secrets: only ours.
    const users = this.formatArn({
      service: 'iam',
      region: '',
      resource: `user${config.userPathPrefix}*`,
      arnFormat: ArnFormat.NO_RESOURCE_NAME,
    });
    const secrets = this.formatArn({
      service: 'secretsmanager',
      resource: 'secret',
      resourceName: `${config.secretPrefix}*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const defaultEventBus = this.formatArn({
      service: 'events',
      resource: 'event-bus',
      resourceName: 'default',
    });
    // The KMS keys are usable only through the service they serve, never directly.
    const via = (service: string) => ({
      StringEquals: { 'kms:ViaService': `${service}.${this.region}.amazonaws.com` },
    });
    const allow = (actions: string[], resources: string[], conditions?: Record<string, unknown>) =>
      new iam.PolicyStatement({ actions, resources, ...(conditions ? { conditions } : {}) });

    const permissions: Record<StepName, iam.PolicyStatement[]> = {
      plan: [
        allow(['iam:GetUser', 'iam:ListUserTags', 'iam:ListAccessKeys', 'iam:GetAccessKeyLastUsed'], [users]),
        allow(['dynamodb:UpdateItem'], [lockTable.tableArn]),
      ],
      'create-second-key': [
        allow(
          ['iam:ListAccessKeys', 'iam:CreateAccessKey', 'iam:DeleteAccessKey', 'iam:GetAccessKeyLastUsed'],
          [users],
        ),
        allow(
          [
            'secretsmanager:CreateSecret',
            'secretsmanager:PutSecretValue',
            'secretsmanager:DescribeSecret',
            'secretsmanager:TagResource',
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
        // To discard a new key that never authenticates.
        allow(['iam:DeleteAccessKey', 'iam:ListAccessKeys'], [users]),
      ],
      'check-last-used': [
        allow(['iam:GetAccessKeyLastUsed'], [users]),
        // cloudtrail:LookupEvents has no resource type: '*' is the only possible resource.
        ...(config.cloudTrailLookup ? [allow(['cloudtrail:LookupEvents'], ['*'])] : []),
      ],
      'deactivate-old-key': [allow(['iam:UpdateAccessKey', 'iam:ListAccessKeys'], [users])],
      'verify-rotation': [
        allow(['iam:ListAccessKeys', 'iam:GetAccessKeyLastUsed'], [users]),
        allow(['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], [secrets]),
        allow(['kms:Decrypt'], [secretsKey.keyArn], via('secretsmanager')),
      ],
      'reactivate-old-key': [allow(['iam:UpdateAccessKey', 'iam:ListAccessKeys'], [users])],
      'delete-key': [
        allow(['iam:DeleteAccessKey', 'iam:ListAccessKeys', 'iam:GetAccessKeyLastUsed'], [users]),
      ],
      notify: [
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
    for (const step of STEP_NAMES) {
      const fn = functions[step];
      for (const statement of permissions[step]) fn.lambdaFunction.addToRolePolicy(statement);
      for (const { arn, nagId, reason } of prefixWildcards) {
        if (permissions[step].some((s) => s.resources.includes(arn))) {
          Validations.of(fn.role).acknowledge({ id: nagId, reason });
        }
      }
    }

    this.rotation = new RotationStateMachine(this, 'Rotation', {
      functions: byStep((step) => functions[step].lambdaFunction),
      config,
    });

    new CfnOutput(this, 'StateMachineArn', {
      description: 'Start a rotation: {"userName": "..."}',
      value: this.rotation.stateMachine.stateMachineArn,
    });
    new CfnOutput(this, 'TopicArn', {
      description: 'rekey notifications',
      value: notifications.topic.topicArn,
    });
    new CfnOutput(this, 'LockTableName', {
      description: 'One rotation lock per user',
      value: lockTable.tableName,
    });
    new CfnOutput(this, 'SecretsKeyArn', {
      description: 'Encrypts the stored access keys',
      value: secretsKey.keyArn,
    });
  }
}
