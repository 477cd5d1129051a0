/**
 * The scheduled audit in the template: the EventBridge Scheduler schedule with its retry policy
 * and dead-letter queue, the audit function (one run at a time, never retried), its exact
 * permissions under each policy toggle, its environment contract, the SNS / EventBridge /
 * Security Hub wiring, and cdk-nag.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, describe, expect, it } from 'vitest';
import { loadEnv } from '../../contract/env.ts';
import { AUDIT_ENV, HANDLER_METADATA_KEY } from '../../contract/functions.ts';
import { auditEnvironment, loadConfig } from '../../infra/config.ts';
import { AUDIT_TIMEOUT } from '../../infra/constructs/audit.ts';
import { RekeyFunction } from '../../infra/constructs/rekey-function.ts';
import { auditIds, expectedAuditPermissions, expectedSchedulerPermissions } from './audit-helpers.ts';
import {
  ACCOUNT,
  type FunctionResource,
  getAttId,
  onlyLogicalId,
  PARTITION,
  REGION,
  rolePermissions,
  synth,
} from './helpers.ts';

/** The audit's pieces in a synthesized stack. */
function audit(raw: Record<string, unknown> = {}) {
  const synthesized = synth(raw);
  const ids = auditIds(synthesized.stack);
  const { resources } = synthesized;
  return {
    ...synthesized,
    ids,
    fn: resources[ids.function] as unknown as FunctionResource,
    variables: (resources[ids.function] as unknown as FunctionResource).Properties.Environment.Variables,
    permissions: rolePermissions(resources, ids.role),
  };
}

/** What `b` has that `a` has not, and what `a` has that `b` has not. */
function difference(a: readonly string[], b: readonly string[]) {
  return { added: b.filter((p) => !a.includes(p)).sort(), removed: a.filter((p) => !b.includes(p)).sort() };
}

const users = `arn:${PARTITION}:iam::${ACCOUNT}:user/*`;

describe('the audit configuration', () => {
  it.each([
    'cron(0 6 * * ? *)',
    'cron(30 2 ? * MON-FRI *)',
    'cron(0 */6 1,15 * ? 2027)',
    'rate(12 hours)',
    'rate(1 day)',
  ])('accepts the Scheduler expression %s', (auditSchedule) => {
    expect(loadConfig({ auditSchedule }).auditSchedule).toBe(auditSchedule);
  });

  it.each([
    ['both day fields set', 'cron(0 6 * * * *)'],
    ['neither day field set', 'cron(0 6 ? * ? *)'],
    ['five fields (crontab)', 'cron(0 6 * * ?)'],
    ['no cron( )', '0 6 * * ? *'],
    ['a zero rate', 'rate(0 days)'],
    ['an at() one-off', 'at(2027-01-01T06:00:00)'],
  ])('refuses a schedule with %s', (_why, auditSchedule) => {
    expect(() => loadConfig({ auditSchedule })).toThrow(/auditSchedule: must be cron/);
  });

  it('takes IANA time zones only', () => {
    expect(loadConfig({ auditScheduleTimezone: 'Europe/Berlin' }).auditScheduleTimezone).toBe(
      'Europe/Berlin',
    );
    expect(
      loadConfig({ auditScheduleTimezone: 'America/Argentina/Buenos_Aires' }).auditScheduleTimezone,
    ).toBe('America/Argentina/Buenos_Aires');
    for (const zone of ['Mars/Olympus_Mons', 'utc', 'CET+1', ''])
      expect(() => loadConfig({ auditScheduleTimezone: zone }), zone).toThrow(/auditScheduleTimezone/);
  });

  it('keeps thresholds and limits within what the audit accepts', () => {
    expect(loadConfig({ warnDays: 0 }).warnDays).toBe(0);
    expect(loadConfig({ maxRotationsPerRun: 0 }).maxRotationsPerRun).toBe(0);
    expect(loadConfig({ maxRotationAttempts: 1 }).maxRotationAttempts).toBe(1);
    expect(loadConfig({ maxRotationAttempts: 9 }).maxRotationAttempts).toBe(9);
    for (const bad of [
      { maxKeyAgeDays: 0 },
      { unusedDays: 3651 },
      { warnDays: -1 },
      { maxRotationsPerRun: 1001 },
      // Every attempt's execution name must fit 80 characters: one digit of attempt number.
      { maxRotationAttempts: 0 },
      { maxRotationAttempts: 10 },
      { maxRotationAttempts: 2.5 },
      { deactivateUnusedAfterDays: 1.5 },
      { autoRotate: 'yes' },
      { securityHub: 1 },
      { auditServiceCredentials: 'true' },
    ])
      expect(() => loadConfig(bad), JSON.stringify(bad)).toThrow(/invalid rekey configuration/);
  });
});

