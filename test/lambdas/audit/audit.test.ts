import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import {
  GenerateCredentialReportCommand,
  GetAccountAuthorizationDetailsCommand,
  GetCredentialReportCommand,
  IAMClient,
  ListAccessKeysCommand,
  ListServiceSpecificCredentialsCommand,
} from '@aws-sdk/client-iam';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  BatchImportFindingsCommand,
  GetFindingsCommand,
  SecurityHubClient,
} from '@aws-sdk/client-securityhub';
import { DescribeExecutionCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { loadEnv } from '../../../contract/env.ts';
import { AUDIT_ENV } from '../../../contract/functions.ts';
import {
  firstAttemptStarted,
  type RotationStarter,
  SfnRotationStarter,
} from '../../../lambdas/audit/actions.ts';
import { STILL_FAILING_DETAIL_TYPE } from '../../../lambdas/audit/alerts.ts';
import {
  AuditActionsFailed,
  auditPolicyFromEnv,
  ReportsNotWritten,
  runAudit,
  scanAccount,
} from '../../../lambdas/audit/audit.ts';
import { awsError, fakeClock, rejectionOf, TOPIC_ARN } from '../../support/lambda-fixtures.ts';
import { ACCOUNT, ago, expectNoSecretsInText, FAKE_SECRETS, reportCsv } from './helpers.ts';

const iam = new IAMClient({ region: 'us-east-1' });
const sns = new SNSClient({ region: 'us-east-1' });
const eventBridge = new EventBridgeClient({ region: 'us-east-1' });
const securityHub = new SecurityHubClient({ region: 'us-east-1' });
const sfn = new SFNClient({ region: 'us-east-1' });
const iamMock = mockClient(iam);
const sfnMock = mockClient(sfn);
const s3 = new S3Client({ region: 'us-east-1' });
const s3Mock = mockClient(s3);
const snsMock = mockClient(sns);
const ebMock = mockClient(eventBridge);
const shMock = mockClient(securityHub);

const ENV = loadEnv(AUDIT_ENV, {
  REKEY_STATE_MACHINE_ARN: `arn:aws:states:us-east-1:${ACCOUNT}:stateMachine:rekey-rotation`,
  REKEY_TOPIC_ARN: TOPIC_ARN,
  REKEY_PROTECTED_USERS: 'break-glass',
});
const POLICY = auditPolicyFromEnv(ENV);

/** An account where secrets sit next to everything the audit reads: none may come out. */
function seedAccount(): void {
  const [secretA, secretB] = FAKE_SECRETS as [string, string];
  const csv = reportCsv([
    { user: '<root_account>', key1: { created: 700, used: 3 } },
    { user: 'alice', key1: { created: 120, used: 1 } },
    { user: 'bob', key1: { created: 60 } },
    { user: 'break-glass', key1: { created: 200, used: 2 } },
    { user: 'vendor', key1: { created: 150, used: 1 } },
    { user: 'fresh', key1: { created: 3, used: 0 } },
  ])
    // A column IAM might add one day, holding a secret-shaped value: it must not be copied anywhere.
    .replace(/^user,/, 'extra_column,user,')
    .replace(/\n(?=[^\n])/g, `\n${secretA},`);
  iamMock.on(GenerateCredentialReportCommand).resolves({ State: 'COMPLETE' });
  iamMock
    .on(GetCredentialReportCommand)
    .resolves({ Content: new TextEncoder().encode(csv), GeneratedTime: ago(0) });
  iamMock.on(GetAccountAuthorizationDetailsCommand).resolves({
    IsTruncated: false,
    UserDetailList: [
      { UserName: 'alice', Path: '/', Tags: [{ Key: 'legacy-secret', Value: secretB }] },
      { UserName: 'bob', Path: '/' },
      { UserName: 'break-glass', Path: '/' },
      {
        UserName: 'vendor',
        Path: '/',
        Tags: [{ Key: 'rekey:exempt', Value: 'until=2099-01-01 vendor relay' }],
      },
      { UserName: 'fresh', Path: '/' },
    ],
  });
  iamMock.on(ListAccessKeysCommand).callsFake((input: { UserName: string }) => {
    const created = { alice: 120, bob: 60, 'break-glass': 200, vendor: 150 }[input.UserName] ?? 0;
    return {
      AccessKeyMetadata: [
        {
          UserName: input.UserName,
          AccessKeyId: `AKIA${input.UserName.replace(/\W/g, '').toUpperCase().padEnd(16, '0')}`,
          Status: 'Active',
          CreateDate: ago(created),
          // ListAccessKeys never returns secrets; a response that did must not leak either.
          SecretAccessKey: secretB,
        },
      ],
    };
  });
  // Service-specific credentials: alice's Keyspaces one is old; nobody has a CodeCommit one.
  iamMock.on(ListServiceSpecificCredentialsCommand).callsFake((input: { ServiceName: string }) => ({
    IsTruncated: false,
    ServiceSpecificCredentials:
      input.ServiceName === 'cassandra.amazonaws.com'
        ? [
            {
              UserName: 'alice',
              ServiceName: 'cassandra.amazonaws.com',
              ServiceUserName: 'alice-at-123456789012',
              ServiceSpecificCredentialId: 'ACCAALICECASSANDRA001',
              Status: 'Active',
              CreateDate: ago(120),
            },
          ]
        : [],
  }));
}

function starter(): RotationStarter & { start: ReturnType<typeof vi.fn> } {
  return {
    start: vi.fn(async (request: Parameters<RotationStarter['start']>[0]) =>
      firstAttemptStarted(request, 'arn:aws:states:...:execution:x'),
    ),
  };
}

const deps = (s: RotationStarter = starter()) => ({
  iam,
  sns,
  eventBridge,
  securityHub,
  starter: s,
  clock: fakeClock(),
  account: { partition: 'aws', region: 'us-east-1', accountId: ACCOUNT },
  topicArn: TOPIC_ARN,
  eventBusName: 'default',
});

beforeEach(() => {
  for (const m of [iamMock, snsMock, ebMock, shMock, sfnMock, s3Mock]) m.reset();
  s3Mock.on(PutObjectCommand).resolves({});
  snsMock.on(PublishCommand).resolves({ MessageId: 'm' });
  ebMock.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => ({
    FailedEntryCount: 0,
    Entries: input.Entries.map(() => ({ EventId: 'e' })),
  }));
  shMock.on(GetFindingsCommand).resolves({ Findings: [] });
  shMock.on(BatchImportFindingsCommand).resolves({ FailedCount: 0, SuccessCount: 1 });
  seedAccount();
});

