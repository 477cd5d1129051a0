import { type AttributeValue, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { DeleteAccessKeyCommand } from '@aws-sdk/client-iam';
import { DescribeSecretCommand, UpdateSecretVersionStageCommand } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { hubPathCalls } from '../../../../contract/functions.ts';
import { CleanupResult } from '../../../../contract/schemas.ts';
import { type CleanupDeps, cleanUp } from '../../../../lambdas/rotation/cleanup/cleanup.ts';
import { dynamodb, iam, secretsManager } from '../../../../lambdas/shared/clients.ts';
import {
  awsError,
  callOrder,
  EXECUTION_ID,
  fakeClock,
  inputsOf,
  LOCK_TABLE,
  mockKeys,
  NEW_KEY_CREATED,
  NEW_KEY_ID,
  NOW,
  OLD_KEY_CREATED,
  OLD_KEY_ID,
  OTHER_EXECUTION_ID,
  SECRET_ARN,
  SECRET_NAME,
  silenceLogs,
  TOKEN,
  USER,
} from '../../../support/lambda-fixtures.ts';

const iamMock = mockClient(iam);
const ddbMock = mockClient(dynamodb);
const smMock = mockClient(secretsManager);
const nowEpoch = Math.floor(NOW.getTime() / 1000);
const RELEASE = 'UpdateItem(REMOVE #owner, acquiredAt SET expiresAt = :exp)';

let clock: ReturnType<typeof fakeClock>;
const deps = (settle = 120): CleanupDeps => ({
  iam,
  secretsManager,
  lock: { dynamodb, table: LOCK_TABLE },
  clock,
  env: { REKEY_SECRET_PREFIX: 'rekey/', REKEY_CLEANUP_SETTLE_SECONDS: settle },
});
const event = (status: 'FAILED' | 'ABORTED' | 'TIMED_OUT' = 'ABORTED', executionArn = EXECUTION_ID) => ({
  executionArn,
  status,
  input: JSON.stringify({ userName: USER, reason: 'quarterly' }),
});

/** The lock of `owner` whose journal records NEW_KEY_ID, made by `createdBy` to replace OLD_KEY_ID. */
function mockLock(
  owner: string | null,
  createdBy = EXECUTION_ID,
  extra: Record<string, AttributeValue> = {},
) {
  ddbMock.on(GetItemCommand).resolves({
    Item: {
      userName: { S: USER },
      ...(owner ? { owner: { S: owner } } : {}),
      expiresAt: { N: String(nowEpoch + 3600) },
      createdKeyId: { S: NEW_KEY_ID },
      createdVersionId: { S: TOKEN },
      createdBy: { S: createdBy },
      replacedKeyId: { S: OLD_KEY_ID },
      secretName: { S: SECRET_NAME },
      ...extra,
    },
  });
  ddbMock.on(UpdateItemCommand).resolves({});
}
const secretWith = (stages: string[]) =>
  smMock
    .on(DescribeSecretCommand)
    .resolves({ ARN: SECRET_ARN, VersionIdsToStages: { PREVIOUS: ['AWSCURRENT'], [TOKEN]: stages } });

beforeAll(silenceLogs);
beforeEach(() => {
  for (const m of [iamMock, ddbMock, smMock]) m.reset();
  iamMock.on(DeleteAccessKeyCommand).resolves({});
  smMock.on(UpdateSecretVersionStageCommand).resolves({});
  clock = fakeClock();
  mockKeys(iamMock, [
    { id: OLD_KEY_ID, created: OLD_KEY_CREATED },
    { id: NEW_KEY_ID, created: NEW_KEY_CREATED, lastUsed: NEW_KEY_CREATED },
  ]);
});

describe('cleanUp', () => {
  it("ABORTED for the lock's owner: removes the key it never handed out (and its AWSPENDING label), releases the lock", async () => {
    // Prepare
    mockLock(EXECUTION_ID);
    secretWith(['AWSPENDING']);

    // Act
    const result = await cleanUp(deps(), event());

    // Assess
    expect(CleanupResult.parse(result)).toEqual({
      acted: true,
      releasedLock: true,
      removedKeyIds: [NEW_KEY_ID],
      keptKeyId: null,
      message: `ABORTED: removed ${NEW_KEY_ID}, made by this execution and never handed out; released the lock of "${USER}"`,
    });
    expect(inputsOf(iamMock.commandCalls(DeleteAccessKeyCommand))).toEqual([
      { UserName: USER, AccessKeyId: NEW_KEY_ID },
    ]);
    expect(inputsOf(smMock.commandCalls(UpdateSecretVersionStageCommand))).toEqual([
      { SecretId: SECRET_NAME, VersionStage: 'AWSPENDING', RemoveFromVersionId: TOKEN },
    ]);
    // Deleted first, the lock released last: a cleanup that fails half-way keeps the lock to retry.
    const order = callOrder(iamMock, ddbMock, smMock);
    expect(order.indexOf('DeleteAccessKey')).toBeLessThan(order.indexOf(RELEASE));
  });

  it('waits out a step of the aborted execution that may still be running before it looks', async () => {
    // Prepare
    mockLock(EXECUTION_ID);
    secretWith(['AWSPENDING']);

    // Act
    await cleanUp(deps(190), event('TIMED_OUT'));

    // Assess
    expect(clock.sleep.mock.calls).toEqual([[190_000]]);
    const order = callOrder(ddbMock);
    expect(order[0]).toBe('GetItem');
  });

  it('does not wait after a failure: the failing step is what ended it', async () => {
    mockLock(EXECUTION_ID);
    secretWith(['AWSPENDING']);

    await cleanUp(deps(190), event('FAILED'));

    expect(clock.sleep).not.toHaveBeenCalled();
  });

  it('keeps a key it handed out (AWSCURRENT): a new rotation resumes with it', async () => {
    // Prepare
    mockLock(EXECUTION_ID);
    secretWith(['AWSCURRENT']);

    // Act
    const result = await cleanUp(deps(), event());

    // Assess
    expect(result).toMatchObject({
      acted: true,
      releasedLock: true,
      removedKeyIds: [],
      keptKeyId: NEW_KEY_ID,
    });
    expect(result.message).toContain(`kept ${NEW_KEY_ID}, handed out (AWSCURRENT)`);
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
    expect(smMock).not.toHaveReceivedCommand(UpdateSecretVersionStageCommand);
  });

  it('keeps a key that was AWSCURRENT once (AWSPREVIOUS now)', async () => {
    mockLock(EXECUTION_ID);
    secretWith(['AWSPREVIOUS']);

    const result = await cleanUp(deps(), event());

    expect(result.removedKeyIds).toEqual([]);
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  });

  it('after a newer execution took the lock: changes nothing', async () => {
    // Prepare
    mockLock(OTHER_EXECUTION_ID);
    secretWith(['AWSPENDING']);

    // Act
    const result = await cleanUp(deps(), event());

    // Assess
    expect(result).toMatchObject({ acted: false, releasedLock: false, removedKeyIds: [] });
    expect(result.message).toContain(`held by ${OTHER_EXECUTION_ID}`);
    expect(callOrder(iamMock, ddbMock, smMock)).toEqual(['GetItem']);
  });

  it('with the lock already released: changes nothing', async () => {
    mockLock(null);

    await expect(cleanUp(deps(), event('FAILED'))).resolves.toMatchObject({ acted: false });
    expect(callOrder(iamMock, ddbMock, smMock)).toEqual(['GetItem']);
  });

  it('never removes a key another execution created, even while holding the lock', async () => {
    // Prepare: this execution holds the lock; the journal's key is another one's.
    mockLock(EXECUTION_ID, OTHER_EXECUTION_ID);
    secretWith(['AWSPENDING']);

    // Act
    const result = await cleanUp(deps(), event());

    // Assess
    expect(result).toMatchObject({ acted: true, releasedLock: true, removedKeyIds: [] });
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  });

  it('removes a key its create step made but crashed before recording (inside the create window, never used)', async () => {
    // Prepare: the journal marked the intent; no key is recorded yet.
    const creatingSince = new Date(NOW.getTime() - 60_000);
    ddbMock.on(GetItemCommand).resolves({
      Item: {
        userName: { S: USER },
        owner: { S: EXECUTION_ID },
        expiresAt: { N: String(nowEpoch + 3600) },
        creatingSince: { S: creatingSince.toISOString() },
      },
    });
    ddbMock.on(UpdateItemCommand).resolves({});
    mockKeys(iamMock, [
      { id: OLD_KEY_ID, created: OLD_KEY_CREATED, lastUsed: NOW },
      { id: NEW_KEY_ID, created: new Date(creatingSince.getTime() + 1000) },
    ]);

    // Act
    const result = await cleanUp(deps(), event('FAILED'));

    // Assess
    expect(result.removedKeyIds).toEqual([NEW_KEY_ID]);
    expect(inputsOf(iamMock.commandCalls(DeleteAccessKeyCommand))).toEqual([
      { UserName: USER, AccessKeyId: NEW_KEY_ID },
    ]);
  });

  it.each([
    ['input that is not JSON', '{not json'],
    ['input that names no valid user', JSON.stringify({ userName: '' })],
    ['no input at all', null],
  ])('does nothing for %s (a rejected request took no lock)', async (_what, input) => {
    const result = await cleanUp(deps(), { executionArn: EXECUTION_ID, status: 'FAILED', input });

    expect(result).toMatchObject({ acted: false });
    expect(ddbMock.calls()).toHaveLength(0);
  });
});

describe('the call budget its Lambda timeout is derived from', () => {
  it('its longest path makes exactly its hub-path calls (STEPS.cleanup.calls less memberAccountCalls), the settle wait aside', async () => {
    // Prepare: the journal's key never handed out, its label move applied but its answer lost (the
    // retry refused, the labels read again); beside it a key the crashed create made before
    // recording it (the replaced key deleted by hand meanwhile: a user holds two keys at most).
    const creatingSince = new Date(NOW.getTime() - 5 * 60_000);
    const crashed = 'AKIACRASHEDKEY000005';
    mockLock(EXECUTION_ID, EXECUTION_ID, { creatingSince: { S: creatingSince.toISOString() } });
    mockKeys(iamMock, [
      { id: NEW_KEY_ID, created: new Date(creatingSince.getTime() + 1_000) },
      { id: crashed, created: new Date(creatingSince.getTime() + 2_000) },
    ]);
    smMock
      .on(DescribeSecretCommand)
      .resolvesOnce({
        ARN: SECRET_ARN,
        VersionIdsToStages: { PREVIOUS: ['AWSCURRENT'], [TOKEN]: ['AWSPENDING'] },
      })
      .resolves({ ARN: SECRET_ARN, VersionIdsToStages: { PREVIOUS: ['AWSCURRENT'], [TOKEN]: [] } });
    smMock.on(UpdateSecretVersionStageCommand).rejects(awsError('InvalidParameterException'));

    // Act
    const result = await cleanUp(deps(), event('ABORTED'));

    // Assess
    expect(result).toMatchObject({ acted: true, releasedLock: true, removedKeyIds: [NEW_KEY_ID, crashed] });
    expect(callOrder(iamMock, ddbMock, smMock)).toEqual([
      'GetItem',
      'ListAccessKeys',
      'DescribeSecret',
      'DeleteAccessKey',
      'UpdateSecretVersionStage',
      'DescribeSecret',
      'GetAccessKeyLastUsed',
      'DeleteAccessKey',
      RELEASE,
    ]);
    expect(callOrder(iamMock, ddbMock, smMock)).toHaveLength(hubPathCalls('cleanup'));
  });
});