describe('the audit schedule', () => {
  it('is an EventBridge Scheduler schedule, daily at 06:00 UTC by default, on time', () => {
    const { template, ids, resources } = audit();
    const groupName = resources[ids.scheduleGroup]?.Properties?.Name;
    expect(groupName).toEqual(expect.any(String));
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(0 6 * * ? *)',
      ScheduleExpressionTimezone: 'UTC',
      FlexibleTimeWindow: { Mode: 'OFF' },
      State: 'ENABLED',
      GroupName: groupName,
    });
    // Not a legacy scheduled rule.
    expect(
      template.findResources('AWS::Events::Rule', { Properties: { ScheduleExpression: Match.anyValue() } }),
    ).toEqual({});
  });

  it('invokes the audit function with {} and retries delivery, then dead-letters to the queue', () => {
    const { template, ids } = audit();
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      Target: {
        Arn: { 'Fn::GetAtt': [ids.function, 'Arn'] },
        RoleArn: { 'Fn::GetAtt': [ids.schedulerRole, 'Arn'] },
        Input: '{}',
        RetryPolicy: { MaximumRetryAttempts: 5, MaximumEventAgeInSeconds: 3600 },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [ids.queue, 'Arn'] } },
      },
    });
  });

  it('follows the configured cron expression and time zone', () => {
    const { template } = audit({
      auditSchedule: 'cron(30 2 ? * MON-FRI *)',
      auditScheduleTimezone: 'Europe/Berlin',
    });
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(30 2 ? * MON-FRI *)',
      ScheduleExpressionTimezone: 'Europe/Berlin',
    });
  });

  it('is created after the audit can do its job, and after its group', () => {
    const { resources, ids } = audit();
    const dependsOn = (resources[ids.schedule] as { DependsOn?: string[] }).DependsOn ?? [];
    expect(dependsOn).toContain(ids.scheduleGroup);
    expect(dependsOn.some((id) => id.startsWith('AuditPermissions'))).toBe(true);
  });

  it('may be assumed by EventBridge Scheduler for schedules of its own group in this account only', () => {
    const { resources, ids } = audit();
    expect(resources[ids.schedulerRole]?.Properties?.AssumeRolePolicyDocument).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Service: 'scheduler.amazonaws.com' },
          Action: 'sts:AssumeRole',
          Condition: {
            StringEquals: {
              'aws:SourceAccount': { Ref: 'AWS::AccountId' },
              'aws:SourceArn': { 'Fn::GetAtt': [ids.scheduleGroup, 'Arn'] },
            },
          },
        },
      ],
    });
  });

  it("gives Scheduler's role nothing but invoking the audit function and sending to the queue", () => {
    const { resources, ids } = audit();
    expect(rolePermissions(resources, ids.schedulerRole)).toEqual(expectedSchedulerPermissions(ids));
  });
});

describe('the dead-letter queue', () => {
  it('is encrypted, refuses requests without TLS and keeps messages 14 days', () => {
    const { resources, template, ids } = audit();
    expect(resources[ids.queue]?.Properties).toMatchObject({
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 86_400,
    });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: ids.queue }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 'sqs:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  it('also receives failed runs: the function is never retried, its failures go to the queue', () => {
    const { template, ids } = audit();
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: ids.function },
      Qualifier: '$LATEST',
      MaximumRetryAttempts: 0,
      MaximumEventAgeInSeconds: 3600,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [ids.queue, 'Arn'] } } },
    });
  });
});