describe('auditPolicyFromEnv', () => {
  it('has the documented defaults', () => {
    expect(POLICY).toEqual({
      thresholds: { maxKeyAgeDays: 90, unusedDays: 45, warnDays: 14 },
      exemptTag: 'rekey:exempt',
      ownerTag: 'rekey:owner',
      serviceCredentials: true,
      autoRotate: true,
      maxRotationsPerRun: 25,
      maxRotationAttempts: 3,
      deactivateUnused: false,
      deactivateUnusedAfterDays: 90,
      securityHub: false,
      protectedUsers: ['break-glass'],
      userPathPrefix: '/',
      optInTag: undefined,
    });
  });

  it('requires the state machine ARN, and names a bad one', () => {
    expect(() => loadEnv(AUDIT_ENV, { REKEY_TOPIC_ARN: TOPIC_ARN })).toThrow(/REKEY_STATE_MACHINE_ARN/);
    expect(() =>
      loadEnv(AUDIT_ENV, {
        REKEY_TOPIC_ARN: TOPIC_ARN,
        REKEY_STATE_MACHINE_ARN: 'arn:aws:sns:us-east-1:1:x',
      }),
    ).toThrow(/REKEY_STATE_MACHINE_ARN: must be a Step Functions state machine ARN/);
  });
});

