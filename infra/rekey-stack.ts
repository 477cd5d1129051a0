import { ArnFormat, CfnOutput, Fn, Lazy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { STEP_NAMES, type StepName } from '../lambdas/shared/steps.ts';
import type { RekeyConfig, RekeyResources } from './config.ts';
import { Alarms } from './constructs/alarms.ts';
import { Audit } from './constructs/audit.ts';
import { ExecutionCleanup } from './constructs/execution-cleanup.ts';
import { LockTable } from './constructs/lock-table.ts';
import { LogsKey } from './constructs/logs-key.ts';
import { Notifications } from './constructs/notifications.ts';
import { RekeyFunction } from './constructs/rekey-function.ts';
import { RotationStateMachine } from './constructs/rotation-state-machine.ts';
import { SecretsKey } from './constructs/secrets-key.ts';
import { isMutatingKeyAction, MUTATING_CREDENTIAL_ACTIONS, UserScope } from './user-scope.ts';

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
  readonly cleanup: ExecutionCleanup;
  readonly audit: Audit;
  readonly alarms: Alarms;

  constructor(scope: Construct, id: string, props: RekeyStackProps) {
    super(scope, id, props);
    const { config } = props;

    const secretsKeyConstruct = new SecretsKey(this, 'SecretsKey', {
      secretPrefix: config.secretPrefix,
      userPathPrefix: config.userPathPrefix,
      consumerPrincipals: config.consumerPrincipals,
      consumersByTag: config.consumerTag !== false,
    });
    const secretsKey = secretsKeyConstruct.key;
    const logsKey = new LogsKey(this, 'LogsKey').key;
    const notifications = new Notifications(this, 'Notifications', { emails: config.notificationEmails });
    const lockTable = new LockTable(this, 'LockTable').table;

    // The verify steps' roles, the only rekey principals a secret's policy lets read it; they are
    // created with their functions, after the create step's environment names them.
    const secretReaders: StepName[] = ['verify-new-key', 'verify-rotation'];
    const resources: RekeyResources = {
      kmsKeyId: secretsKey.keyArn,
      topicArn: notifications.topic.topicArn,
      lockTable: lockTable.tableName,
      secretReaderRoles: Lazy.string({
        produce: () =>
          Fn.join(
            ',',
            secretReaders.map((step) => this.functions[step].role.roleArn),
          ),
      }),
    };
    const functions = byStep(
      (step) =>
        new RekeyFunction(this, constructId(step), {
          step,
          config,
          resources,
          logsKey,
          // An EventBridge rule invokes it too (asynchronously).
          ...(step === 'cleanup' ? { invokedAsynchronously: true } : {}),
        }),
    );
    this.functions = functions;

    // Scoped resources. IAM users: only those under the configured path (changing a key also
    // needs the opt-in tag, when configured); secrets: only ours.
    const userScope = new UserScope(this, config);
    const users = userScope.users;
    const onUsers = (actions: string[]) => userScope.allow(actions);
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
      'verify-rotation': [
        ...onUsers(['iam:ListAccessKeys', 'iam:GetAccessKeyLastUsed', LIST_SSC]),
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
    // The key policy names the same roles: the identity policies alone cannot use the key.
    secretsKeyConstruct.allowEncrypt('CreateStepEncrypts', functions['create-second-key'].role);
    for (const step of secretReaders) {
      secretsKeyConstruct.allowDecrypt(`${constructId(step)}StepDecrypts`, functions[step].role);
    }

    this.rotation = new RotationStateMachine(this, 'Rotation', {
      functions: byStep((step) => functions[step].lambdaFunction),
      config,
      logsKey,
    });
    this.cleanup = new ExecutionCleanup(this, 'ExecutionCleanup', {
      stateMachine: this.rotation.stateMachine,
      cleanupFunction: functions.cleanup.lambdaFunction,
    });

    this.audit = new Audit(this, 'Audit', {
      config,
      stateMachine: this.rotation.stateMachine,
      topic: notifications.topic,
      topicKey: notifications.key,
      userScope,
      logsKey,
    });

    this.alarms = new Alarms(this, 'Alarms', {
      topic: notifications.topic,
      stateMachine: this.rotation.stateMachine,
      functions: {
        ...byStep((step) => functions[step].lambdaFunction),
        audit: this.audit.function.lambdaFunction,
      },
      auditFunction: this.audit.function.lambdaFunction,
      runbookBaseUrl: config.runbookBaseUrl,
    });

    new CfnOutput(this, 'StateMachineArn', {
      description:
        'Start a rotation: {"userName": "..."} (add "serviceName" for a service-specific credential)',
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