describe('the audit function', () => {
  it('runs lambdas/audit for up to 15 minutes, one run at a time', () => {
    const { fn } = audit();
    expect(AUDIT_TIMEOUT.toSeconds()).toBe(900);
    expect(fn.Properties).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      Timeout: 900,
      ReservedConcurrentExecutions: 1,
      TracingConfig: { Mode: 'Active' },
      LoggingConfig: { LogFormat: 'JSON', ApplicationLogLevel: 'INFO' },
    });
  });

  it('carries no rekey:handler metadata: no state-machine Task may be bound to it', () => {
    const { fn } = audit();
    expect(fn.Metadata?.[HANDLER_METADATA_KEY]).toBeUndefined();
  });

  it('logs to its own log group, kept for the configured retention', () => {
    const { fn, ids, resources, config } = audit();
    expect(fn.Properties.LoggingConfig.LogGroup).toEqual({ Ref: ids.logGroup });
    expect(resources[ids.logGroup]?.Properties?.RetentionInDays).toBe(config.logRetentionDays);
  });

  const ORGANIZATION_ONLY: string[] = [
    'REKEY_MEMBER_ROLE_PREFIX',
    'REKEY_SECRETS_LOCATION',
    'REKEY_ORGANIZATION_ID',
    'REKEY_ORGANIZATION_SCOPE',
    // The organization audit's results table (infra/constructs/organization-audit.ts).
    'REKEY_ORGANIZATION_RESULTS_TABLE',
  ];

  it("gets exactly the variables of the audit's environment contract (AUDIT_ENV)", () => {
    const { variables } = audit();
    // The opt-in tag and the report bucket are unset by default, the organization's variables
    // without organization: left out rather than set empty.
    const optional: string[] = ['REKEY_OPT_IN_TAG', 'REKEY_REPORT_BUCKET', ...ORGANIZATION_ONLY];
    expect(Object.keys(variables).sort()).toEqual(
      [...AUDIT_ENV.filter((k) => !optional.includes(k)), 'POWERTOOLS_SERVICE_NAME'].sort(),
    );
    const { variables: optIn } = audit({ optInTag: 'rekey:opt-in', auditReports: true });
    expect(Object.keys(optIn).sort()).toEqual(
      [...AUDIT_ENV.filter((k) => !ORGANIZATION_ONLY.includes(k)), 'POWERTOOLS_SERVICE_NAME'].sort(),
    );
  });

  it('passes every threshold and policy option through', () => {
    const { variables } = audit({
      maxKeyAgeDays: 60,
      unusedDays: 30,
      warnDays: 7,
      autoRotate: false,
      maxRotationsPerRun: 5,
      maxRotationAttempts: 5,
      deactivateUnused: true,
      deactivateUnusedAfterDays: 120,
      securityHub: true,
      auditServiceCredentials: false,
      exemptTag: 'owner:exempt',
      protectedUsers: ['break-glass', 'terraform'],
      userPathPrefix: '/ci/',
      optInTag: 'rekey:opt-in',
    });
    expect(variables).toMatchObject({
      REKEY_MAX_KEY_AGE_DAYS: '60',
      REKEY_UNUSED_DAYS: '30',
      REKEY_WARN_DAYS: '7',
      REKEY_AUTO_ROTATE: 'false',
      REKEY_MAX_ROTATIONS_PER_RUN: '5',
      REKEY_MAX_ROTATION_ATTEMPTS: '5',
      REKEY_DEACTIVATE_UNUSED: 'true',
      REKEY_DEACTIVATE_UNUSED_AFTER_DAYS: '120',
      REKEY_SECURITY_HUB: 'true',
      REKEY_AUDIT_SERVICE_CREDENTIALS: 'false',
      REKEY_EXEMPT_TAG: 'owner:exempt',
      REKEY_PROTECTED_USERS: 'break-glass,terraform',
      REKEY_USER_PATH_PREFIX: '/ci/',
      REKEY_OPT_IN_TAG: 'rekey:opt-in',
    });
  });

  it('is an environment the handler accepts at cold start', () => {
    // Prepare: the deployed values of the two references.
    const { variables } = audit();
    const deployed = Object.fromEntries(
      Object.entries(variables).map(([k, v]) => [
        k,
        k === 'REKEY_STATE_MACHINE_ARN'
          ? `arn:${PARTITION}:states:${REGION}:${ACCOUNT}:stateMachine:Rotation`
          : k === 'REKEY_TOPIC_ARN'
            ? `arn:${PARTITION}:sns:${REGION}:${ACCOUNT}:rekey`
            : k === 'REKEY_KEY_ID_CACHE_TABLE'
              ? 'rekey-AuditKeyIdCache'
              : k === 'REKEY_HUB_ACCOUNT_ID'
                ? ACCOUNT
                : v,
      ]),
    ) as Record<string, string>;

    // Act
    const env = loadEnv(AUDIT_ENV, deployed);

    // Assess
    expect(env).toMatchObject({
      REKEY_MAX_KEY_AGE_DAYS: 90,
      REKEY_UNUSED_DAYS: 45,
      REKEY_WARN_DAYS: 14,
      REKEY_AUTO_ROTATE: true,
      REKEY_MAX_ROTATIONS_PER_RUN: 25,
      REKEY_MAX_ROTATION_ATTEMPTS: 3,
      REKEY_DEACTIVATE_UNUSED: false,
      REKEY_DEACTIVATE_UNUSED_AFTER_DAYS: 90,
      REKEY_SECURITY_HUB: false,
      REKEY_AUDIT_SERVICE_CREDENTIALS: true,
      REKEY_PROTECTED_USERS: [],
      REKEY_USER_PATH_PREFIX: '/',
    });
  });

  it('maps the configuration as auditEnvironment does, and nothing else', () => {
    const { variables, config } = audit({ protectedUsers: ['a'], maxRotationsPerRun: 3 });
    const plain = auditEnvironment(config, {
      hubAccountId: '123456789012',
      topicArn: 't',
      stateMachineArn: 's',
      keyIdCacheTable: 'c',
    });
    for (const [key, value] of Object.entries(variables)) {
      if (typeof value === 'string' && key.startsWith('REKEY_'))
        expect(value, key).toBe(plain[key as keyof typeof plain]);
    }
  });
});