describe('scanAccount', () => {
  it('costs three scan calls, one listing per service, plus one ListAccessKeys per user with a finding', async () => {
    const scan = await scanAccount({ iam, clock: fakeClock() }, POLICY);
    expect(scan.usersScanned).toBe(5);
    expect(scan.findings.map((f) => `${f.type}:${f.userName}:${f.serviceName ?? 'key'}`)).toEqual([
      'ROOT_ACCESS_KEY:<root_account>:key',
      'OLD_KEY:alice:key',
      'OLD_KEY:alice:cassandra.amazonaws.com',
      'OLD_KEY:break-glass:key',
      'OLD_KEY:vendor:key',
      'UNUSED_KEY:bob:key',
    ]);
    expect(scan.findings[2]).toMatchObject({
      userArn: `arn:aws:iam::${ACCOUNT}:user/alice`,
      accessKeyId: null,
      serviceSpecificCredentialId: 'ACCAALICECASSANDRA001',
      ageDays: 120,
      lastUsedDate: null,
      idleDays: null,
    });
    expect(scan.calls.toJSON()).toEqual({
      GenerateCredentialReport: 1,
      GetAccountAuthorizationDetails: 1,
      GetCredentialReport: 1,
      ListAccessKeys: 4,
      ListServiceSpecificCredentials: 2,
    });
    expect(scan.calls.scanCalls).toBe(5);
    expect(iamMock.commandCalls(ListServiceSpecificCredentialsCommand).map((c) => c.args[0].input)).toEqual([
      { AllUsers: true, ServiceName: 'cassandra.amazonaws.com', MaxItems: 1000 },
      { AllUsers: true, ServiceName: 'codecommit.amazonaws.com', MaxItems: 1000 },
    ]);
  });

  it('makes no ListServiceSpecificCredentials call with the toggle off (an emulator without the API)', async () => {
    const scan = await scanAccount({ iam, clock: fakeClock() }, { ...POLICY, serviceCredentials: false });
    expect(iamMock).not.toHaveReceivedCommand(ListServiceSpecificCredentialsCommand);
    expect(scan.findings.some((f) => f.serviceName)).toBe(false);
    expect(scan.calls.scanCalls).toBe(3);
    const off = auditPolicyFromEnv(
      loadEnv(AUDIT_ENV, {
        REKEY_STATE_MACHINE_ARN: `arn:aws:states:us-east-1:${ACCOUNT}:stateMachine:rekey-rotation`,
        REKEY_TOPIC_ARN: TOPIC_ARN,
        REKEY_AUDIT_SERVICE_CREDENTIALS: 'false',
      }),
    );
    expect(off.serviceCredentials).toBe(false);
  });

  it('fails on AccessDenied from the listing: a kind of credential is never skipped silently', async () => {
    iamMock
      .on(ListServiceSpecificCredentialsCommand)
      .rejects(awsError('AccessDenied', 'not authorized to perform: iam:ListServiceSpecificCredentials'));
    const error = await rejectionOf(scanAccount({ iam, clock: fakeClock() }, POLICY));
    expect(error.name).toBe('AccessDenied');
    expect(error.message).toContain('iam:ListServiceSpecificCredentials');
  });
});

