import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { PublishBatchCommand } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { STILL_IN_USE_ADVICE } from '../../../../contract/errors.ts';
import { hubPathCalls } from '../../../../contract/functions.ts';
import {
  NOTIFICATION_EVENTS,
  type NotificationEvent,
  NotifyInput,
  TERMINAL_EVENTS,
} from '../../../../contract/schemas.ts';
import { TRANSIENT_ERRORS } from '../../../../contract/states.ts';
import {
  causeMessage,
  detailOf,
  type NotifyDeps,
  notify,
} from '../../../../lambdas/rotation/notify/notify.ts';
import { dynamodb, eventBridge, sns } from '../../../../lambdas/shared/clients.ts';
import {
  ACCOUNT,
  awsError,
  callOrder,
  daysAgo,
  EXECUTION_ID,
  FAKE_SECRET,
  fakeClock,
  inputsOf,
  LOCK_TABLE,
  NEW_KEY_ID,
  NOW,
  OLD_KEY_ID,
  OLD_KEY_LAST_USED,
  rejectionOf,
  SECRET_ARN,
  silenceLogs,
  stateWithNewKey,
  TOPIC_ARN,
  USER,
} from '../../../support/lambda-fixtures.ts';
import {
  NEW_ID,
  OLD_ID,
  PASSWORD,
  SERVICE,
  SERVICE_USER,
  serviceStateWithNewKey,
} from '../../../support/service-credential-fixtures.ts';

const snsMock = mockClient(sns);
const ebMock = mockClient(eventBridge);
const ddbMock = mockClient(dynamodb);

const BUS = 'default';
const nowEpoch = Math.floor(NOW.getTime() / 1000);
const DETAIL_FIELDS = [
  'event',
  'accountId',
  'userName',
  'owner',
  'executionId',
  'oldAccessKeyId',
  'oldKeyLastUsedDate',
  'newAccessKeyId',
  'secretArn',
  'adoptionChecks',
  'recentCallers',
  'deactivatedAt',
  'status',
  'reason',
  'message',
];

const deps = (): NotifyDeps => ({
  sns,
  eventBridge,
  lock: { dynamodb, table: LOCK_TABLE },
  clock: fakeClock(),
  env: { REKEY_TOPIC_ARN: TOPIC_ARN, REKEY_EVENT_BUS_NAME: BUS, REKEY_HUB_ACCOUNT_ID: ACCOUNT },
});

const releaseInput = {
  TableName: LOCK_TABLE,
  Key: { userName: { S: USER } },
  UpdateExpression: 'REMOVE #owner, acquiredAt SET expiresAt = :exp',
  ConditionExpression: '#owner = :owner',
  ExpressionAttributeNames: { '#owner': 'owner' },
  ExpressionAttributeValues: { ':owner': { S: EXECUTION_ID }, ':exp': { N: String(nowEpoch + 90 * 86_400) } },
};

const stillInUse = () => ({
  ...stateWithNewKey(),
  adoption: {
    checks: 3,
    inUse: true,
    lastUsedDate: daysAgo(1).toISOString(),
    lastUsedService: 'ses',
    lastUsedRegion: 'eu-west-1',
    recentCallers: ['SendEmail from 198.51.100.2 (Boto3/1.34)'],
    mayWaitAgain: false,
    quietSince: NOW.toISOString(),
  },
});

/** The Detail of the (only) event sent, parsed. */
function sentDetail(): Record<string, unknown> {
  const entry = ebMock.commandCalls(PutEventsCommand)[0]?.args[0].input.Entries?.[0];
  return JSON.parse(entry?.Detail ?? 'null');
}
const sentMessage = () =>
  snsMock.commandCalls(PublishBatchCommand)[0]?.args[0].input.PublishBatchRequestEntries?.[0]?.Message ?? '';

beforeAll(silenceLogs);
beforeEach(() => {
  snsMock.reset();
  ebMock.reset();
  ddbMock.reset();
  snsMock.on(PublishBatchCommand).resolves({ Successful: [{ Id: '0', MessageId: 'm-1' }], Failed: [] });
  ebMock.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e-1' }] });
  ddbMock.on(UpdateItemCommand).resolves({});
});