describe('the audit wiring', () => {
  it('publishes the digest to the rekey topic, through its key', () => {
    const { variables, resources, permissions } = audit();
    const topic = onlyLogicalId(resources, 'AWS::SNS::Topic');
    const topicKey = getAttId(resources[topic]?.Properties?.KmsMasterKeyId);
    expect(variables.REKEY_TOPIC_ARN).toEqual({ Ref: topic });
    expect(permissions).toContain(`Allow sns:Publish ${topic}`);
    const viaSns = JSON.stringify({ StringEquals: { 'kms:ViaService': `sns.${REGION}.amazonaws.com` } });
    expect(permissions).toContain(`Allow kms:GenerateDataKey ${topicKey}.Arn if ${viaSns}`);
  });

  it('sends one event per finding to the default event bus', () => {
    const { variables, permissions } = audit();
    expect(variables.REKEY_EVENT_BUS_NAME).toBe('default');
    expect(permissions).toContain(
      `Allow events:PutEvents arn:${PARTITION}:events:${REGION}:${ACCOUNT}:event-bus/default`,
    );
  });

  it('starts rotations on the rotation state machine of this stack', () => {
    const { variables, resources, permissions } = audit();
    const machine = onlyLogicalId(resources, 'AWS::StepFunctions::StateMachine');
    expect(variables.REKEY_STATE_MACHINE_ARN).toEqual({ Ref: machine });
    expect(permissions).toContain(`Allow states:StartExecution ${machine}`);
  });

  it('imports findings into Security Hub only when asked to', () => {
    expect(audit().variables.REKEY_SECURITY_HUB).toBe('false');
    expect(audit().permissions.filter((p) => p.includes('securityhub:'))).toEqual([]);
    const { variables, permissions } = audit({ securityHub: true });
    expect(variables.REKEY_SECURITY_HUB).toBe('true');
    expect(permissions).toContain(
      `Allow securityhub:BatchImportFindings arn:${PARTITION}:securityhub:${REGION}:${ACCOUNT}:product/${ACCOUNT}/default`,
    );
  });

  it('has a report bucket only with auditReports: private, TLS only, encrypted, reports expiring', () => {
    expect(audit().resources).not.toHaveProperty(
      Object.entries(audit().resources).find(([, r]) => r.Type === 'AWS::S3::Bucket')?.[0] ?? 'no bucket',
    );
    expect(audit().variables.REKEY_REPORT_BUCKET).toBeUndefined();
    const { template, ids, variables } = audit({ auditReports: true, auditReportsRetentionDays: 30 });
    expect(variables.REKEY_REPORT_BUCKET).toEqual({ Ref: ids.reportBucket });
    template.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      Properties: {
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
        LifecycleConfiguration: {
          Rules: [
            {
              Id: 'expire-audit-reports',
              Prefix: 'audit-reports/',
              Status: 'Enabled',
              ExpirationInDays: 30,
              AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
            },
          ],
        },
      },
    });
    // enforceSSL: every request without TLS is denied by the bucket policy.
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: ids.reportBucket },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Principal: { AWS: '*' },
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
    template.hasOutput('AuditReportBucketName', { Value: { Ref: ids.reportBucket } });
  });

  it('outputs the function name (to run the audit now) and the dead-letter queue', () => {
    const { template, ids } = audit();
    template.hasOutput('AuditFunctionName', { Value: { Ref: ids.function } });
    template.hasOutput('AuditDeadLetterQueueUrl', { Value: { Ref: ids.queue } });
  });
});

