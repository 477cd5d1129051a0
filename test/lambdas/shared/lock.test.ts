import { ConditionalCheckFailedException, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RotationInProgress } from '../../../contract/errors.ts';
import { dynamodb } from '../../../lambdas/shared/clients.ts';
import {
  acquireLock,
  clearCreating,
  markCreating,
  readLock,
  recordCreatedKey,
  releaseLock,
} from '../../../lambdas/shared/lock.ts';
import {
  awsError,
  EXECUTION_ID,
  inputsOf,
  LOCK_TABLE,
  NEW_KEY_ID,
  NOW,
  OLD_KEY_ID,
  OTHER_EXECUTION_ID,
  rejectionOf,
  SECRET_NAME,
  silenceLogs,
  USER,
} from '../../support/lambda-fixtures.ts';

const ddbMock = mockClient(dynamodb);
const deps = { dynamodb, table: LOCK_TABLE };
const nowEpoch = Math.floor(NOW.getTime() / 1000);
const TOKEN = 'a'.repeat(64);
const CREATED = {
  accessKeyId: NEW_KEY_ID,
  versionId: TOKEN,
  replacedKeyId: OLD_KEY_ID,
  secretName: SECRET_NAME,
};

const conditionFailed = () =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });

beforeAll(silenceLogs);
beforeEach(() => {
  ddbMock.reset();
});

describe('readLock', () => {
  it('reads the item consistently under the lower-cased user name and parses the journal', async () => {
    // Prepare
    ddbMock.on(GetItemCommand).resolves({
      Item: {
        userName: { S: 'alice' },
        owner: { S: EXECUTION_ID },
        expiresAt: { N: String(nowEpoch + 100) },
        creatingSince: { S: '2026-03-01T11:00:00.000Z' },
        createdKeyId: { S: NEW_KEY_ID },
        createdVersionId: { S: TOKEN },
        createdBy: { S: EXECUTION_ID },
        replacedKeyId: { S: OLD_KEY_ID },
        secretName: { S: SECRET_NAME },
      },
    });

    // Act
    const lock = await readLock(deps, 'Alice');

    // Assess
    expect(lock).toEqual({
      owner: EXECUTION_ID,
      expiresAt: nowEpoch + 100,
      creatingSince: new Date('2026-03-01T11:00:00.000Z'),
      createdKeyId: NEW_KEY_ID,
      createdVersionId: TOKEN,
      createdBy: EXECUTION_ID,
      replacedKeyId: OLD_KEY_ID,
      secretName: SECRET_NAME,
    });
    expect(inputsOf(ddbMock.commandCalls(GetItemCommand))).toEqual([
      { TableName: LOCK_TABLE, Key: { userName: { S: 'alice' } }, ConsistentRead: true },
    ]);
  });

  it('returns null when there is no item', async () => {
    // Prepare
    ddbMock.on(GetItemCommand).resolves({});

    // Act & Assess
    await expect(readLock(deps, USER)).resolves.toBeNull();
  });

  it('reads a released item (no owner) with null journal fields', async () => {
    // Prepare
    ddbMock.on(GetItemCommand).resolves({ Item: { userName: { S: 'alice' }, expiresAt: { N: '5' } } });

    // Act & Assess
    await expect(readLock(deps, USER)).resolves.toEqual({
      owner: null,
      expiresAt: 5,
      creatingSince: null,
      createdKeyId: null,
      createdVersionId: null,
      createdBy: null,
      replacedKeyId: null,
      secretName: null,
    });
  });
});

