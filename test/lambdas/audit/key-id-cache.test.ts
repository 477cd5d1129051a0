/**
 * The key-id cache (lambdas/audit/key-id-cache.ts) through resolveKeyIds (users.ts), against an
 * in-memory DynamoDB table behind a mocked client: a hit saves the ListAccessKeys, anything
 * doubtful (a new key, a wrong creation time, another user's entry, DynamoDB failing) falls back
 * to it, and the key id a finding carries is always the key IAM lists.
 */
import {
  type AttributeValue,
  BatchGetItemCommand,
  BatchWriteItemCommand,
  DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { IAMClient, ListAccessKeysCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { KEY_ID_CACHE_TTL_ATTRIBUTE } from '../../../contract/tables.ts';
import { CallCounter } from '../../../lambdas/audit/calls.ts';
import type { CredentialReportRow, ReportKey } from '../../../lambdas/audit/credential-report.ts';
import type { Finding } from '../../../lambdas/audit/findings.ts';
import { DynamoKeyIdCache, KEY_ID_CACHE_TTL_DAYS } from '../../../lambdas/audit/key-id-cache.ts';
import { resolveKeyIds } from '../../../lambdas/audit/users.ts';
import { awsError, fakeClock } from '../../support/lambda-fixtures.ts';
import { unresolvedFinding as finding } from './fixtures.ts';
import { ACCOUNT, ago, NOW } from './helpers.ts';

const TABLE = 'rekey-key-ids';
const iam = new IAMClient({ region: 'us-east-1' });
const iamMock = mockClient(iam);
const dynamodb = new DynamoDBClient({ region: 'us-east-1' });
const ddbMock = mockClient(dynamodb);
/** The table: `userName#keyCreated` -> item. */
let table: Map<string, Record<string, AttributeValue>>;

beforeEach(() => {
  iamMock.reset();
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

const OLD = ago(100);
const NEW = ago(5);
const ALICE_OLD = 'AKIAALICEOLD00000001';
const ALICE_NEW = 'AKIAALICENEW00000002';

function reportKey(slot: 1 | 2, created: Date | null, active = true): ReportKey {
  return {
    slot,
    active: created !== null && active,
    lastRotated: created,
    lastUsedDate: null,
    lastUsedRegion: null,
    lastUsedService: null,
  };
}

function row(user: string, key1: Date | null, key2: Date | null = null): CredentialReportRow {
  return {
    user,
    arn: `arn:aws:iam::${ACCOUNT}:user/${user}`,
    isRoot: false,
    userCreationTime: ago(400),
    keys: [reportKey(1, key1), reportKey(2, key2)],
  };
}

/** alice: an old key (slot 1, with the findings) and a new one (slot 2). */
const aliceKeys = (oldCreate = OLD) => ({
  AccessKeyMetadata: [
    { UserName: 'alice', AccessKeyId: ALICE_OLD, Status: 'Active' as const, CreateDate: oldCreate },
    { UserName: 'alice', AccessKeyId: ALICE_NEW, Status: 'Active' as const, CreateDate: NEW },
  ],
});
const FINDINGS = [
  finding({}),
  finding({ type: 'TWO_ACTIVE_KEYS', other: { keySlot: 2, accessKeyId: null, ageDays: 5 } }),
];
const ROWS = new Map([['alice', row('alice', OLD, NEW)]]);

async function resolve(rows = ROWS, findings = FINDINGS, log?: (m: string) => void) {
  const calls = new CallCounter();
  const cache = new DynamoKeyIdCache({
    dynamodb,
    tableName: TABLE,
    clock: fakeClock(NOW),
    ...(log ? { log } : {}),
  });
  const result = await resolveKeyIds({ iam, calls, cache, rows }, findings);
  return { ...result, calls, stats: cache.stats };
}

const ids = (findings: Finding[]) => findings.map((f) => [f.type, f.accessKeyId, f.other?.accessKeyId]);
const EXPECTED = [
  ['OLD_KEY', ALICE_OLD, undefined],
  ['TWO_ACTIVE_KEYS', ALICE_OLD, ALICE_NEW],
];

describe('the key-id cache', () => {
  it('a miss lists the keys and stores both of the report row, a hit then costs no IAM call', async () => {
    iamMock.on(ListAccessKeysCommand, { UserName: 'alice' }).resolves(aliceKeys());

    // Act: the cold run, then the warm one.
    const cold = await resolve();
    const warm = await resolve();

    // Assess: the same findings, the same ids, one ListAccessKeys in all.
    expect(ids(cold.findings)).toEqual(EXPECTED);
    expect(cold.calls.count('ListAccessKeys')).toBe(1);
    expect(cold.stats).toMatchObject({ hits: 0, misses: 1, written: 2, failures: 0 });
    expect(warm.findings).toEqual(cold.findings);
    expect(warm.stale).toEqual([]);
    expect(warm.calls.count('ListAccessKeys')).toBe(0);
    expect(warm.stats).toMatchObject({ hits: 1, misses: 0, written: 0, failures: 0 });
    expect(iamMock.commandCalls(ListAccessKeysCommand)).toHaveLength(1);
    const item = table.get(`alice#${OLD.toISOString()}`);
    expect(item).toEqual({
      userName: { S: 'alice' },
      keyCreated: { S: OLD.toISOString() },
      accessKeyId: { S: ALICE_OLD },
      createDate: { S: OLD.toISOString() },
      [KEY_ID_CACHE_TTL_ATTRIBUTE]: { N: String(NOW.getTime() / 1000 + KEY_ID_CACHE_TTL_DAYS * 86_400) },
    });
  });

  it('a key deleted and re-created (a new creation time in the report) misses and is listed', async () => {
    iamMock.on(ListAccessKeysCommand, { UserName: 'alice' }).resolves(aliceKeys());
    await resolve();
    // alice's old key was replaced: the report shows a key created 2 days ago in slot 1.
    const recreated = ago(2);
    iamMock.on(ListAccessKeysCommand, { UserName: 'alice' }).resolves({
      AccessKeyMetadata: [
        { UserName: 'alice', AccessKeyId: 'AKIAALICERECREATED01', Status: 'Active', CreateDate: recreated },
        { UserName: 'alice', AccessKeyId: ALICE_NEW, Status: 'Active', CreateDate: NEW },
      ],
    });

    const { findings, calls, stats } = await resolve(new Map([['alice', row('alice', recreated, NEW)]]), [
      finding({
        type: 'TWO_ACTIVE_KEYS',
        createDate: recreated.toISOString(),
        other: { keySlot: 2, accessKeyId: null, ageDays: 5 },
      }),
    ]);

    expect(calls.count('ListAccessKeys')).toBe(1);
    expect(stats).toMatchObject({ hits: 0, misses: 1 });
    expect(ids(findings)).toEqual([['TWO_ACTIVE_KEYS', 'AKIAALICERECREATED01', ALICE_NEW]]);
  });

  it('an entry whose recorded creation date is not the report time misses (and is corrected)', async () => {
    iamMock.on(ListAccessKeysCommand, { UserName: 'alice' }).resolves(aliceKeys());
    await resolve();
    const entry = table.get(`alice#${OLD.toISOString()}`) as Record<string, AttributeValue>;
    // A stale or tampered entry: another key id, created at another time.
    entry.accessKeyId = { S: 'AKIAWRONG00000000000' };
    entry.createDate = { S: ago(50).toISOString() };

    const { findings, calls, stats } = await resolve();

    expect(calls.count('ListAccessKeys')).toBe(1);
    expect(stats).toMatchObject({ hits: 0, misses: 1, written: 2 });
    expect(ids(findings)).toEqual(EXPECTED);
    expect(table.get(`alice#${OLD.toISOString()}`)?.accessKeyId).toEqual({ S: ALICE_OLD });
  });

  it("another user's entry, a malformed id or the same id for both keys is never used", async () => {
    iamMock.on(ListAccessKeysCommand, { UserName: 'alice' }).resolves(aliceKeys());
    const put = (user: string, created: Date, id: string) =>
      table.set(`alice#${created.toISOString()}`, {
        userName: { S: user },
        keyCreated: { S: created.toISOString() },
        accessKeyId: { S: id },
        createDate: { S: created.toISOString() },
        expiresAt: { N: String(NOW.getTime() / 1000 + 30 * 86_400) },
      });
    for (const entries of [
      [
        ['bob', OLD, ALICE_OLD],
        ['alice', NEW, ALICE_NEW],
      ],
      [
        ['alice', OLD, 'not a key id'],
        ['alice', NEW, ALICE_NEW],
      ],
      [
        ['alice', OLD, ALICE_NEW],
        ['alice', NEW, ALICE_NEW],
      ],
    ] as Array<Array<[string, Date, string]>>) {
      table.clear();
      for (const [user, created, id] of entries) put(user, created, id);

      const { findings, calls } = await resolve();

      expect(calls.count('ListAccessKeys')).toBe(1);
      expect(ids(findings)).toEqual(EXPECTED);
    }
  });

  it('a user with one key in the cache and one new key is listed', async () => {
    iamMock.on(ListAccessKeysCommand, { UserName: 'alice' }).resolves(aliceKeys());
    await resolve();
    table.delete(`alice#${NEW.toISOString()}`);

    const { findings, calls } = await resolve();

    expect(calls.count('ListAccessKeys')).toBe(1);
    expect(ids(findings)).toEqual(EXPECTED);
  });

  it('two keys created within the same second are never taken from the cache', async () => {
    const second = new Date(OLD.getTime() + 400);
    iamMock.on(ListAccessKeysCommand, { UserName: 'alice' }).resolves({
      AccessKeyMetadata: [
        { UserName: 'alice', AccessKeyId: ALICE_OLD, Status: 'Active', CreateDate: OLD },
        { UserName: 'alice', AccessKeyId: ALICE_NEW, Status: 'Active', CreateDate: second },
      ],
    });
    const rows = new Map([['alice', row('alice', OLD, OLD)]]);
    const findings = [
      finding({ type: 'TWO_ACTIVE_KEYS', other: { keySlot: 2, accessKeyId: null, ageDays: 100 } }),
    ];

    const first = await resolve(rows, findings);
    const again = await resolve(rows, findings);

    expect(first.stats.written).toBe(0);
    expect(again.calls.count('ListAccessKeys')).toBe(1);
    expect(ids(again.findings)).toEqual([['TWO_ACTIVE_KEYS', ALICE_OLD, ALICE_NEW]]);
  });

  it('DynamoDB failing to read or write falls back to ListAccessKeys, with the right ids', async () => {
    iamMock.on(ListAccessKeysCommand, { UserName: 'alice' }).resolves(aliceKeys());
    await resolve();
    ddbMock.on(BatchGetItemCommand).rejects(awsError('ProvisionedThroughputExceededException', 'slow down'));
    ddbMock.on(BatchWriteItemCommand).rejects(awsError('AccessDeniedException', 'not authorized'));
    const logged: string[] = [];

    const { findings, calls, stats } = await resolve(ROWS, FINDINGS, (m) => logged.push(m));

    expect(calls.count('ListAccessKeys')).toBe(1);
    expect(ids(findings)).toEqual(EXPECTED);
    expect(stats).toMatchObject({ hits: 0, misses: 1, written: 0, failures: 2 });
    expect(logged).toEqual([
      expect.stringContaining('key id cache read failed (ProvisionedThroughputExceededException'),
      expect.stringContaining('key id cache write failed (AccessDeniedException'),
    ]);
  });

  it('unprocessed keys are asked again; entries near their expiry are written again', async () => {
    iamMock.on(ListAccessKeysCommand, { UserName: 'alice' }).resolves(aliceKeys());
    await resolve();
    for (const item of table.values()) item.expiresAt = { N: String(NOW.getTime() / 1000 + 86_400) };
    ddbMock.resetHistory();
    let first = true;
    ddbMock.on(BatchGetItemCommand).callsFake((input) => {
      const keys = input.RequestItems[TABLE].Keys as Array<Record<string, AttributeValue>>;
      if (first) {
        first = false;
        return { Responses: { [TABLE]: [] }, UnprocessedKeys: { [TABLE]: { Keys: keys } } };
      }
      return { Responses: { [TABLE]: keys.map((k) => table.get(`${k.userName?.S}#${k.keyCreated?.S}`)) } };
    });

    const { findings, calls, stats } = await resolve();

    expect(calls.count('ListAccessKeys')).toBe(0);
    expect(ids(findings)).toEqual(EXPECTED);
    expect(stats).toMatchObject({ hits: 1, written: 2 });
    expect(ddbMock.commandCalls(BatchGetItemCommand)).toHaveLength(2);
  });

  it('a user deleted since the report: its findings are stale, nothing is stored', async () => {
    iamMock.on(ListAccessKeysCommand, { UserName: 'alice' }).rejects(awsError('NoSuchEntity', 'gone'));

    const { findings, stale, stats } = await resolve();

    expect(findings).toEqual([]);
    expect(stale).toHaveLength(2);
    expect(stats.written).toBe(0);
  });
});
