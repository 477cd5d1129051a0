import {
  ArnFormat,
  CfnOutput,
  type CfnResource,
  Duration,
  RemovalPolicy,
  Stack,
  TimeZone,
  Validations,
} from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { AUDIT_REPORT_PREFIX } from '../../contract/functions.ts';
import { KEY_ID_CACHE_TTL_ATTRIBUTE } from '../../contract/tables.ts';
import { auditEnvironment, type RekeyConfig } from '../config.ts';
import type { OrganizationAudit } from './organization-audit.ts';
import { RekeyFunction } from './rekey-function.ts';
import { ReportBucket } from './report-bucket.ts';

/**
 * The audit reads one credential report, pages through the account's users 1,000 at a time and
 * starts at most maxRotationsPerRun executions: minutes at 10,000 users. Lambda's maximum, so that
 * a slow IAM (throttling, a report that takes long to generate) never cuts a run short.
 */
export const AUDIT_TIMEOUT = Duration.minutes(15);

/**
 * EventBridge Scheduler invokes the function asynchronously, so its retries and dead-letter queue
 * cover the delivery only (the Invoke call refused or throttled), never a run that failed. A few
 * retries within an hour ride out a Lambda throttle or a short service problem; after that the
 * event goes to the dead-letter queue, and the next scheduled run comes anyway.
 */
export const SCHEDULE_RETRY_POLICY = { retryAttempts: 5, maxEventAge: Duration.hours(1) } as const;

/**
 * The function's own asynchronous invocation settings. No retry: a run that failed has already
 * published its digest and events (alerts go out before the failure is raised), and a retry would
 * send them again. A run that fails, or waits more than an hour for the single concurrent slot,
 * goes to the dead-letter queue with its error instead.
 */
export const AUDIT_ASYNC_INVOKE = { retryAttempts: 0, maxEventAge: Duration.hours(1) } as const;

/** How long a failed run or undelivered schedule event stays in the queue to be looked at. */
const DEAD_LETTER_RETENTION = Duration.days(14);

/** Which IAM users the audit may act on, as IAM policy (infra/user-scope.ts `UserScope`). */
export interface AuditUserScope {
  /** `arn:<partition>:iam::<account>:user<userPathPrefix>*`: every user under the path. */
  readonly users: string;
  /** `arn:<partition>:iam::<account>:user/*`: every user of the account, at any path. */
  readonly everyUser: string;
  /** Statements allowing the actions on the users in scope (key changes on opted-in users only). */
  allow(actions: readonly string[]): iam.PolicyStatement[];
  /** The explicit Deny of key changes on the protected users, when there are any. */
  protectedUsersDeny(): iam.PolicyStatement | undefined;
}

export interface AuditProps {
  /**
   * The validated deployment configuration: schedule, thresholds, policies.
   * @default - required
   */
  readonly config: RekeyConfig;
  /**
   * The rotation state machine the audit starts for old keys (autoRotate).
   * @default - required
   */
  readonly stateMachine: sfn.StateMachine;
  /**
   * The topic the digest goes to.
   * @default - required
   */
  readonly topic: sns.ITopic;
  /**
   * The key that encrypts the topic: publishing needs it.
   * @default - required
   */
  readonly topicKey: kms.IKey;
  /**
   * The users the audit may list and (with deactivateUnused) deactivate keys of.
   * @default - required
   */
  readonly userScope: AuditUserScope;
  /**
   * The KMS key that encrypts the audit's log group.
   * @default - encrypted by CloudWatch Logs with a key AWS owns
   */
  readonly logsKey?: kms.IKey;
  /**
   * With `organization`: the organization audit (infra/constructs/organization-audit.ts), whose
   * state machine this builds around the audit function and the schedule starts instead of
   * invoking the function; the function writes and reads its results table.
   * @default - none: the schedule invokes the function for the hub's own account
   */
  readonly organizationAudit?: OrganizationAudit;
}