describe('acquireLock', () => {
  it('takes the lock with a conditional write and returns the stored item', async () => {
    // Prepare
    ddbMock.on(UpdateItemCommand).resolves({
      Attributes: {
        userName: { S: 'alice' },
        owner: { S: EXECUTION_ID },
        expiresAt: { N: String(nowEpoch + 3600) },
        creatingSince: { S: '2026-02-01T00:00:00.000Z' },
      },
    });

    // Act
    const result = await acquireLock(deps, 'Alice', EXECUTION_ID, NOW, 3600);

    // Assess
    expect(result).toEqual({
      acquired: true,
      lock: {
        owner: EXECUTION_ID,
        expiresAt: nowEpoch + 3600,
        creatingSince: new Date('2026-02-01T00:00:00.000Z'),
        createdKeyId: null,
        createdVersionId: null,
        createdBy: null,
        replacedKeyId: null,
        secretName: null,
      },
    });
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([
      {
        TableName: LOCK_TABLE,
        Key: { userName: { S: 'alice' } },
        UpdateExpression: 'SET #owner = :owner, acquiredAt = :now, expiresAt = :exp',
        ConditionExpression: 'attribute_not_exists(#owner) OR #owner = :owner OR expiresAt < :nowEpoch',
        ExpressionAttributeNames: { '#owner': 'owner' },
        ExpressionAttributeValues: {
          ':owner': { S: EXECUTION_ID },
          ':now': { S: NOW.toISOString() },
          ':exp': { N: String(nowEpoch + 3600) },
          ':nowEpoch': { N: String(nowEpoch) },
        },
        ReturnValues: 'ALL_NEW',
      },
    ]);
    expect(ddbMock).not.toHaveReceivedCommand(GetItemCommand);
  });

  it('on ConditionalCheckFailed reports the current owner instead of taking the lock', async () => {
    // Prepare
    ddbMock.on(UpdateItemCommand).rejects(conditionFailed());
    ddbMock.on(GetItemCommand).resolves({
      Item: { owner: { S: OTHER_EXECUTION_ID }, expiresAt: { N: String(nowEpoch + 999) } },
    });

    // Act
    const result = await acquireLock(deps, USER, EXECUTION_ID, NOW, 3600);

    // Assess
    expect(result).toEqual({ acquired: false, owner: OTHER_EXECUTION_ID });
    expect(inputsOf(ddbMock.commandCalls(GetItemCommand))).toEqual([
      { TableName: LOCK_TABLE, Key: { userName: { S: 'alice' } }, ConsistentRead: true },
    ]);
  });

  it('names an unknown execution when the holder vanished between the write and the read', async () => {
    // Prepare
    ddbMock.on(UpdateItemCommand).rejects(conditionFailed());
    ddbMock.on(GetItemCommand).resolves({});

    // Act & Assess
    await expect(acquireLock(deps, USER, EXECUTION_ID, NOW, 3600)).resolves.toEqual({
      acquired: false,
      owner: 'unknown execution',
    });
  });

  it('rethrows any other DynamoDB error', async () => {
    // Prepare
    const throttled = awsError('ProvisionedThroughputExceededException');
    ddbMock.on(UpdateItemCommand).rejects(throttled);

    // Act & Assess
    await expect(acquireLock(deps, USER, EXECUTION_ID, NOW, 3600)).rejects.toBe(throttled);
    expect(ddbMock).not.toHaveReceivedCommand(GetItemCommand);
  });

  it('refuses to report success when the write returns no item', async () => {
    // Prepare
    ddbMock.on(UpdateItemCommand).resolves({});

    // Act & Assess
    await expect(acquireLock(deps, USER, EXECUTION_ID, NOW, 3600)).rejects.toThrow(
      'lock write returned no item',
    );
  });
});

describe('releaseLock', () => {
  it('removes the owner only if the caller owns it, keeping the journal for 90 days', async () => {
    // Prepare
    ddbMock.on(UpdateItemCommand).resolves({});

    // Act
    const released = await releaseLock(deps, 'ALICE', EXECUTION_ID, NOW);

    // Assess
    expect(released).toBe(true);
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([
      {
        TableName: LOCK_TABLE,
        Key: { userName: { S: 'alice' } },
        UpdateExpression: 'REMOVE #owner, acquiredAt SET expiresAt = :exp',
        ConditionExpression: '#owner = :owner',
        ExpressionAttributeNames: { '#owner': 'owner' },
        ExpressionAttributeValues: {
          ':owner': { S: EXECUTION_ID },
          ':exp': { N: String(nowEpoch + 90 * 86400) },
        },
      },
    ]);
  });

  it('returns false (and frees nothing) when another execution holds the lock', async () => {
    // Prepare
    ddbMock.on(UpdateItemCommand).rejects(conditionFailed());

    // Act & Assess
    await expect(releaseLock(deps, USER, OTHER_EXECUTION_ID, NOW)).resolves.toBe(false);
    expect(ddbMock).toHaveReceivedCommandTimes(UpdateItemCommand, 1);
  });

  it('rethrows any other DynamoDB error', async () => {
    // Prepare
    const failure = awsError('InternalServerError');
    ddbMock.on(UpdateItemCommand).rejects(failure);

    // Act & Assess
    await expect(releaseLock(deps, USER, EXECUTION_ID, NOW)).rejects.toBe(failure);
  });
});