describe("the audit role's permissions", () => {
  it('are exactly the scan, the digest, the events and the rotations by default', () => {
    const { permissions, resources, ids, config } = audit();
    expect(permissions).toEqual(expectedAuditPermissions(resources, ids, config));
  });

  it('deactivateUnused adds re-reading last use and deactivating, on users under the path only', () => {
    const base = audit().permissions;
    const { permissions, resources, ids, config } = audit({ deactivateUnused: true });
    expect(difference(base, permissions)).toEqual({
      added: [`Allow iam:GetAccessKeyLastUsed ${users}`, `Allow iam:UpdateAccessKey ${users}`],
      removed: [],
    });
    expect(permissions).toEqual(expectedAuditPermissions(resources, ids, config));
  });

  it('securityHub adds importing findings to the default product and reading them back from the hub', () => {
    const base = audit().permissions;
    const { permissions, resources, ids, config } = audit({ securityHub: true });
    expect(difference(base, permissions)).toEqual({
      added: [
        `Allow securityhub:BatchImportFindings arn:${PARTITION}:securityhub:${REGION}:${ACCOUNT}:product/${ACCOUNT}/default`,
        `Allow securityhub:GetFindings arn:${PARTITION}:securityhub:${REGION}:${ACCOUNT}:hub/default`,
      ],
      removed: [],
    });
    expect(permissions).toEqual(expectedAuditPermissions(resources, ids, config));
  });

  it('auditReports adds putting objects under the report prefix of the report bucket, nothing else of S3', () => {
    const base = audit().permissions;
    const { permissions, resources, ids, config } = audit({ auditReports: true });
    expect(difference(base, permissions)).toEqual({
      added: [`Allow s3:PutObject ${ids.reportBucket}.Arn/audit-reports/*`],
      removed: [],
    });
    expect(permissions).toEqual(expectedAuditPermissions(resources, ids, config));
  });

  it('autoRotate off removes starting and describing executions', () => {
    const { resources } = audit();
    const machine = onlyLogicalId(resources, 'AWS::StepFunctions::StateMachine');
    const base = audit().permissions;
    const { permissions, resources: off, ids, config } = audit({ autoRotate: false });
    expect(difference(base, permissions)).toEqual({
      added: [],
      removed: [
        `Allow states:DescribeExecution arn:${PARTITION}:states:${REGION}:${ACCOUNT}:execution:${machine}.Name:*`,
        `Allow states:StartExecution ${machine}`,
      ],
    });
    expect(permissions).toEqual(expectedAuditPermissions(off, ids, config));
  });

  it('lists service-specific credentials (AllUsers, so on *) by default; auditServiceCredentials off removes it', () => {
    const { permissions: on } = audit();
    expect(on.filter((p) => p.includes('ServiceSpecificCredential'))).toEqual([
      'Allow iam:ListServiceSpecificCredentials *',
    ]);
    const { permissions, resources, ids, config, variables } = audit({ auditServiceCredentials: false });
    expect(difference(on, permissions)).toEqual({
      added: [],
      removed: ['Allow iam:ListServiceSpecificCredentials *'],
    });
    expect(permissions).toEqual(expectedAuditPermissions(resources, ids, config));
    expect(variables.REKEY_AUDIT_SERVICE_CREDENTIALS).toBe('false');
    expect(audit().variables.REKEY_AUDIT_SERVICE_CREDENTIALS).toBe('true');
  });

  it('never grants the audit a change to service-specific credentials', () => {
    const { permissions } = audit({ deactivateUnused: true, auditServiceCredentials: true });
    expect(
      permissions.filter((p) => /ServiceSpecificCredential/.test(p) && !p.startsWith('Allow iam:List')),
    ).toEqual([]);
  });

  it('deactivation keeps to opted-in users and never touches a protected one', () => {
    const { permissions, resources, ids, config } = audit({
      deactivateUnused: true,
      optInTag: 'rekey:opt-in',
      protectedUsers: ['break-glass'],
      userPathPrefix: '/ci/',
    });
    const tagged = JSON.stringify({ Null: { 'aws:ResourceTag/rekey:opt-in': 'false' } });
    expect(permissions).toContain(
      `Allow iam:UpdateAccessKey arn:${PARTITION}:iam::${ACCOUNT}:user/ci/* if ${tagged}`,
    );
    expect(permissions).toContain(
      `Deny iam:UpdateAccessKey arn:${PARTITION}:iam::${ACCOUNT}:user/break-glass`,
    );
    expect(permissions).toContain(
      `Deny iam:UpdateAccessKey arn:${PARTITION}:iam::${ACCOUNT}:user/*/break-glass`,
    );
    expect(permissions).toEqual(expectedAuditPermissions(resources, ids, config));
  });
});