describe('notify', () => {
  it('NEW_KEY_READY: one SNS message and one EventBridge event of exactly this shape', async () => {
    // Prepare
    const expectedMessage =
      `A new access key ${NEW_KEY_ID} for "${USER}" is ready in rekey/alice (AWSCURRENT). Switch every ` +
      `consumer to it; the old key ${OLD_KEY_ID} will be deactivated once it is no longer used.`;

    // Act
    const result = await notify(deps(), { events: ['NEW_KEY_READY'], state: stateWithNewKey() });

    // Assess
    expect(result).toEqual({ published: true });
    const detail = {
      event: 'NEW_KEY_READY',
      accountId: ACCOUNT,
      userName: USER,
      owner: null,
      executionId: EXECUTION_ID,
      oldAccessKeyId: OLD_KEY_ID,
      oldKeyLastUsedDate: OLD_KEY_LAST_USED.toISOString(),
      newAccessKeyId: NEW_KEY_ID,
      secretArn: SECRET_ARN,
      adoptionChecks: null,
      recentCallers: null,
      deactivatedAt: null,
      status: null,
      reason: null,
      message: expectedMessage,
    };
    expect(inputsOf(ebMock.commandCalls(PutEventsCommand))).toEqual([
      {
        Entries: [
          {
            Source: 'rekey',
            DetailType: 'New Access Key Ready',
            Detail: JSON.stringify(detail),
            EventBusName: BUS,
            Resources: [SECRET_ARN],
          },
        ],
      },
    ]);
    expect(inputsOf(snsMock.commandCalls(PublishBatchCommand))).toEqual([
      {
        TopicArn: TOPIC_ARN,
        PublishBatchRequestEntries: [
          {
            Id: '0',
            Subject: `[rekey] New Access Key Ready: ${USER}`,
            Message: [
              expectedMessage,
              '',
              'event: NEW_KEY_READY',
              `accountId: ${ACCOUNT}`,
              `userName: ${USER}`,
              `executionId: ${EXECUTION_ID}`,
              `oldAccessKeyId: ${OLD_KEY_ID}`,
              `oldKeyLastUsedDate: ${OLD_KEY_LAST_USED.toISOString()}`,
              `newAccessKeyId: ${NEW_KEY_ID}`,
              `secretArn: ${SECRET_ARN}`,
            ].join('\n'),
            MessageAttributes: {
              event: { DataType: 'String', StringValue: 'NEW_KEY_READY' },
              accountId: { DataType: 'String', StringValue: ACCOUNT },
            },
          },
        ],
      },
    ]);
    // Not terminal: the lock stays with the execution.
    expect(ddbMock.calls()).toHaveLength(0);
  });

  it.each(Object.entries(NOTIFICATION_EVENTS))(
    '%s is sent with source "rekey" and detail-type "%s"',
    async (event, detailType) => {
      // Act
      await notify(deps(), { events: [event as NotificationEvent], state: stillInUse() });

      // Assess
      expect(ebMock).toHaveReceivedCommandWith(PutEventsCommand, {
        Entries: [expect.objectContaining({ Source: 'rekey', DetailType: detailType, EventBusName: BUS })],
      });
      expect(snsMock).toHaveReceivedCommandTimes(PublishBatchCommand, 1);
    },
  );

  it('the start and the new key in one invocation: one PublishBatch and one PutEvents, two messages and two events in order', async () => {
    // Act
    const result = await notify(deps(), {
      events: ['ROTATION_STARTED', 'NEW_KEY_READY'],
      state: stateWithNewKey(),
    });

    // Assess
    expect(result).toEqual({ published: true });
    expect(snsMock).toHaveReceivedCommandTimes(PublishBatchCommand, 1);
    const batch = inputsOf(snsMock.commandCalls(PublishBatchCommand))[0];
    expect(batch?.TopicArn).toBe(TOPIC_ARN);
    expect(batch?.PublishBatchRequestEntries?.map((e) => [e.Id, e.Subject, e.MessageAttributes])).toEqual([
      [
        '0',
        `[rekey] Access Key Rotation Started: ${USER}`,
        {
          event: { DataType: 'String', StringValue: 'ROTATION_STARTED' },
          accountId: { DataType: 'String', StringValue: ACCOUNT },
        },
      ],
      [
        '1',
        `[rekey] New Access Key Ready: ${USER}`,
        {
          event: { DataType: 'String', StringValue: 'NEW_KEY_READY' },
          accountId: { DataType: 'String', StringValue: ACCOUNT },
        },
      ],
    ]);
    expect(batch?.PublishBatchRequestEntries?.[0]?.Message).toMatch(
      new RegExp(`^Rotation of "${USER}" started: ${OLD_KEY_ID} will be replaced`),
    );
    expect(ebMock).toHaveReceivedCommandTimes(PutEventsCommand, 1);
    const entries = inputsOf(ebMock.commandCalls(PutEventsCommand))[0]?.Entries ?? [];
    expect(
      entries.map((e) => [e.Source, e.DetailType, e.EventBusName, JSON.parse(e.Detail ?? '{}').event]),
    ).toEqual([
      ['rekey', 'Access Key Rotation Started', BUS, 'ROTATION_STARTED'],
      ['rekey', 'New Access Key Ready', BUS, 'NEW_KEY_READY'],
    ]);
    // Neither is terminal: the lock stays with the execution.
    expect(ddbMock.calls()).toHaveLength(0);
  });

  it('a resumed run announces no start (its rotation started in the run it resumes), only the new key', async () => {
    // Act
    await notify(deps(), {
      events: ['ROTATION_STARTED', 'NEW_KEY_READY'],
      state: { ...stateWithNewKey(), action: 'RESUME', resumeStage: 'ADOPTION' },
    });

    // Assess
    const batch = inputsOf(snsMock.commandCalls(PublishBatchCommand))[0];
    expect(batch?.PublishBatchRequestEntries?.map((e) => e.Subject)).toEqual([
      `[rekey] New Access Key Ready: ${USER}`,
    ]);
    const entries = inputsOf(ebMock.commandCalls(PutEventsCommand))[0]?.Entries ?? [];
    expect(entries.map((e) => e.DetailType)).toEqual(['New Access Key Ready']);
  });

  it.each([
    [false, 'InternalFailure'],
    [true, 'Error'],
  ])(
    'throws when SNS refuses a message of the batch (SenderFault %s: %s), before any event is sent',
    async (senderFault, name) => {
      // Prepare
      snsMock.on(PublishBatchCommand).resolves({
        Successful: [{ Id: '0', MessageId: 'm-1' }],
        Failed: [{ Id: '1', Code: 'InternalError', SenderFault: senderFault }],
      });

      // Act
      const error = await rejectionOf(
        notify(deps(), { events: ['ROTATION_STARTED', 'NEW_KEY_READY'], state: stateWithNewKey() }),
      );

      // Assess: the state machine retries InternalFailure (TRANSIENT_ERRORS), not a fault of the request.
      expect(error).toMatchObject({
        name,
        message: 'SNS refused the New Access Key Ready message: InternalError',
      });
      expect(TRANSIENT_ERRORS.includes(error.name as never)).toBe(!senderFault);
      expect(ebMock).not.toHaveReceivedCommand(PutEventsCommand);
    },
  );

  it('NotifyInput takes one to ten events, only the last of them terminal', () => {
    const state = stateWithNewKey();
    expect(NotifyInput.safeParse({ events: ['ROTATION_STARTED', 'NEW_KEY_READY'], state }).success).toBe(
      true,
    );
    expect(NotifyInput.safeParse({ events: ['KEY_DEACTIVATED', 'ROTATION_COMPLETED'], state }).success).toBe(
      true,
    );
    expect(NotifyInput.safeParse({ events: [], state }).success).toBe(false);
    expect(NotifyInput.safeParse({ events: Array(11).fill('NEW_KEY_READY'), state }).success).toBe(false);
    expect(NotifyInput.safeParse({ events: ['ROTATION_COMPLETED', 'NEW_KEY_READY'], state }).success).toBe(
      false,
    );
  });

  it('a dry run publishes nothing and touches no lock; a terminal event still returns its outcome', async () => {
    // Act
    const result = await notify(deps(), {
      events: ['ROTATION_STOPPED'],
      state: { ...stateWithNewKey(), dryRun: true, stopReason: 'UserExempt', message: 'exempt' },
    });

    // Assess
    expect(result).toEqual({ status: 'STOPPED', reason: 'UserExempt', message: 'exempt' });
    expect(snsMock.calls()).toHaveLength(0);
    expect(ebMock.calls()).toHaveLength(0);
    expect(ddbMock.calls()).toHaveLength(0);
  });

  it('a dry run of a milestone event returns published:false', async () => {
    // Act & Assess
    await expect(
      notify(deps(), { events: ['ROTATION_STARTED'], state: { ...stateWithNewKey(), dryRun: true } }),
    ).resolves.toEqual({ published: false });
    expect(snsMock.calls()).toHaveLength(0);
    expect(ebMock.calls()).toHaveLength(0);
  });

  it.each(TERMINAL_EVENTS)(
    'terminal event %s releases the lock (owner-conditioned) after publishing',
    async (event) => {
      // Act
      await notify(deps(), { events: [event], state: stillInUse() });

      // Assess
      expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([releaseInput]);
      expect(ddbMock.call(0).calledAfter(ebMock.call(0))).toBe(true);
    },
  );

  it("a member account's rotation: its account in the detail, the text and the attribute; its own lock", async () => {
    const member = '210987654321';
    await notify(deps(), {
      events: ['ROTATION_COMPLETED'],
      state: { ...stateWithNewKey(), accountId: member },
    });

    const detail = JSON.parse(
      inputsOf(ebMock.commandCalls(PutEventsCommand))[0]?.Entries?.[0]?.Detail ?? '{}',
    );
    expect(detail.accountId).toBe(member);
    const message = inputsOf(snsMock.commandCalls(PublishBatchCommand))[0]?.PublishBatchRequestEntries?.[0];
    expect(message?.MessageAttributes?.accountId).toEqual({ DataType: 'String', StringValue: member });
    expect(message?.Message).toContain(`accountId: ${member}`);
    // The hub's lock of the same user name is another one.
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([
      { ...releaseInput, Key: { userName: { S: `${member}:${USER}` } } },
    ]);
  });

  it('a state that names no account (the raw request, the plan failed): the hub account', async () => {
    const { accountId: _none, ...state } = stateWithNewKey();
    await notify(deps(), { events: ['ROTATION_FAILED'], state });

    const detail = JSON.parse(
      inputsOf(ebMock.commandCalls(PutEventsCommand))[0]?.Entries?.[0]?.Detail ?? '{}',
    );
    expect(detail.accountId).toBe(ACCOUNT);
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([releaseInput]);
  });

  it.each(['ROTATION_STARTED', 'NEW_KEY_READY', 'OLD_KEY_STILL_IN_USE', 'KEY_DEACTIVATED'] as const)(
    'milestone event %s keeps the lock',
    async (event) => {
      // Act
      await notify(deps(), { events: [event], state: stillInUse() });

      // Assess
      expect(ddbMock.calls()).toHaveLength(0);
    },
  );

  it('ROTATION_COMPLETED returns the ROTATED outcome', async () => {
    // Act & Assess
    await expect(
      notify(deps(), { events: ['ROTATION_COMPLETED'], state: stateWithNewKey() }),
    ).resolves.toEqual({
      status: 'ROTATED',
      message: `rotated "${USER}": ${OLD_KEY_ID} was replaced by ${NEW_KEY_ID}`,
    });
  });

  it('throws when EventBridge rejects the entry (FailedEntryCount), and a terminal event still releases the lock', async () => {
    // Prepare
    ebMock.on(PutEventsCommand).resolves({
      FailedEntryCount: 1,
      Entries: [{ ErrorCode: 'InternalFailure', ErrorMessage: 'try again' }],
    });

    // Act & Assess
    await expect(
      notify(deps(), { events: ['ROTATION_COMPLETED'], state: stateWithNewKey() }),
    ).rejects.toThrow('EventBridge rejected the Access Key Rotation Completed event: InternalFailure');
    // The execution ends either way: the user must not stay locked until the execution timeout.
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([releaseInput]);
  });

  it('propagates an SNS failure without sending the event; a milestone that is not the end keeps the lock', async () => {
    // Prepare
    const failure = awsError('KMSAccessDeniedException');
    snsMock.on(PublishBatchCommand).rejects(failure);

    // Act & Assess
    await expect(notify(deps(), { events: ['NEW_KEY_READY'], state: stateWithNewKey() })).rejects.toBe(
      failure,
    );
    expect(ebMock.calls()).toHaveLength(0);
    expect(ddbMock.calls()).toHaveLength(0);
  });

  it('a failing terminal notification (SNS) still releases the lock, then fails', async () => {
    // Prepare
    const failure = awsError('KMSAccessDeniedException');
    snsMock.on(PublishBatchCommand).rejects(failure);

    // Act & Assess
    await expect(notify(deps(), { events: ['ROTATION_FAILED'], state: stateWithNewKey() })).rejects.toBe(
      failure,
    );
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([releaseInput]);
  });

  it('ROTATION_FAILED says what the cleanup did and what to do next', async () => {
    // Prepare
    const error = { Error: 'Boom', Cause: JSON.stringify({ errorType: 'Boom', errorMessage: 'it broke' }) };
    const cleanup = (over: Record<string, unknown>) => ({
      acted: true,
      releasedLock: true,
      removedKeyIds: [],
      keptKeyId: null,
      message: 'FAILED: ...',
      ...over,
    });

    // Act
    const removed = await notify(deps(), {
      events: ['ROTATION_FAILED'],
      state: { ...stateWithNewKey(), error, cleanup: cleanup({ removedKeyIds: [NEW_KEY_ID] }) },
    });
    const kept = await notify(deps(), {
      events: ['ROTATION_FAILED'],
      state: { ...stateWithNewKey(), error, cleanup: cleanup({ keptKeyId: NEW_KEY_ID }) },
    });
    const cleanupFailed = await notify(deps(), {
      events: ['ROTATION_FAILED'],
      state: { ...stateWithNewKey(), error, cleanupError: { Error: 'ServiceFailure' } },
    });

    // Assess
    expect(removed).toMatchObject({
      message:
        `rotation of "${USER}" failed: Boom: it broke. ${NEW_KEY_ID}, made by this run and never handed out, ` +
        'was deleted; once the cause is fixed, start the rotation of this user again',
    });
    expect(kept).toMatchObject({
      message: expect.stringContaining(
        `the new access key ${NEW_KEY_ID} was already handed out (AWSCURRENT) and is kept: once the cause is ` +
          'fixed, start the rotation of this user again and it resumes with that key',
      ),
    });
    expect(cleanupFailed).toMatchObject({
      message: expect.stringContaining(
        'The cleanup failed too (ServiceFailure); it runs again when the execution has ended',
      ),
    });
  });

  it('the event detail and the message are built from the allow-list only (no stray state field leaks)', async () => {
    // Prepare: a state carrying fields that must never be published.
    const state = {
      ...stillInUse(),
      SecretAccessKey: FAKE_SECRET,
      newKey: { ...stateWithNewKey().newKey, SecretAccessKey: FAKE_SECRET },
    } as NotifyInput['state'];

    // Act
    await notify(deps(), { events: ['NEW_KEY_READY'], state });

    // Assess
    expect(Object.keys(sentDetail())).toEqual(DETAIL_FIELDS);
    expect(JSON.stringify(ebMock.calls().map((c) => c.args[0].input))).not.toContain(FAKE_SECRET);
    expect(JSON.stringify(snsMock.calls().map((c) => c.args[0].input))).not.toContain(FAKE_SECRET);
  });

  it('OLD_KEY_STILL_IN_USE names the old key, its last use (date, service, region, callers) and the new key', async () => {
    // Prepare
    const state = stillInUse();

    // Act
    await notify(deps(), { events: ['OLD_KEY_STILL_IN_USE'], state });

    // Assess
    const message =
      `The old access key ${OLD_KEY_ID} of "${USER}" is still in use: last used ${daysAgo(1).toISOString()} ` +
      'by ses in eu-west-1 (SendEmail from 198.51.100.2 (Boto3/1.34)). ' +
      `Check 3; switch it to the new key ${NEW_KEY_ID}.`;
    expect(sentDetail()).toMatchObject({
      event: 'OLD_KEY_STILL_IN_USE',
      oldAccessKeyId: OLD_KEY_ID,
      oldKeyLastUsedDate: daysAgo(1).toISOString(),
      adoptionChecks: 3,
      recentCallers: ['SendEmail from 198.51.100.2 (Boto3/1.34)'],
      message,
    });
    expect(sentMessage().split('\n')[0]).toBe(message);
    expect(sentMessage()).toContain('recentCallers: SendEmail from 198.51.100.2 (Boto3/1.34)');
  });

  it('ROTATION_STOPPED after the adoption checks: OldKeyStillInUse naming the old key and its last use', async () => {
    // Act
    const outcome = await notify(deps(), { events: ['ROTATION_STOPPED'], state: stillInUse() });

    // Assess
    expect(outcome).toEqual({
      status: 'STOPPED',
      reason: 'OldKeyStillInUse',
      message:
        `the old key ${OLD_KEY_ID} of "${USER}" was still in use after 3 checks (last used ` +
        `${daysAgo(1).toISOString()} by ses in eu-west-1); both keys stay active and the secret holds the new ` +
        `key ${NEW_KEY_ID}. Switch every consumer that still uses the old key to the secret's AWSCURRENT ` +
        'version (the new key), then start the rotation of this user again: it resumes with the new key, ' +
        'creates none, checks that the old key went quiet, deactivates it and later deletes it',
    });
    expect(sentDetail()).toMatchObject({
      status: 'STOPPED',
      reason: 'OldKeyStillInUse',
      oldAccessKeyId: OLD_KEY_ID,
    });
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([releaseInput]);
  });

  describe('ROTATION_STOPPED by a step that re-checked before acting', () => {
    const stoppedBy = (name: string, errorMessage: string, over: Partial<NotifyInput['state']> = {}) => ({
      ...stateWithNewKey(),
      ...over,
      error: { Error: name, Cause: JSON.stringify({ errorType: name, errorMessage }) },
    });

    it('an exemption before the deactivation: both keys stay, and a new rotation resumes', async () => {
      // Act
      const outcome = await notify(deps(), {
        events: ['ROTATION_STOPPED'],
        state: stoppedBy(
          'UserExempt',
          `"${USER}" is exempt: freeze; stopped before deactivating ${OLD_KEY_ID}`,
        ),
      });

      // Assess
      expect(outcome).toEqual({
        status: 'STOPPED',
        reason: 'UserExempt',
        message:
          `"${USER}" is exempt: freeze; stopped before deactivating ${OLD_KEY_ID}. Both keys stay active and ` +
          `the secret holds the new key ${NEW_KEY_ID}; once rekey may rotate the user again, start the rotation ` +
          `of this user again: it resumes with ${NEW_KEY_ID} and creates no key`,
      });
      expect(sentDetail()).toMatchObject({ status: 'STOPPED', reason: 'UserExempt' });
      expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([releaseInput]);
    });

    it('an exemption before the delete: the old key stays inactive', async () => {
      const outcome = await notify(deps(), {
        events: ['ROTATION_STOPPED'],
        state: stoppedBy(
          'UserOutOfScope',
          `"${USER}" moved; stopped before deleting ${OLD_KEY_ID}, which is kept`,
          {
            deactivation: { deactivatedAt: daysAgo(7).toISOString() },
          },
        ),
      });

      expect(outcome).toMatchObject({
        reason: 'UserOutOfScope',
        message: expect.stringContaining(`The old key ${OLD_KEY_ID} stays inactive (not deleted)`),
      });
    });

    it('before the create: nothing was changed', async () => {
      const { newKey: _none, ...planned } = stateWithNewKey();
      const outcome = await notify(deps(), {
        events: ['ROTATION_STOPPED'],
        state: { ...planned, error: { Error: 'UserExempt', Cause: '{"errorMessage":"exempt"}' } },
      });

      expect(outcome).toMatchObject({
        reason: 'UserExempt',
        message: expect.stringContaining('exempt. Nothing was changed'),
      });
    });

    it("the deactivate re-check's OldKeyStillInUse keeps its own message, which says what to do", async () => {
      const message = `old key ${OLD_KEY_ID} was used ... ${STILL_IN_USE_ADVICE}`;
      const outcome = await notify(deps(), {
        events: ['ROTATION_STOPPED'],
        state: stoppedBy('OldKeyStillInUse', message),
      });

      expect(outcome).toEqual({ status: 'STOPPED', reason: 'OldKeyStillInUse', message });
    });
  });

  it('ROTATION_STOPPED by the plan carries its stop reason and message', async () => {
    // Prepare
    const state = {
      ...stateWithNewKey(),
      action: 'STOP' as const,
      stopReason: 'TwoActiveKeys' as const,
      alert: true,
      message: `"${USER}" has two active access keys`,
    };

    // Act
    const outcome = await notify(deps(), { events: ['ROTATION_STOPPED'], state });

    // Assess
    expect(outcome).toEqual({
      status: 'STOPPED',
      reason: 'TwoActiveKeys',
      message: `"${USER}" has two active access keys`,
    });
    expect(sentDetail()).toMatchObject({ reason: 'TwoActiveKeys', status: 'STOPPED' });
  });

  it('ROTATION_FAILED uses the errorMessage of a Lambda Cause, never its stack trace', async () => {
    // Prepare
    const cause = JSON.stringify({
      errorType: 'NewKeyNotWorking',
      errorMessage: `new key ${NEW_KEY_ID} did not authenticate`,
      trace: ['NewKeyNotWorking: at verifyNewKey (/var/task/index.mjs:1:2)'],
    });
    const state = { ...stateWithNewKey(), error: { Error: 'NewKeyNotWorking', Cause: cause } };

    // Act
    const outcome = await notify(deps(), { events: ['ROTATION_FAILED'], state });

    // Assess
    expect(outcome).toEqual({
      status: 'FAILED',
      reason: 'NewKeyNotWorking',
      message: `rotation of "${USER}" failed: NewKeyNotWorking: new key ${NEW_KEY_ID} did not authenticate`,
    });
    expect(sentMessage()).not.toContain('/var/task');
    expect(JSON.stringify(sentDetail())).not.toContain('/var/task');
  });

  it('ROLLED_BACK says the old key is active again and why', async () => {
    // Prepare
    const state = {
      ...stateWithNewKey(),
      error: { Error: 'RotationVerificationFailed', Cause: 'the old key was used' },
    };

    // Act & Assess
    await expect(notify(deps(), { events: ['ROLLED_BACK'], state })).resolves.toEqual({
      status: 'ROLLED_BACK',
      reason: 'RotationVerificationFailed',
      message:
        `rotation of "${USER}" was rolled back: the old key ${OLD_KEY_ID} is active again. ` +
        'RotationVerificationFailed: the old key was used',
    });
  });

  it('a failure right after planning (raw request state) is published but releases no lock', async () => {
    // Prepare
    const state = { userName: USER, error: { Error: 'InvalidInput', Cause: 'bad request' } };

    // Act
    await notify(deps(), { events: ['ROTATION_FAILED'], state });

    // Assess
    expect(ebMock).toHaveReceivedCommandWith(PutEventsCommand, {
      Entries: [expect.objectContaining({ Resources: [], DetailType: 'Access Key Rotation Failed' })],
    });
    expect(ddbMock.calls()).toHaveLength(0);
  });

  it('keeps the SNS subject under 100 characters for the longest user names', async () => {
    // Prepare
    const userName = 'u'.repeat(64);

    // Act
    await notify(deps(), { events: ['OLD_KEY_STILL_IN_USE'], state: { ...stillInUse(), userName } });

    // Assess
    const subject =
      snsMock.commandCalls(PublishBatchCommand)[0]?.args[0].input.PublishBatchRequestEntries?.[0]?.Subject ??
      '';
    expect(subject.length).toBeLessThan(100);
    expect(subject.startsWith('[rekey] Old Access Key Still In Use: uuu')).toBe(true);
  });

  it('names an unknown user when the state has none', async () => {
    // Act
    await notify(deps(), { events: ['ROTATION_FAILED'], state: {} });

    // Assess
    expect(snsMock).toHaveReceivedCommandWith(PublishBatchCommand, {
      PublishBatchRequestEntries: [
        expect.objectContaining({ Subject: '[rekey] Access Key Rotation Failed: unknown user' }),
      ],
    });
  });
});

