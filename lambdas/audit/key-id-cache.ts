/**
 * The key-id cache: which access key id a user's key has, keyed by the user and the key's creation
 * time as the credential report prints it (last_rotated). The report has no key ids, so without
 * the cache every user with a finding costs one ListAccessKeys per audit (users.ts); with it only
 * the keys the report shows as new (no entry yet) do, and a warm audit's IAM calls stay at the
 * constant scan calls whatever the number of findings.
 *
 * An optimisation only: it can save a call, never decide anything. An entry is used only when
 * - it is the entry of this user and of exactly this creation time (both are its key), and the
 *   IAM creation date it recorded is within the second of the report's (users.ts sameSecond);
 * - its key id looks like a key id, and the user's two keys (when the report shows two) have
 *   distinct ids;
 * and a user's keys come from the cache only when every active key of the user's report row has a
 * valid entry and no two of its keys were created within the same second (told apart by order
 * only). Anything else, and any DynamoDB error, is a miss: the audit calls ListAccessKeys as it
 * always did, and stores what it found. A key deleted and re-created gets a new creation time, so
 * it misses. Entries are written only from ListAccessKeys answers, under the report's time of the
 * key they matched, by the audit alone (its role is the only principal with write access).
 *
 * Items: `userName` (partition key), `keyCreated` (sort key: the report's last_rotated, ISO),
 * `accessKeyId`, `createDate` (IAM's CreateDate, ISO) and `expiresAt` (epoch seconds, DynamoDB
 * TTL): an entry lives KEY_ID_CACHE_TTL_DAYS after it was last written, and an entry read with
 * less than half of that left is written again, so the keys of a long-lived finding stay cached
 * while entries of deleted keys and users go away.
 *
 * The organization audit keeps a member account's entries under `<accountId>/<userName>` (IAM
 * user names hold no `/`), so that no two accounts share an entry; the hub's keep the bare name.
 */
import {
  type AttributeValue,
  BatchGetItemCommand,
  type BatchGetItemCommandOutput,
  BatchWriteItemCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { KEY_ID_CACHE_TTL_ATTRIBUTE } from '../../contract/tables.ts';
import type { Clock } from '../shared/clock.ts';

/** How long an entry lives after it was last written. */
export const KEY_ID_CACHE_TTL_DAYS = 30;
/** BatchGetItem reads at most 100 items a call, BatchWriteItem writes at most 25. */
const READ_BATCH = 100;
const WRITE_BATCH = 25;
/** Unprocessed items are asked again this many times, then treated as misses (or left unwritten). */
const UNPROCESSED_RETRIES = 3;

const DAY_S = 86_400;
/** IAM access key ids: 16 to 128 word characters (AKIA..., ASIA...). */
const KEY_ID = /^\w{16,128}$/;

/** One key of the report: the user and its last_rotated. */
export interface KeyRef {
  userName: string;
  created: Date;
}

export interface CachedKeyId extends KeyRef {
  accessKeyId: string;
  /** IAM's CreateDate of the key, as ListAccessKeys answered it. */
  createDate: Date;
}

export interface KeyIdCacheStats {
  /** Users whose keys all came from the cache (no ListAccessKeys). */
  hits: number;
  /** Users looked up with ListAccessKeys although the cache was on (new keys, or doubtful entries). */
  misses: number;
  /** Entries written (new keys, refreshed entries). */
  written: number;
  /** DynamoDB calls that failed: their keys counted as misses, their writes dropped. */
  failures: number;
  /** DynamoDB requests sent (BatchGetItem, BatchWriteItem). */
  requests: number;
}

export interface KeyIdCache {
  /** The valid entries among `refs`, by keyRefId. Never throws: a failure is a miss. */
  lookup(refs: readonly KeyRef[]): Promise<Map<string, CachedKeyId>>;
  /** Writes the entries. Never throws: an entry not written costs one lookup next time. */
  store(entries: readonly CachedKeyId[]): Promise<void>;
  readonly stats: KeyIdCacheStats;
}

/** The cache's identity of an item: user and report time (IAM user names have no `#`). */
const itemId = (userName: string | undefined, keyCreated: string | undefined) => `${userName}#${keyCreated}`;
/** The cache's identity of a key: the id of the item that stores it. */
export const keyRefId = (ref: KeyRef) => itemId(ref.userName, ref.created.toISOString());

const SECOND_MS = 1000;
/** As users.ts matches report slots to keys: IAM's two dates within one second of rounding. */
export const sameSecond = (a: Date, b: Date) =>
  Math.abs(Math.floor(a.getTime() / SECOND_MS) - Math.floor(b.getTime() / SECOND_MS)) <= 1;

const chunks = <T>(items: readonly T[], size: number): T[][] =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));