/** Every acknowledgement recorded in a subtree: rule id -> reason. */
function acknowledgements(root: IConstruct): Map<string, string> {
  const found = new Map<string, string>();
  for (const c of root.node.findAll()) {
    for (const entry of c.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
        found.set(`${c.node.path} ${id.replace(/^annotation::/i, '')}`, reason);
      }
    }
  }
  return found;
}

describe('cdk-nag', () => {
  const configs = [
    {},
    { autoRotate: false },
    { auditServiceCredentials: false },
    { deactivateUnused: true, securityHub: true, optInTag: 'rekey:opt-in', protectedUsers: ['break-glass'] },
    { userPathPrefix: '/ci/', auditSchedule: 'rate(12 hours)' },
  ];

  it.each(configs)('finds nothing unacknowledged in the audit with %j', (raw) => {
    const { stack } = audit(raw);
    const report = new AwsSolutionsChecks().validateScope(stack.audit);
    expect(
      report.violations.map(
        (v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
      ),
    ).toEqual([]);
  });

  it('acknowledges each AwsSolutions finding of the audit with a reason', () => {
    const { stack } = audit({ securityHub: true, deactivateUnused: true });
    const acks = [...acknowledgements(stack.audit)].filter(([key]) => key.includes(' AwsSolutions-'));
    expect(
      acks.map(([key]) => key.replace(/^RekeyStack\/Audit\//, '').replace(/<[A-Za-z0-9]+\./g, '<X.')),
    ).toEqual(
      expect.arrayContaining([
        'DeadLetterQueue AwsSolutions-SQS3',
        'Permissions AwsSolutions-IAM5[Resource::*]',
        'Permissions AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user/*]',
        'Permissions AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<X.Name>:*]',
        'SchedulerRole AwsSolutions-IAM5[Resource::<X.Arn>:*]',
      ]),
    );
    for (const [key, reason] of acks) expect(reason.length, key).toBeGreaterThan(20);
  });
});

describe('the audit bundle', () => {
  // One real esbuild run of lambdas/audit (the stack tests skip bundling).
  const outdir = mkdtempSync(join(tmpdir(), 'rekey-audit-bundle-'));
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  it('builds the audit handler with the SDK clients it uses inside', () => {
    // Prepare
    const app = new App({ outdir, context: { 'aws:cdk:enable-asset-metadata': true } });
    const stack = new Stack(app, 'AuditBundleTest');
    const config = loadConfig({});
    new RekeyFunction(stack, 'Fn', {
      name: 'audit',
      environment: auditEnvironment(config, {
        hubAccountId: '123456789012',
        topicArn: 'arn:aws:sns:us-east-1:123456789012:t',
        stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:Rotation',
        keyIdCacheTable: 'rekey-key-ids',
      }),
      config,
    });

    // Act
    const template = Template.fromStack(stack).toJSON() as {
      Resources: Record<string, { Type: string; Metadata?: Record<string, string> }>;
    };

    // Assess
    const fn = Object.values(template.Resources).find((r) => r.Type === 'AWS::Lambda::Function');
    const assetDir = join(outdir, fn?.Metadata?.['aws:asset:path'] ?? 'missing');
    // No source map (docs/performance.md), and Security Hub in a file of its own (opt-in).
    expect(existsSync(join(assetDir, 'index.mjs.map'))).toBe(false);
    expect(existsSync(join(assetDir, 'security-hub.mjs'))).toBe(true);
    const code = readFileSync(join(assetDir, 'index.mjs'), 'utf8');
    // (Booleans, not toMatch: a failure would print the whole bundle.)
    expect(/(from|import\(|require\()\s*["']@aws-sdk\/client-/.test(code)).toBe(false);
    for (const operation of [
      'GenerateCredentialReport',
      'ListServiceSpecificCredentials',
      'StartExecution',
      'BatchImportFindings',
      'PutEvents',
    ])
      expect(code.includes(operation), operation).toBe(true);
  });
});