describe('journal writes', () => {
  const ownerCondition = {
    TableName: LOCK_TABLE,
    Key: { userName: { S: 'alice' } },
    ConditionExpression: '#owner = :owner',
    ExpressionAttributeNames: { '#owner': 'owner' },
  };

  it('markCreating sets creatingSince and clears the previous created key, owner only', async () => {
    // Prepare
    ddbMock.on(UpdateItemCommand).resolves({});

    // Act
    await markCreating(deps, USER, EXECUTION_ID, NOW);

    // Assess
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([
      {
        ...ownerCondition,
        UpdateExpression:
          'SET creatingSince = :since REMOVE createdKeyId, createdVersionId, createdBy, replacedKeyId, secretName',
        ExpressionAttributeValues: { ':owner': { S: EXECUTION_ID }, ':since': { S: NOW.toISOString() } },
      },
    ]);
  });

  it('recordCreatedKey records the key, its secret version, its creator and the key it replaces, owner only', async () => {
    // Prepare
    ddbMock.on(UpdateItemCommand).resolves({});

    // Act
    await recordCreatedKey(deps, USER, EXECUTION_ID, CREATED);

    // Assess: the creator is the owner the condition checks, so only the lock's owner can claim a key.
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([
      {
        ...ownerCondition,
        UpdateExpression:
          'SET createdKeyId = :k, createdVersionId = :v, createdBy = :owner, replacedKeyId = :r, secretName = :s',
        ExpressionAttributeValues: {
          ':owner': { S: EXECUTION_ID },
          ':k': { S: NEW_KEY_ID },
          ':v': { S: TOKEN },
          ':r': { S: OLD_KEY_ID },
          ':s': { S: SECRET_NAME },
        },
      },
    ]);
  });

  it('clearCreating removes creatingSince, owner only', async () => {
    // Prepare
    ddbMock.on(UpdateItemCommand).resolves({});

    // Act
    await clearCreating(deps, USER, EXECUTION_ID);

    // Assess
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([
      {
        ...ownerCondition,
        UpdateExpression: 'REMOVE creatingSince',
        ExpressionAttributeValues: { ':owner': { S: EXECUTION_ID } },
      },
    ]);
  });

  it('a journal write by a non-owner throws RotationInProgress naming the owner', async () => {
    // Prepare
    ddbMock.on(UpdateItemCommand).rejects(conditionFailed());
    ddbMock
      .on(GetItemCommand)
      .resolves({ Item: { owner: { S: OTHER_EXECUTION_ID }, expiresAt: { N: '1' } } });

    // Act
    const error = await rejectionOf(markCreating(deps, USER, EXECUTION_ID, NOW));

    // Assess
    expect(error).toBeInstanceOf(RotationInProgress);
    expect(error).toMatchObject({
      name: 'RotationInProgress',
      message: `another rotation of "${USER}" is in progress (${OTHER_EXECUTION_ID})`,
    });
  });

  it('a journal write after the lock vanished throws RotationInProgress ("lock lost")', async () => {
    // Prepare
    ddbMock.on(UpdateItemCommand).rejects(conditionFailed());
    ddbMock.on(GetItemCommand).resolves({});

    // Act & Assess
    await expect(clearCreating(deps, USER, EXECUTION_ID)).rejects.toMatchObject({
      name: 'RotationInProgress',
      message: `another rotation of "${USER}" is in progress (lock lost)`,
    });
  });

  it('a journal write rethrows other DynamoDB errors unchanged', async () => {
    // Prepare
    const failure = awsError('InternalServerError');
    ddbMock.on(UpdateItemCommand).rejects(failure);

    // Act & Assess
    await expect(recordCreatedKey(deps, USER, EXECUTION_ID, CREATED)).rejects.toBe(failure);
    expect(ddbMock).not.toHaveReceivedCommand(GetItemCommand);
  });
});