/** An item as read back, if it is a valid entry of `ref`; anything doubtful is undefined. */
export function entryOf(
  ref: KeyRef,
  item: Record<string, AttributeValue> | undefined,
  partition: string = ref.userName,
): (CachedKeyId & { expiresAt: number }) | undefined {
  if (!item) return undefined;
  const userName = item.userName?.S;
  const keyCreated = item.keyCreated?.S;
  const accessKeyId = item.accessKeyId?.S;
  const createDate = item.createDate?.S ? new Date(item.createDate.S) : undefined;
  const expiresAt = Number(item[KEY_ID_CACHE_TTL_ATTRIBUTE]?.N ?? Number.NaN);
  if (userName !== partition || keyCreated !== ref.created.toISOString()) return undefined;
  if (!accessKeyId || !KEY_ID.test(accessKeyId)) return undefined;
  if (!createDate || Number.isNaN(createDate.getTime()) || !sameSecond(createDate, ref.created))
    return undefined;
  return { ...ref, accessKeyId, createDate, expiresAt };
}

export interface DynamoKeyIdCacheDeps {
  dynamodb: DynamoDBClient;
  tableName: string;
  clock: Clock;
  /** Why a DynamoDB call failed (the audit goes on without the cache). */
  log?: (message: string) => void;
  /** A member account's cache (the organization audit): its entries are that account's only. */
  memberAccountId?: string;
}

export class DynamoKeyIdCache implements KeyIdCache {
  readonly stats: KeyIdCacheStats = { hits: 0, misses: 0, written: 0, failures: 0, requests: 0 };
  readonly #deps: DynamoKeyIdCacheDeps;

  constructor(deps: DynamoKeyIdCacheDeps) {
    this.#deps = deps;
  }

  /** The partition key of a user's entries. */
  #partition(userName: string): string {
    const account = this.#deps.memberAccountId;
    return account ? `${account}/${userName}` : userName;
  }

  async lookup(refs: readonly KeyRef[]): Promise<Map<string, CachedKeyId>> {
    const found = new Map<string, CachedKeyId>();
    const unique = [...new Map(refs.map((r) => [keyRefId(r), r])).values()];
    const refresh: CachedKeyId[] = [];
    const nowS = Math.floor(this.#deps.clock.now().getTime() / 1000);
    const { tableName } = this.#deps;
    for (const batch of chunks(unique, READ_BATCH)) {
      const byId = new Map(
        batch.map((r) => [itemId(this.#partition(r.userName), r.created.toISOString()), r]),
      );
      let keys: Array<Record<string, AttributeValue>> = batch.map((r) => ({
        userName: { S: this.#partition(r.userName) },
        keyCreated: { S: r.created.toISOString() },
      }));
      for (let attempt = 0; keys.length && attempt <= UNPROCESSED_RETRIES; attempt++) {
        let answer: BatchGetItemCommandOutput;
        try {
          this.stats.requests += 1;
          answer = await this.#deps.dynamodb.send(
            new BatchGetItemCommand({
              RequestItems: {
                [tableName]: {
                  Keys: keys,
                  ConsistentRead: true,
                },
              },
            }),
          );
        } catch (error) {
          this.#failed('read', error);
          break;
        }
        for (const item of answer.Responses?.[tableName] ?? []) {
          const id = itemId(item.userName?.S, item.keyCreated?.S);
          const ref = byId.get(id);
          const entry = ref ? entryOf(ref, item, this.#partition(ref.userName)) : undefined;
          if (!ref || !entry) continue;
          const { expiresAt, ...cached } = entry;
          found.set(keyRefId(ref), cached);
          if (!(expiresAt - nowS >= (KEY_ID_CACHE_TTL_DAYS * DAY_S) / 2)) refresh.push(cached);
        }
        keys = answer.UnprocessedKeys?.[tableName]?.Keys ?? [];
      }
    }
    if (refresh.length) await this.store(refresh);
    return found;
  }

  async store(entries: readonly CachedKeyId[]): Promise<void> {
    const { tableName } = this.#deps;
    const expiresAt = Math.floor(this.#deps.clock.now().getTime() / 1000) + KEY_ID_CACHE_TTL_DAYS * DAY_S;
    const unique = [...new Map(entries.map((e) => [keyRefId(e), e])).values()];
    for (const batch of chunks(unique, WRITE_BATCH)) {
      let requests = batch.map((e) => ({
        PutRequest: {
          Item: {
            userName: { S: this.#partition(e.userName) },
            keyCreated: { S: e.created.toISOString() },
            accessKeyId: { S: e.accessKeyId },
            createDate: { S: e.createDate.toISOString() },
            [KEY_ID_CACHE_TTL_ATTRIBUTE]: { N: String(expiresAt) },
          } as Record<string, AttributeValue>,
        },
      }));
      for (let attempt = 0; requests.length && attempt <= UNPROCESSED_RETRIES; attempt++) {
        try {
          this.stats.requests += 1;
          const answer = await this.#deps.dynamodb.send(
            new BatchWriteItemCommand({ RequestItems: { [tableName]: requests } }),
          );
          const left = (answer.UnprocessedItems?.[tableName] ?? []) as typeof requests;
          this.stats.written += requests.length - left.length;
          requests = left;
        } catch (error) {
          this.#failed('write', error);
          break;
        }
      }
    }
  }

  #failed(what: 'read' | 'write', error: unknown): void {
    this.stats.failures += 1;
    const name = error instanceof Error ? error.name : 'Error';
    const message = error instanceof Error ? error.message : String(error);
    this.#deps.log?.(
      `key id cache ${what} failed (${name}: ${message}); ${what === 'read' ? 'looking the keys up with ListAccessKeys' : 'the keys are looked up again next run'}`,
    );
  }
}