/**
 * The scheduled audit: the audit Lambda (lambdas/audit), an EventBridge Scheduler schedule that
 * invokes it with `{}`, and one dead-letter queue for both an undelivered schedule event and a
 * failed run. Least privilege: the credential report and the users' keys (and, with
 * auditServiceCredentials, the listing of service-specific credentials), the rotation state
 * machine only with autoRotate, key deactivation only with deactivateUnused, Security Hub only with
 * securityHub, the report bucket's prefix only with auditReports; the digest to the rekey topic,
 * one event per finding to the default bus.
 */
export class Audit extends Construct {
  readonly function: RekeyFunction;
  readonly schedule: scheduler.Schedule;
  readonly scheduleGroup: scheduler.ScheduleGroup;
  readonly deadLetterQueue: sqs.Queue;
  /** The key-id cache (lambdas/audit/key-id-cache.ts): the audit's alone. */
  readonly keyIdCache: dynamodb.Table;
  /** The role EventBridge Scheduler assumes to invoke the function. */
  readonly schedulerRole: iam.Role;
  /** The audit's own permissions (the function role's default policy holds logs, X-Ray, the queue). */
  readonly permissions: iam.Policy;
  /** The bucket of audit reports, with auditReports. */
  readonly reportBucket: ReportBucket | undefined;

