/**
 * The audit Lambda's thin handler: environment validated at import, payload validated by schema,
 * the run wired to the module-scope clients.
 */
import { PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import {
  GenerateCredentialReportCommand,
  GetAccountAuthorizationDetailsCommand,
  GetCredentialReportCommand,
  ListAccessKeysCommand,
  ListServiceSpecificCredentialsCommand,
} from '@aws-sdk/client-iam';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { DescribeExecutionCommand, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { PublishCommand } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { awsError, fakeContext, silenceLogs, TOPIC_ARN } from '../../support/lambda-fixtures.ts';
import { ACCOUNT, ago, NOW, reportCsv } from './helpers.ts';

const STATE_MACHINE_ARN = `arn:aws:states:us-east-1:${ACCOUNT}:stateMachine:rekey-rotation`;

beforeAll(silenceLogs);
beforeEach(() => {
  // Each test loads the handler afresh (it validates the environment at import).
  vi.resetModules();
  vi.stubEnv('REKEY_STATE_MACHINE_ARN', STATE_MACHINE_ARN);
  vi.stubEnv('REKEY_TOPIC_ARN', TOPIC_ARN);
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.useRealTimers();
});

/** The handler, and mocks of the very client instances it uses (a fresh module graph per test). */
async function loadHandler() {
  const { handler } = await import('../../../lambdas/audit/index.ts');
  const { iam, sns, eventBridge } = await import('../../../lambdas/shared/clients.ts');
  const { sfn } = await import('../../../lambdas/shared/clients/sfn.ts');
  return {
    handler,
    iamMock: mockClient(iam),
    snsMock: mockClient(sns),
    ebMock: mockClient(eventBridge),
    sfnMock: mockClient(sfn),
  };
}

/** The handler over an account of one user, alice, whose key and Keyspaces credential are old. */
async function loadSeededHandler() {
  const loaded = await loadHandler();
  const { iamMock, snsMock, ebMock, sfnMock } = loaded;
  const csv = reportCsv([{ user: 'alice', key1: { created: 100, used: 1 } }]);
  iamMock.on(GenerateCredentialReportCommand).resolves({ State: 'COMPLETE' });
  iamMock.on(GetCredentialReportCommand).resolves({ Content: new TextEncoder().encode(csv) });
  iamMock
    .on(GetAccountAuthorizationDetailsCommand)
    .resolves({ UserDetailList: [{ UserName: 'alice', Path: '/' }] });
  iamMock.on(ListAccessKeysCommand).resolves({
    AccessKeyMetadata: [
      { UserName: 'alice', AccessKeyId: 'AKIAALICE00000000001', Status: 'Active', CreateDate: ago(100) },
    ],
  });
  iamMock.on(ListServiceSpecificCredentialsCommand).resolves({ ServiceSpecificCredentials: [] });
  iamMock.on(ListServiceSpecificCredentialsCommand, { ServiceName: 'cassandra.amazonaws.com' }).resolves({
    ServiceSpecificCredentials: [
      {
        UserName: 'alice',
        ServiceName: 'cassandra.amazonaws.com',
        ServiceSpecificCredentialId: 'ACCAALICECASSANDRA001',
        Status: 'Active',
        CreateDate: ago(95),
      },
    ],
  });
  sfnMock.on(DescribeExecutionCommand).rejects(awsError('ExecutionDoesNotExist'));
  sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:x', startDate: new Date() });
  snsMock.on(PublishCommand).resolves({});
  ebMock.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => ({
    FailedEntryCount: 0,
    Entries: input.Entries.map(() => ({ EventId: 'e' })),
  }));
  return loaded;
}

describe('the audit handler', () => {
  it('refuses to load without its environment', async () => {
    vi.stubEnv('REKEY_STATE_MACHINE_ARN', '');
    await expect(loadHandler()).rejects.toThrow(/invalid environment: REKEY_STATE_MACHINE_ARN/);
  });

  it.each([[{ dryRun: 'yes' }], [{ userName: 'alice' }], [null], ['{}']])(
    'refuses the payload %j',
    async (payload) => {
      const { handler, iamMock } = await loadHandler();
      await expect(handler(payload, fakeContext('rekey-audit'))).rejects.toMatchObject({
        name: 'InvalidPayload',
      });
      expect(iamMock).not.toHaveReceivedAnyCommand();
    },
  );

  it('runs the audit for the Scheduler payload {} and returns a summary', async () => {
    // The handler reads the system clock; the fixtures are relative to NOW.
    vi.useFakeTimers({ now: NOW, toFake: ['Date'] });
    const { handler, iamMock, sfnMock, snsMock } = await loadSeededHandler();

    const summary = await handler({}, fakeContext('rekey-audit'));

    expect(summary).toMatchObject({
      usersScanned: 1,
      findings: { OLD_KEY: 2, UNUSED_KEY: 0 },
      rotations: { STARTED: 2 },
      digestPublished: true,
      eventsPublished: 2,
      securityHub: null,
      iamScanCalls: 5,
      iamPerFindingCalls: 1,
    });
    // The deployed default lists service-specific credentials of all users, per service.
    expect(iamMock).toHaveReceivedCommandWith(ListServiceSpecificCredentialsCommand, {
      AllUsers: true,
      ServiceName: 'codecommit.amazonaws.com',
    });
    expect(sfnMock).toHaveReceivedCommandWith(StartExecutionCommand, {
      stateMachineArn: STATE_MACHINE_ARN,
      name: 'rekey-alice-ACCAALICECASSANDRA001',
      input: JSON.stringify({
        userName: 'alice',
        serviceName: 'cassandra.amazonaws.com',
        reason: 'audit: OLD_KEY cassandra.amazonaws.com ACCAALICECASSANDRA001 95 days',
      }),
    });
    expect(sfnMock).toHaveReceivedCommandWith(StartExecutionCommand, {
      stateMachineArn: STATE_MACHINE_ARN,
      name: 'rekey-alice-AKIAALICE00000000001',
      input: JSON.stringify({ userName: 'alice', reason: 'audit: OLD_KEY AKIAALICE00000000001 100 days' }),
    });
    expect(snsMock).toHaveReceivedCommandWith(PublishCommand, { TopicArn: TOPIC_ARN });
  });

  it('with REKEY_REPORT_BUCKET loads the S3 client and writes both reports there', async () => {
    vi.useFakeTimers({ now: NOW, toFake: ['Date'] });
    vi.stubEnv('REKEY_REPORT_BUCKET', 'rekey-reports');
    const { handler } = await loadSeededHandler();
    // The opt-in module from the sources: the instance the handler loaded (lambdas/shared/opt-in.ts).
    const { s3 } = await import('../../../lambdas/shared/clients/s3.ts');
    const s3Mock = mockClient(s3);
    s3Mock.on(PutObjectCommand).resolves({});

    const summary = await handler({}, fakeContext('rekey-audit'));

    const keys = s3Mock
      .commandCalls(PutObjectCommand)
      .map((c) => `${c.args[0].input.Bucket}/${c.args[0].input.Key}`);
    const base = `rekey-reports/audit-reports/${ACCOUNT}/${NOW.toISOString().slice(0, 10)}/`;
    expect(keys.map((k) => k.replace(/\d{8}T\d{6}Z/, 'T'))).toEqual([`${base}T.html`, `${base}T.csv`]);
    expect(summary.reports).toEqual({ html: `s3://${keys[0]}`, csv: `s3://${keys[1]}` });
  });
});