describe('detailOf', () => {
  it('has exactly the allow-listed fields for every event', () => {
    for (const event of Object.keys(NOTIFICATION_EVENTS) as NotificationEvent[]) {
      expect(Object.keys(detailOf(event, stillInUse()))).toEqual(DETAIL_FIELDS);
    }
  });

  it('prefers the adoption check date over the plan-time last use of the old key', () => {
    expect(detailOf('KEY_DEACTIVATED', stillInUse()).oldKeyLastUsedDate).toBe(daysAgo(1).toISOString());
    expect(detailOf('KEY_DEACTIVATED', stateWithNewKey()).oldKeyLastUsedDate).toBe(
      OLD_KEY_LAST_USED.toISOString(),
    );
  });
});

describe('causeMessage', () => {
  it('returns the errorMessage of a Lambda error Cause', () => {
    expect(causeMessage(JSON.stringify({ errorType: 'X', errorMessage: 'boom', trace: ['t'] }))).toBe('boom');
  });

  it('returns a non-JSON cause truncated to 500 characters', () => {
    expect(causeMessage('c'.repeat(600))).toBe('c'.repeat(500));
  });

  it('returns JSON without errorMessage as (truncated) text', () => {
    expect(causeMessage('{"a":1}')).toBe('{"a":1}');
  });

  it('returns undefined for no cause', () => {
    expect(causeMessage(undefined)).toBeUndefined();
    expect(causeMessage('')).toBeUndefined();
  });
});