  constructor(scope: Construct, id: string, props: AuditProps) {
    super(scope, id);
    const { config, stateMachine, topic } = props;
    const stack = Stack.of(this);

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: DEAD_LETTER_RETENTION,
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'this is the dead-letter queue: of the audit schedule (undelivered events) and of the audit function (failed asynchronous runs)',
    });

    // A table of its own rather than a key space in the lock table: only the audit's role can
    // read or write it (no rotation step needs it, and the audit needs no lock), and neither its
    // entries nor its TTL can touch a lock. Nothing in it needs recovering: a lost entry costs one
    // ListAccessKeys on the next run, so no point-in-time recovery and no backup plan.
    this.keyIdCache = new dynamodb.Table(this, 'KeyIdCache', {
      partitionKey: { name: 'userName', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'keyCreated', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: KEY_ID_CACHE_TTL_ATTRIBUTE,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: false },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      // As the lock table: it means something only while the audit that fills it exists.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const rebuilt =
      'the table is a cache of access key ids (no secrets) that the next audit rebuilds at one iam:ListAccessKeys per missing key; there is nothing to restore, and a restored copy would only hold entries the audit re-validates anyway';
    for (const id of [
      'AwsSolutions-DDB3',
      'NIST.800.53.R5-DynamoDBPITREnabled',
      'NIST.800.53.R5-DynamoDBInBackupPlan',
    ])
      Validations.of(this.keyIdCache).acknowledge({ id, reason: rebuilt });

    this.reportBucket = config.auditReports
      ? new ReportBucket(this, 'Reports', { retentionDays: config.auditReportsRetentionDays })
      : undefined;

    this.function = new RekeyFunction(this, 'Function', {
      name: 'audit',
      environment: auditEnvironment(config, {
        hubAccountId: Stack.of(this).account,
        topicArn: topic.topicArn,
        stateMachineArn: stateMachine.stateMachineArn,
        keyIdCacheTable: this.keyIdCache.tableName,
        ...(this.reportBucket ? { reportBucket: this.reportBucket.bucket.bucketName } : {}),
        ...(props.organizationAudit
          ? { organizationResultsTable: props.organizationAudit.resultsTable.tableName }
          : {}),
      }),
      config,
      timeout: AUDIT_TIMEOUT,
      // CPU scales with memory: parsing a 10,000-user credential report and ten pages of
      // authorization details is the audit's only real work.
      memorySize: 512,
      // One run at a time: two concurrent runs would race to start the same rotations (the
      // deterministic execution names keep that safe) and send two digests. With organization,
      // one per account the Map audits at once (each on its own account, one digest at the end).
      reservedConcurrentExecutions: props.organizationAudit
        ? (config.organization?.auditConcurrency ?? 1)
        : 1,
      ...(props.logsKey ? { logsKey: props.logsKey } : {}),
    });
    const fn = this.function.lambdaFunction;
    fn.configureAsyncInvoke({
      ...AUDIT_ASYNC_INVOKE,
      onFailure: new destinations.SqsDestination(this.deadLetterQueue),
    });
    Validations.of(fn.node.defaultChild as CfnResource).acknowledge({
      id: 'NIST.800.53.R5-LambdaDLQ',
      reason:
        "a failed asynchronous run goes to the audit's dead-letter queue through the on-failure destination, which records the error with the request (a DLQ would record the request only)",
    });

    this.permissions = new iam.Policy(this, 'Permissions', {
      roles: [this.function.role],
      statements: this.statements(props),
    });
    this.acknowledgeWildcards(props);

    // Only schedules in this group may assume the role (confused deputy): not the account's
    // default group, where anyone with scheduler:CreateSchedule could point one at this role.
    this.scheduleGroup = new scheduler.ScheduleGroup(this, 'ScheduleGroup', {
      // Its generated name is stable: a group kept after the stack is deleted would block the
      // next deployment. Deleting it deletes only the audit schedule.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // With organization the schedule starts the organization audit, whose Tasks invoke the function.
    const organizationMachine = props.organizationAudit?.auditWith(fn);
    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      description: organizationMachine
        ? 'rekey: EventBridge Scheduler starts the organization audit'
        : 'rekey: EventBridge Scheduler invokes the audit',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: {
          StringEquals: {
            'aws:SourceAccount': stack.account,
            'aws:SourceArn': this.scheduleGroup.scheduleGroupArn,
          },
        },
      }),
    });
    Validations.of(this.schedulerRole).acknowledge({
      id: 'NIST.800.53.R5-IAMNoInlinePolicy',
      reason: organizationMachine
        ? 'the policy belongs to this role alone (start the organization audit, write to its dead-letter queue): inline, it lives and dies with the role'
        : 'the policy belongs to this role alone (invoke the audit, write to its dead-letter queue): inline, it lives and dies with the role',
    });
    if (!organizationMachine)
      Validations.of(this.schedulerRole).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${stack.resolve((fn.node.defaultChild as CfnResource).logicalId)}.Arn>:*]`,
        reason:
          'grantInvoke covers the audit function and its versions/aliases (<arn>:*); only this function',
      });

    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      description: 'rekey: audit the account access keys',
      scheduleGroup: this.scheduleGroup,
      // The time zone applies to cron expressions (Scheduler ignores it for rate expressions).
      schedule: scheduler.ScheduleExpression.expression(
        config.auditSchedule,
        TimeZone.of(config.auditScheduleTimezone),
      ),
      timeWindow: scheduler.TimeWindow.off(),
      target: organizationMachine
        ? // states:StartExecution on this state machine only; the execution name is generated.
          new targets.StepFunctionsStartExecution(organizationMachine, {
            role: this.schedulerRole,
            input: scheduler.ScheduleTargetInput.fromObject({}),
            deadLetterQueue: this.deadLetterQueue,
            ...SCHEDULE_RETRY_POLICY,
          })
        : new targets.LambdaInvoke(fn, {
            role: this.schedulerRole,
            input: scheduler.ScheduleTargetInput.fromObject({}),
            deadLetterQueue: this.deadLetterQueue,
            ...SCHEDULE_RETRY_POLICY,
          }),
    });
    // The group's name is a literal in the schedule, not a reference; and the first run must
    // find its permissions in place.
    this.schedule.node.addDependency(this.scheduleGroup, this.permissions);

    new CfnOutput(this, 'FunctionName', {
      description:
        'Run the audit now: aws lambda invoke --function-name <this> (payload {} or {"dryRun":true})',
      value: fn.functionName,
    }).overrideLogicalId('AuditFunctionName');
    if (this.reportBucket)
      new CfnOutput(this, 'ReportBucketName', {
        description: `Audit reports (HTML and CSV), under ${AUDIT_REPORT_PREFIX}<account>/<date>/`,
        value: this.reportBucket.bucket.bucketName,
      }).overrideLogicalId('AuditReportBucketName');
    new CfnOutput(this, 'DeadLetterQueueUrl', {
      description: 'Undelivered audit schedule events and failed audit runs',
      value: this.deadLetterQueue.queueUrl,
    }).overrideLogicalId('AuditDeadLetterQueueUrl');
  }

  /** Exactly what the configured audit does, nothing more. */
  private statements(props: AuditProps): iam.PolicyStatement[] {
    const { config, stateMachine, topic, topicKey, userScope } = props;
    const stack = Stack.of(this);
    const allow = (actions: string[], resources: string[], conditions?: Record<string, unknown>) =>
      new iam.PolicyStatement({ actions, resources, ...(conditions ? { conditions } : {}) });
    const inAccount = auditAccountStatements(stack, config, userScope);
    const statements = [
      ...inAccount.reads,
      // The key-id cache: read the entries of the users with findings, write the new keys' entries.
      allow(['dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem'], [this.keyIdCache.tableArn]),
      ...inAccount.deactivate,
      allow(['sns:Publish'], [topic.topicArn]),
      // Publishing to an encrypted topic: SNS generates a data key with the caller's rights.
      allow(['kms:GenerateDataKey', 'kms:Decrypt'], [topicKey.keyArn], {
        StringEquals: { 'kms:ViaService': `sns.${stack.region}.amazonaws.com` },
      }),
      allow(['events:PutEvents'], [defaultEventBus(stack)]),
      ...inAccount.deny,
    ];
    if (config.autoRotate) {
      statements.push(
        allow(['states:StartExecution'], [stateMachine.stateMachineArn]),
        // Each attempt's status is read before anything is started: running or succeeded means
        // already started, failed, aborted or timed out means the next attempt (`<name>-<n>`).
        allow(['states:DescribeExecution'], [executionsOf(stateMachine)]),
      );
    }
    if (this.reportBucket) {
      // Each run's two report objects, under the report prefix only (no read, list or delete).
      statements.push(
        allow(['s3:PutObject'], [this.reportBucket.bucket.arnForObjects(`${AUDIT_REPORT_PREFIX}*`)]),
      );
    }
    if (props.organizationAudit) {
      // The organization audit's results: one item per account (account mode), then every item
      // of the run (aggregate mode, a Query on the run's partition). No update, scan or delete.
      statements.push(
        allow(['dynamodb:PutItem', 'dynamodb:Query'], [props.organizationAudit.resultsTable.tableArn]),
      );
    }
    statements.push(...inAccount.securityHub);
    return statements;
  }

  /** Every wildcard of the audit's permissions, acknowledged with why it cannot be narrower. */
  private acknowledgeWildcards(props: AuditProps): void {
    const { config, stateMachine } = props;
    const stack = Stack.of(this);
    const acknowledge = (id: string, reason: string) =>
      Validations.of(this.permissions).acknowledge({ id: `AwsSolutions-IAM5[${id}]`, reason });
    acknowledge(
      'Resource::*',
      'iam:GenerateCredentialReport, iam:GetCredentialReport and iam:GetAccountAuthorizationDetails ' +
        'have no resource type (account-wide)' +
        (config.auditServiceCredentials
          ? '; iam:ListServiceSpecificCredentials with AllUsers lists every user at once (no single user ' +
            'resource to name; for this action * covers only users)'
          : '') +
        '; every other action of the audit is scoped',
    );
    const reasons = [
      'the audit reads the key ids of any IAM user that has a finding (iam:ListAccessKeys), at any path: it reports the whole account',
    ];
    const scoped = `the audit deactivates unused keys of IAM users under the path ${config.userPathPrefix}, chosen at run time`;
    if (config.deactivateUnused && config.userPathPrefix === '/') reasons.push(scoped);
    acknowledge('Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user/*', reasons.join('; '));
    if (config.deactivateUnused && config.userPathPrefix !== '/') {
      acknowledge(
        `Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user${config.userPathPrefix}*`,
        scoped,
      );
    }
    if (config.autoRotate) {
      const machine = stack.resolve((stateMachine.node.defaultChild as CfnResource).logicalId);
      acknowledge(
        `Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<${machine}.Name>:*`,
        'the executions of the rotation state machine only; their names (rekey-<user>-<key id>, then -<attempt>) are chosen at run time',
      );
    }
    if (this.reportBucket) {
      const bucket = stack.resolve((this.reportBucket.bucket.node.defaultChild as CfnResource).logicalId);
      acknowledge(
        `Resource::<${bucket}.Arn>/${AUDIT_REPORT_PREFIX}*`,
        "s3:PutObject on the report bucket's report prefix only: each run writes objects whose keys carry the account and the time of the run",
      );
    }
    Validations.of(this.permissions).acknowledge({
      id: 'NIST.800.53.R5-IAMNoInlinePolicy',
      reason:
        "the audit's permissions belong to its role alone: inline, they live and die with the role and cannot be attached to another principal by mistake",
    });
  }
}

/**
 * The audit's statements that act in the audited account (its users, its Security Hub), in the
 * order of the role's policy: the hub's audit role holds them for the hub's own account, the
 * member stack's audit role (infra/member-stack.ts) the same for its account. One source for both.
 */
export function auditAccountStatements(
  stack: Stack,
  config: RekeyConfig,
  userScope: AuditUserScope,
): Record<'reads' | 'deactivate' | 'deny' | 'securityHub', iam.PolicyStatement[]> {
  const allow = (actions: string[], resources: string[]) => new iam.PolicyStatement({ actions, resources });
  const deny = config.deactivateUnused ? userScope.protectedUsersDeny() : undefined;
  return {
    reads: [
      // The credential report and the account's authorization details are account-wide: these
      // actions have no resource type, so '*' is the only resource IAM accepts.
      allow(
        ['iam:GenerateCredentialReport', 'iam:GetCredentialReport', 'iam:GetAccountAuthorizationDetails'],
        ['*'],
      ),
      // Service-specific credentials of all users, one AllUsers listing per service. AWS documents the
      // action on the `user` resource type but not which resource an AllUsers request (about no
      // user in particular) is authorized against, so '*' is the one resource sure to match; for
      // an action whose only resource type is `user` it grants no more than user/*.
      ...(config.auditServiceCredentials ? [allow(['iam:ListServiceSpecificCredentials'], ['*'])] : []),
      // Key ids of every user with a finding, in scope or not: the audit reports the whole account
      // (the credential report already shows every user's key ages), it acts only within scope.
      allow(['iam:ListAccessKeys'], [userScope.everyUser]),
    ],
    // With the opt-in policy: re-read last use and deactivate, on the users in scope only.
    deactivate: config.deactivateUnused
      ? userScope.allow(['iam:GetAccessKeyLastUsed', 'iam:UpdateAccessKey'])
      : [],
    deny: deny ? [deny] : [],
    securityHub: config.securityHub
      ? [
          // Findings are imported through the account's own default product.
          allow(['securityhub:BatchImportFindings'], [securityHubProductArn(stack)]),
          // GetFindings authorizes against the account's hub (resource type `hub`).
          allow(['securityhub:GetFindings'], [securityHubArn(stack)]),
        ]
      : [],
  };
}

const defaultEventBus = (stack: Stack) =>
  stack.formatArn({ service: 'events', resource: 'event-bus', resourceName: 'default' });

/** `arn:<partition>:states:<region>:<account>:execution:<state machine name>:*` */
const executionsOf = (stateMachine: sfn.StateMachine) =>
  Stack.of(stateMachine).formatArn({
    service: 'states',
    resource: 'execution',
    resourceName: `${stateMachine.stateMachineName}:*`,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });

/** `arn:<partition>:securityhub:<region>:<account>:product/<account>/default` */
const securityHubProductArn = (stack: Stack) =>
  stack.formatArn({
    service: 'securityhub',
    resource: 'product',
    resourceName: `${stack.account}/default`,
  });

/** `arn:<partition>:securityhub:<region>:<account>:hub/default` */
const securityHubArn = (stack: Stack) =>
  stack.formatArn({ service: 'securityhub', resource: 'hub', resourceName: 'default' });
