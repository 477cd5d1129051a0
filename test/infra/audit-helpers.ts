/**
 * The scheduled audit's resources in a synthesized stack, and the exact permissions its two
 * roles must have: written out here as the specification (not derived from the construct), and
 * shared by audit.test.ts and the every-role check of iam.test.ts.
 */
import type { CfnElement, Stack } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { RekeyConfig } from '../../infra/config.ts';
import type { RekeyStack } from '../../infra/rekey-stack.ts';
import { ACCOUNT, allow, getAttId, onlyLogicalId, PARTITION, REGION, type Resources } from './helpers.ts';

/** The logical id of a construct's CloudFormation resource (its default child, or itself). */
export function logicalIdOf(stack: Stack, construct: Construct): string {
  const element = (construct.node.defaultChild ?? construct) as CfnElement;
  return stack.resolve(stack.getLogicalId(element)) as string;
}

export interface AuditIds {
  function: string;
  role: string;
  logGroup: string;
  schedule: string;
  scheduleGroup: string;
  schedulerRole: string;
  queue: string;
  keyIdCache: string;
  /** The report bucket, with auditReports. */
  reportBucket: string | undefined;
}

export function auditIds(stack: RekeyStack): AuditIds {
  const { audit } = stack;
  return {
    function: logicalIdOf(stack, audit.function.lambdaFunction),
    role: logicalIdOf(stack, audit.function.role),
    logGroup: logicalIdOf(stack, audit.function.logGroup),
    schedule: logicalIdOf(stack, audit.schedule),
    scheduleGroup: logicalIdOf(stack, audit.scheduleGroup),
    schedulerRole: logicalIdOf(stack, audit.schedulerRole),
    queue: logicalIdOf(stack, audit.deadLetterQueue),
    keyIdCache: logicalIdOf(stack, audit.keyIdCache),
    reportBucket: audit.reportBucket ? logicalIdOf(stack, audit.reportBucket.bucket) : undefined,
  };
}

/** The actions that change a user's keys (as iam.test.ts spells them). */
const KEY_CHANGES = ['iam:CreateAccessKey', 'iam:UpdateAccessKey', 'iam:DeleteAccessKey'];

type AuditConfig = Pick<
  RekeyConfig,
  | 'userPathPrefix'
  | 'optInTag'
  | 'protectedUsers'
  | 'autoRotate'
  | 'deactivateUnused'
  | 'securityHub'
  | 'auditServiceCredentials'
  | 'auditReports'
>;