describe('notify: a service-specific credential', () => {
  const deps = () => ({
    sns,
    eventBridge,
    lock: { dynamodb, table: LOCK_TABLE },
    clock: fakeClock(),
    env: { REKEY_TOPIC_ARN: TOPIC_ARN, REKEY_EVENT_BUS_NAME: 'default', REKEY_HUB_ACCOUNT_ID: ACCOUNT },
  });

  it('the "ready" event keeps its detail-type, names the service and the credential ids, and says what was not verified', async () => {
    snsMock.on(PublishBatchCommand).resolves({});
    ebMock.on(PutEventsCommand).resolves({ FailedEntryCount: 0 });

    await notify(deps(), { events: ['NEW_KEY_READY'], state: serviceStateWithNewKey() });

    const put = inputsOf(ebMock.commandCalls(PutEventsCommand))[0]?.Entries?.[0];
    expect(put?.DetailType).toBe('New Access Key Ready');
    const detail = JSON.parse(put?.Detail ?? '{}');
    expect(detail).toMatchObject({
      userName: USER,
      serviceName: SERVICE,
      oldAccessKeyId: null,
      newAccessKeyId: null,
      oldServiceSpecificCredentialId: OLD_ID,
      newServiceSpecificCredentialId: NEW_ID,
      serviceUserName: SERVICE_USER,
      lastUseData: 'none',
    });
    expect(detail.lastUseNote).toMatch(/no last-used data.*adoption wait/);
    const published = inputsOf(snsMock.commandCalls(PublishBatchCommand))[0]?.PublishBatchRequestEntries?.[0];
    expect(published?.Subject).toBe(`[rekey] New Access Key Ready: ${USER} (${SERVICE})`);
    expect(published?.Message).toContain(`A new service-specific credential for ${SERVICE}, ${NEW_ID}`);
    expect(published?.Message).toContain("the password itself is proven by the consumer's first connection");
    expect(published?.Message).not.toMatch(/access key/);
    expect(JSON.stringify([put, published])).not.toContain(PASSWORD);
  });

  it('releases the user-and-service lock on a terminal event', async () => {
    snsMock.on(PublishBatchCommand).resolves({});
    ebMock.on(PutEventsCommand).resolves({ FailedEntryCount: 0 });
    ddbMock.on(UpdateItemCommand).resolves({});

    const outcome = await notify(deps(), { events: ['ROTATION_COMPLETED'], state: serviceStateWithNewKey() });

    expect(outcome).toEqual({
      status: 'ROTATED',
      message: `rotated the service-specific credential for ${SERVICE} of "${USER}": ${OLD_ID} was replaced by ${NEW_ID}`,
    });
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))[0]?.Key).toEqual({
      userName: { S: `${USER}/${SERVICE}` },
    });
  });

  it('an access-key detail carries none of the service fields', () => {
    const { serviceName: _s, ...keyState } = serviceStateWithNewKey();
    expect(Object.keys(detailOf('NEW_KEY_READY', keyState))).not.toContain('serviceName');
    expect(detailOf('NEW_KEY_READY', keyState).newAccessKeyId).toBe(NEW_ID);
  });
});

describe('the call budget its Lambda timeout is derived from', () => {
  it('notify: its longest path (a terminal event) makes exactly its hub-path calls (STEPS.notify.calls less memberAccountCalls)', async () => {
    await notify(deps(), { events: ['ROTATION_STOPPED'], state: stillInUse() });

    expect(callOrder(snsMock, ebMock, ddbMock)).toEqual([
      'PublishBatch',
      'PutEvents',
      'UpdateItem(REMOVE #owner, acquiredAt SET expiresAt = :exp)',
    ]);
    expect(callOrder(snsMock, ebMock, ddbMock)).toHaveLength(hubPathCalls('notify'));
  });
});