describe('runAudit', () => {
  it('acts, alerts, and lets no secret out', async () => {
    const s = starter();

    const summary = await runAudit(deps(s), { ...POLICY, securityHub: true });

    expect(summary).toMatchObject({
      dryRun: false,
      usersScanned: 5,
      findings: { ROOT_ACCESS_KEY: 1, OLD_KEY: 4, UNUSED_KEY: 1, TWO_ACTIVE_KEYS: 0, EXPIRING_KEY: 0 },
      exempt: 1,
      stale: 0,
      rotations: { STARTED: 2, SKIPPED: 2 },
      deactivations: {},
      digestPublished: true,
      eventsPublished: 6,
      securityHub: { imported: 6, resolved: 0 },
      iamScanCalls: 5,
      iamPerFindingCalls: 4,
    });
    expect(s.start).toHaveBeenCalledTimes(2);
    expect(s.start).toHaveBeenCalledWith({
      executionName: 'rekey-alice-AKIAALICE00000000000',
      userName: 'alice',
      accessKeyId: 'AKIAALICE00000000000',
      reason: 'audit: OLD_KEY AKIAALICE00000000000 120 days',
      maxAttempts: 3,
    });
    expect(s.start).toHaveBeenCalledWith({
      executionName: 'rekey-alice-ACCAALICECASSANDRA001',
      userName: 'alice',
      accessKeyId: null,
      serviceName: 'cassandra.amazonaws.com',
      serviceSpecificCredentialId: 'ACCAALICECASSANDRA001',
      reason: 'audit: OLD_KEY cassandra.amazonaws.com ACCAALICECASSANDRA001 120 days',
      maxAttempts: 3,
    });
    const published = [
      JSON.stringify(snsMock.commandCalls(PublishCommand).map((c) => c.args[0].input)),
      JSON.stringify(ebMock.commandCalls(PutEventsCommand).map((c) => c.args[0].input)),
      JSON.stringify(shMock.commandCalls(BatchImportFindingsCommand).map((c) => c.args[0].input)),
      JSON.stringify(summary),
    ].join('\n');
    expect(published).toContain('AKIAALICE00000000000');
    expectNoSecretsInText(published);
  });

  it('a dry run starts, changes and publishes nothing', async () => {
    const s = starter();
    const summary = await runAudit(
      deps(s),
      { ...POLICY, securityHub: true, deactivateUnused: true },
      { dryRun: true },
    );
    expect(summary).toMatchObject({
      dryRun: true,
      digestPublished: false,
      eventsPublished: 0,
      securityHub: null,
    });
    expect(summary.rotations).toEqual({ WOULD_START: 2, SKIPPED: 2 });
    expect(s.start).not.toHaveBeenCalled();
    expect(snsMock).not.toHaveReceivedCommand(PublishCommand);
    expect(ebMock).not.toHaveReceivedCommand(PutEventsCommand);
    expect(shMock).not.toHaveReceivedCommand(BatchImportFindingsCommand);
  });

  it('Security Hub stays untouched unless enabled', async () => {
    await runAudit(deps(), POLICY);
    expect(shMock).not.toHaveReceivedCommand(GetFindingsCommand);
    expect(shMock).not.toHaveReceivedCommand(BatchImportFindingsCommand);
  });

  it('retries a failed rotation, gives up on one that kept failing, and lists both (Step Functions mocked)', async () => {
    // Prepare: alice's key had its 3 attempts fail; her Keyspaces credential's first attempt timed out.
    const machine = ENV.REKEY_STATE_MACHINE_ARN;
    const executions = machine.replace(':stateMachine:', ':execution:');
    const keyName = 'rekey-alice-AKIAALICE00000000000';
    const credentialName = 'rekey-alice-ACCAALICECASSANDRA001';
    const ended: Record<string, 'FAILED' | 'ABORTED' | 'TIMED_OUT'> = {
      [keyName]: 'FAILED',
      [`${keyName}-2`]: 'ABORTED',
      [`${keyName}-3`]: 'FAILED',
      [credentialName]: 'TIMED_OUT',
    };
    sfnMock.on(DescribeExecutionCommand).callsFake((input: { executionArn: string }) => {
      const status = ended[input.executionArn.slice(executions.length + 1)];
      if (!status) throw awsError('ExecutionDoesNotExist');
      return {
        executionArn: input.executionArn,
        status,
        ...(status === 'FAILED' ? { error: 'States.TaskFailed' } : {}),
      };
    });
    sfnMock
      .on(StartExecutionCommand)
      .callsFake((input: { name: string }) => ({ executionArn: `${executions}:${input.name}` }));

    // Act
    const summary = await runAudit(deps(new SfnRotationStarter(sfn, machine)), POLICY);

    // Assess: one retry started, nothing started for the key that kept failing.
    expect(summary.rotations).toEqual({ GIVEN_UP: 1, RETRIED: 1, SKIPPED: 2 });
    expect(sfnMock.commandCalls(StartExecutionCommand).map((c) => c.args[0].input)).toEqual([
      {
        stateMachineArn: machine,
        name: `${credentialName}-2`,
        input: JSON.stringify({
          userName: 'alice',
          serviceName: 'cassandra.amazonaws.com',
          reason: 'audit: OLD_KEY cassandra.amazonaws.com ACCAALICECASSANDRA001 120 days, attempt 2 of 3',
        }),
      },
    ]);
    expect(summary.retried).toEqual([
      {
        userName: 'alice',
        credentialId: 'ACCAALICECASSANDRA001',
        serviceName: 'cassandra.amazonaws.com',
        attempt: 2,
        executionName: `${credentialName}-2`,
        failed: [{ executionName: credentialName, status: 'TIMED_OUT', error: null }],
      },
    ]);
    expect(summary.givenUp).toEqual([
      {
        userName: 'alice',
        credentialId: 'AKIAALICE00000000000',
        attempt: 3,
        executionName: `${keyName}-3`,
        failed: [
          { executionName: keyName, status: 'FAILED', error: 'States.TaskFailed' },
          { executionName: `${keyName}-2`, status: 'ABORTED', error: null },
          { executionName: `${keyName}-3`, status: 'FAILED', error: 'States.TaskFailed' },
        ],
      },
    ]);
    // Alerted: the digest and one more event; the run itself succeeds (given up is not an error).
    expect(summary.eventsPublished).toBe(6 + 1);
    const digest = String(snsMock.commandCalls(PublishCommand)[0]?.args[0].input.Message);
    expect(digest).toContain('Rotations still failing: rekey stopped retrying them (1)');
    expect(digest).toContain(`${keyName}-3  FAILED (States.TaskFailed)`);
    expect(digest).toContain('Rotations retried (an earlier attempt failed)');
    const types = ebMock.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries ?? []);
    expect(types.filter((e) => e.DetailType === STILL_FAILING_DETAIL_TYPE)).toHaveLength(1);
  });

  it('fails with AuditActionsFailed after the alerts went out when a rotation could not start', async () => {
    const s = starter();
    s.start.mockRejectedValue(awsError('AccessDeniedException', 'no states:StartExecution'));

    const error = await rejectionOf(runAudit(deps(s), POLICY));

    expect(error).toBeInstanceOf(AuditActionsFailed);
    expect(error.message).toContain('ROTATION alice AKIAALICE00000000000: could not start the rotation');
    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 1);
    expect(String(snsMock.commandCalls(PublishCommand)[0]?.args[0].input.Message)).toContain(
      'failed:                      2',
    );
  });
});

