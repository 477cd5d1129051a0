/**
 * The audit handler's organization modes (lambdas/audit/index.ts): the three payload shapes and
 * nothing else, the results table required by both modes, and the hub's own account audited
 * end to end through the handler (inAccount runs it under the audit's own role there).
 */
import { type AttributeValue, PutItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import { PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import {
  GenerateCredentialReportCommand,
  GetAccountAuthorizationDetailsCommand,
  GetCredentialReportCommand,
  ListAccessKeysCommand,
} from '@aws-sdk/client-iam';
import { DescribeExecutionCommand, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { PublishCommand } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { awsError, fakeContext, silenceLogs, TOPIC_ARN } from '../../support/lambda-fixtures.ts';
import { ACCOUNT, ago, NOW, reportCsv } from './helpers.ts';

const STATE_MACHINE_ARN = `arn:aws:states:us-east-1:${ACCOUNT}:stateMachine:rekey-rotation`;
const TABLE = 'rekey-organization-results';
const RUN = 'org-run-1';

beforeAll(silenceLogs);
beforeEach(() => {
  vi.resetModules();
  vi.stubEnv('REKEY_STATE_MACHINE_ARN', STATE_MACHINE_ARN);
  vi.stubEnv('REKEY_TOPIC_ARN', TOPIC_ARN);
  vi.stubEnv('REKEY_HUB_ACCOUNT_ID', ACCOUNT);
  vi.stubEnv('REKEY_AUDIT_SERVICE_CREDENTIALS', 'false');
  vi.stubEnv('REKEY_ORGANIZATION_RESULTS_TABLE', TABLE);
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.useRealTimers();
});

async function loadHandler() {
  const { handler } = await import('../../../lambdas/audit/index.ts');
  const { iam, sns, eventBridge } = await import('../../../lambdas/shared/clients.ts');
  const { sfn } = await import('../../../lambdas/shared/clients/sfn.ts');
  const { dynamodb } = await import('../../../lambdas/shared/clients/dynamodb.ts');
  const mocks = {
    iamMock: mockClient(iam),
    snsMock: mockClient(sns),
    ebMock: mockClient(eventBridge),
    sfnMock: mockClient(sfn),
    ddbMock: mockClient(dynamodb),
  };
  return { handler, ...mocks };
}

describe('the audit handler, organization modes', () => {
  it.each([
    [{ mode: 'account', accountId: ACCOUNT }],
    [{ mode: 'account', runId: RUN, accountId: '1234' }],
    [{ mode: 'account', runId: RUN, accountId: ACCOUNT, accountIds: [ACCOUNT] }],
    [{ mode: 'aggregate', runId: RUN, accountIds: [] }],
    [{ mode: 'aggregate', runId: RUN }],
    [{ mode: 'everything', runId: RUN }],
    [{ runId: RUN }],
  ])('refuses the payload %j before any call', async (payload) => {
    const { handler, iamMock, ddbMock } = await loadHandler();
    await expect(handler(payload, fakeContext('rekey-audit'))).rejects.toMatchObject({
      name: 'InvalidPayload',
    });
    expect(iamMock).not.toHaveReceivedAnyCommand();
    expect(ddbMock).not.toHaveReceivedAnyCommand();
  });

  it('refuses both modes without the results table (no organization), before any call', async () => {
    vi.stubEnv('REKEY_ORGANIZATION_RESULTS_TABLE', undefined);
    const { handler, iamMock } = await loadHandler();
    await expect(
      handler({ mode: 'account', runId: RUN, accountId: ACCOUNT }, fakeContext('rekey-audit')),
    ).rejects.toMatchObject({ name: 'ConfigurationError' });
    await expect(
      handler({ mode: 'aggregate', runId: RUN, accountIds: [ACCOUNT] }, fakeContext('rekey-audit')),
    ).rejects.toMatchObject({ name: 'ConfigurationError' });
    expect(iamMock).not.toHaveReceivedAnyCommand();
  });

  it("audits the hub's account in account mode, then the aggregate reads it back and sends the digest", async () => {
    // Prepare
    vi.useFakeTimers({ now: NOW, toFake: ['Date'] });
    const { handler, iamMock, snsMock, ebMock, sfnMock, ddbMock } = await loadHandler();
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
    sfnMock.on(DescribeExecutionCommand).rejects(awsError('ExecutionDoesNotExist'));
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:x', startDate: new Date() });
    snsMock.on(PublishCommand).resolves({});
    ebMock.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => ({
      FailedEntryCount: 0,
      Entries: input.Entries.map(() => ({ EventId: 'e' })),
    }));
    const items: Record<string, AttributeValue>[] = [];
    ddbMock.on(PutItemCommand).callsFake((input: { Item: Record<string, AttributeValue> }) => {
      items.push(input.Item);
      return {};
    });
    ddbMock.on(QueryCommand).callsFake(() => ({ Items: items }));

    // Act
    const counts = await handler(
      { mode: 'account', runId: RUN, accountId: ACCOUNT },
      fakeContext('rekey-audit'),
    );
    const totals = await handler(
      { mode: 'aggregate', runId: RUN, accountIds: [ACCOUNT] },
      fakeContext('rekey-audit'),
    );

    // Assert
    expect(counts).toEqual({ accountId: ACCOUNT, usersScanned: 1, findings: 1, rotationsStarted: 1 });
    expect(totals).toEqual({ accounts: 1, audited: 1, failed: 0, findings: 1, rotationsStarted: 1 });
    expect(ddbMock.commandCalls(PutItemCommand)[0]?.args[0].input.TableName).toBe(TABLE);
    // The hub's execution name and input, as in a single-account audit.
    expect(sfnMock.commandCalls(StartExecutionCommand)[0]?.args[0].input.name).toBe(
      'rekey-alice-AKIAALICE00000000001',
    );
    expect(snsMock.commandCalls(PublishCommand)).toHaveLength(1);
  });
});
