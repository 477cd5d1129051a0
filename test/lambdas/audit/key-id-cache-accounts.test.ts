/**
 * The key-id cache per account (lambdas/audit/key-id-cache.ts, memberAccountId): the organization
 * audit keeps a member account's entries under `<accountId>/<userName>`, so that an entry of one
 * account is never used for a namesake user of another, and the hub's stay where they were.
 */
import {
  type AttributeValue,
  BatchGetItemCommand,
  BatchWriteItemCommand,
  DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { DynamoKeyIdCache, keyRefId } from '../../../lambdas/audit/key-id-cache.ts';
import { fakeClock } from '../../support/lambda-fixtures.ts';
import { ago } from './helpers.ts';

const TABLE = 'rekey-key-ids';
const dynamodb = new DynamoDBClient({ region: 'us-east-1' });
const ddbMock = mockClient(dynamodb);
let table: Map<string, Record<string, AttributeValue>>;

beforeEach(() => {
  ddbMock.reset();
  table = new Map();
  ddbMock.on(BatchGetItemCommand).callsFake((input) => {
    const keys = input.RequestItems[TABLE].Keys as Array<Record<string, AttributeValue>>;
    const items = keys
      .map((k) => table.get(`${k.userName?.S}#${k.keyCreated?.S}`))
      .filter((i): i is Record<string, AttributeValue> => i !== undefined);
    return { Responses: { [TABLE]: items } };
  });
  ddbMock.on(BatchWriteItemCommand).callsFake((input) => {
    for (const r of input.RequestItems[TABLE]) {
      const item = r.PutRequest.Item as Record<string, AttributeValue>;
      table.set(`${item.userName?.S}#${item.keyCreated?.S}`, item);
    }
    return { UnprocessedItems: {} };
  });
});

const cache = (memberAccountId?: string) =>
  new DynamoKeyIdCache({
    dynamodb,
    tableName: TABLE,
    clock: fakeClock(),
    ...(memberAccountId ? { memberAccountId } : {}),
  });

const CREATED = ago(100);
const ref = { userName: 'alice', created: CREATED };
const entry = { ...ref, accessKeyId: 'AKIAMEMBERALICE00001', createDate: CREATED };

describe('the key-id cache per account', () => {
  it("stores a member's entry under its account and finds it there only", async () => {
    // Act
    await cache('111122223333').store([entry]);
    const same = await cache('111122223333').lookup([ref]);
    const other = await cache('444455556666').lookup([ref]);
    const hub = await cache().lookup([ref]);

    // Assert
    expect([...table.keys()]).toEqual([`111122223333/alice#${CREATED.toISOString()}`]);
    expect(same.get(keyRefId(ref))?.accessKeyId).toBe('AKIAMEMBERALICE00001');
    expect(other.size).toBe(0);
    expect(hub.size).toBe(0);
  });

  it("keeps the hub's entries under the bare user name, out of every member's reach", async () => {
    // Act
    await cache().store([{ ...entry, accessKeyId: 'AKIAHUBALICE00000001' }]);
    const hub = await cache().lookup([ref]);
    const member = await cache('111122223333').lookup([ref]);

    // Assert
    expect([...table.keys()]).toEqual([`alice#${CREATED.toISOString()}`]);
    expect(hub.get(keyRefId(ref))?.accessKeyId).toBe('AKIAHUBALICE00000001');
    expect(member.size).toBe(0);
  });
});