describe('the report upload (auditReports)', () => {
  const withReports = () => ({ ...deps(), reports: { s3, bucket: 'rekey-reports' } });
  const digest = () => String(snsMock.commandCalls(PublishCommand)[0]?.args[0].input.Message);

  it('writes the HTML and CSV before the digest, which links to both', async () => {
    const summary = await runAudit(withReports(), POLICY);

    const puts = s3Mock.commandCalls(PutObjectCommand).map((c) => c.args[0].input);
    const base = `audit-reports/${ACCOUNT}/${summary.auditedAt.slice(0, 10)}/`;
    expect(puts.map((p) => [p.Bucket, p.Key?.replace(/\d{8}T\d{6}Z/, 'T'), p.ContentType])).toEqual([
      ['rekey-reports', `${base}T.html`, 'text/html; charset=utf-8'],
      ['rekey-reports', `${base}T.csv`, 'text/csv; charset=utf-8'],
    ]);
    expect(String(puts[0]?.Body)).toContain('<svg class="chart"');
    expect(String(puts[1]?.Body).split('\r\n')[0]).toContain('account_id,type,severity,user_name');
    const [html, csv] = puts.map((p) => p.Key ?? '');
    expect(summary.reports).toEqual({ html: `s3://rekey-reports/${html}`, csv: `s3://rekey-reports/${csv}` });
    expect(digest()).toContain(`s3://rekey-reports/${html}`);
    expect(digest()).toContain(
      `https://us-east-1.console.aws.amazon.com/s3/object/rekey-reports?region=us-east-1&bucketType=general&prefix=${encodeURIComponent(csv ?? '')}`,
    );
    // Uploaded first: the digest can only link to objects that exist.
    const published = snsMock.commandCalls(PublishCommand)[0];
    expect(published && s3Mock.commandCalls(PutObjectCommand)[1]?.calledBefore(published as never)).toBe(
      true,
    );
    expectNoSecretsInText(puts.map((p) => String(p.Body)).join('\n'));
  });

  it('writes nothing on a dry run, or without a bucket', async () => {
    const dry = await runAudit(withReports(), POLICY, { dryRun: true });
    const off = await runAudit(deps(), POLICY);

    expect(s3Mock).not.toHaveReceivedCommand(PutObjectCommand);
    expect(dry.reports).toBeNull();
    expect(off.reports).toBeNull();
    expect(digest()).not.toContain('Reports:');
  });

  it('a failed upload still sends the alerts, which say so, then fails the run with ReportsNotWritten', async () => {
    s3Mock.on(PutObjectCommand).rejects(awsError('AccessDenied', 'no s3:PutObject'));

    const error = await rejectionOf(runAudit(withReports(), POLICY));

    expect(error).toBeInstanceOf(ReportsNotWritten);
    expect(error.message).toBe('the audit reports were not written to S3: AccessDenied: no s3:PutObject');
    expect(digest()).toContain('Reports:            NOT WRITTEN (AccessDenied: no s3:PutObject)');
    expect(ebMock).toHaveReceivedCommand(PutEventsCommand);
  });
});