/** The audit function role's permissions, exactly, as rolePermissions renders them. */
export function expectedAuditPermissions(resources: Resources, ids: AuditIds, config: AuditConfig): string[] {
  const topic = onlyLogicalId(resources, 'AWS::SNS::Topic');
  const topicKey = getAttId(resources[topic]?.Properties?.KmsMasterKeyId);
  const machine = onlyLogicalId(resources, 'AWS::StepFunctions::StateMachine');
  const users = `arn:${PARTITION}:iam::${ACCOUNT}:user${config.userPathPrefix}*`;
  const optIn = config.optInTag ? { Null: { [`aws:ResourceTag/${config.optInTag}`]: 'false' } } : undefined;
  const deny = config.protectedUsers.flatMap((name) =>
    KEY_CHANGES.flatMap((action) => [
      `Deny ${action} arn:${PARTITION}:iam::${ACCOUNT}:user/${name}`,
      `Deny ${action} arn:${PARTITION}:iam::${ACCOUNT}:user/*/${name}`,
    ]),
  );
  return [
    // Every rekey function: its own log group, X-Ray (no resource type).
    ...allow(['logs:CreateLogStream', 'logs:PutLogEvents'], [`${ids.logGroup}.Arn`]),
    ...allow(['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], ['*']),
    // The on-failure destination of its asynchronous invocations.
    ...allow(['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'], [`${ids.queue}.Arn`]),
    // Account-wide reads: no resource type.
    ...allow(
      ['iam:GenerateCredentialReport', 'iam:GetCredentialReport', 'iam:GetAccountAuthorizationDetails'],
      ['*'],
    ),
    // Key ids of any user with a finding: the audit reports every user, it acts only in scope.
    ...allow(['iam:ListAccessKeys'], [`arn:${PARTITION}:iam::${ACCOUNT}:user/*`]),
    // The key-id cache, its own table: read the entries of the users with findings, write new ones.
    ...allow(['dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem'], [`${ids.keyIdCache}.Arn`]),
    // One AllUsers listing per service: no single user to name (see ALL_USERS_IAM_READS).
    ...(config.auditServiceCredentials ? allow(['iam:ListServiceSpecificCredentials'], ['*']) : []),
    ...allow(['sns:Publish'], [topic]),
    ...allow(['kms:GenerateDataKey', 'kms:Decrypt'], [`${topicKey}.Arn`], {
      StringEquals: { 'kms:ViaService': `sns.${REGION}.amazonaws.com` },
    }),
    ...allow(['events:PutEvents'], [`arn:${PARTITION}:events:${REGION}:${ACCOUNT}:event-bus/default`]),
    ...(config.deactivateUnused
      ? [
          ...allow(['iam:GetAccessKeyLastUsed'], [users]),
          ...allow(['iam:UpdateAccessKey'], [users], optIn),
          ...deny,
        ]
      : []),
    ...(config.autoRotate
      ? [
          ...allow(['states:StartExecution'], [machine]),
          ...allow(
            ['states:DescribeExecution'],
            [`arn:${PARTITION}:states:${REGION}:${ACCOUNT}:execution:${machine}.Name:*`],
          ),
        ]
      : []),
    // The report bucket's report prefix, with auditReports: put objects there, nothing else.
    ...(config.auditReports ? allow(['s3:PutObject'], [`${ids.reportBucket}.Arn/audit-reports/*`]) : []),
    ...(config.securityHub
      ? [
          ...allow(
            ['securityhub:BatchImportFindings'],
            [`arn:${PARTITION}:securityhub:${REGION}:${ACCOUNT}:product/${ACCOUNT}/default`],
          ),
          ...allow(
            ['securityhub:GetFindings'],
            [`arn:${PARTITION}:securityhub:${REGION}:${ACCOUNT}:hub/default`],
          ),
        ]
      : []),
  ].sort();
}

/** The Scheduler role: invoke the audit function (and its versions), dead-letter to the queue. */
export function expectedSchedulerPermissions(ids: AuditIds): string[] {
  return [
    ...allow(['lambda:InvokeFunction'], [`${ids.function}.Arn`, `${ids.function}.Arn:*`]),
    ...allow(['sqs:SendMessage'], [`${ids.queue}.Arn`]),
  ].sort();
}

/** Both audit roles with their exact permissions, by logical id. */
export function expectedAuditRoles(
  resources: Resources,
  stack: RekeyStack,
  config: AuditConfig,
): Map<string, string[]> {
  const ids = auditIds(stack);
  return new Map([
    [ids.role, expectedAuditPermissions(resources, ids, config)],
    [ids.schedulerRole, expectedSchedulerPermissions(ids)],
  ]);
}

/** IAM actions with no resource type the audit is granted on '*'. */
export const ACCOUNT_WIDE_IAM_READS = [
  'iam:GenerateCredentialReport',
  'iam:GetCredentialReport',
  'iam:GetAccountAuthorizationDetails',
];

/**
 * IAM reads the audit makes about all users at once (ListServiceSpecificCredentials with
 * AllUsers), granted on '*': AWS does not document which resource such a request is authorized
 * against, and for an action whose only resource type is `user`, '*' covers users only.
 */
export const ALL_USERS_IAM_READS = ['iam:ListServiceSpecificCredentials'];

/**
 * IAM reads the audit makes on any user of the account, whatever the configured path: the key ids
 * of a user with a finding (it reports the whole account, and acts only within the path).
 */
export const EVERY_USER_AUDIT_READS = ['iam:ListAccessKeys'];
