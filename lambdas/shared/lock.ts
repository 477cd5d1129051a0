/**
 * One rotation per user at a time: a lock item per user in DynamoDB, taken with a conditional
 * write (the only atomic compare-and-set in rekey's toolbox). The item doubles as the create
 * step's journal: `creatingSince` is set before CreateAccessKey and cleared once the secret is
 * stored, so a later attempt can tell a key orphaned by a crash from a key somebody else made;
 * and the key it created is recorded with the execution that created it, the key it replaces and
 * the secret (and version) that holds it. That record is how a later rotation knows "rekey's own"
 * key without reading a secret value: the key is rekey's own when that version is AWSCURRENT.
 * Releasing keeps the journal (with a TTL) so the next rotation still finds it.
 */
import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { RotationInProgress } from '../../contract/errors.ts';
import { type AccountPlace, memberAccountOf } from '../../contract/organization.ts';
import type { ServiceName } from '../../contract/schemas.ts';

export interface LockItem {
  owner: string | null;
  expiresAt: number;
  creatingSince: Date | null;
  createdKeyId: string | null;
  createdVersionId: string | null;
  /** The execution (ARN) whose create step made `createdKeyId`. */
  createdBy: string | null;
  /** The key that `createdKeyId` replaces (the rotation's old key). */
  replacedKeyId: string | null;
  /** The secret whose version `createdVersionId` holds the created key. */
  secretName: string | null;
}

/** What the create step records about the key it made, besides its id and version. */
export interface CreatedKeyRecord {
  accessKeyId: string;
  versionId: string;
  replacedKeyId: string;
  secretName: string;
}

export interface LockDeps {
  dynamodb: DynamoDBClient;
  table: string;
}

/**
 * What one lock covers: a user's access keys (`alice`), or its service-specific credentials for
 * one service (`alice/cassandra.amazonaws.com`), so that rotations of different credentials of one
 * user never block each other while two of the same credential do. IAM user names hold no '/'.
 * In a member account the subject starts with the account (`123456789012:alice`; ':' is in no
 * IAM user name, so no subject of the hub's own account looks like it); in the hub's own account
 * it is what it is in a single-account deployment.
 * The lock functions below take this subject wherever they say `userName`.
 */
export function lockSubject(userName: string, serviceName?: ServiceName, place?: AccountPlace): string {
  const subject = serviceName ? `${userName}/${serviceName}` : userName;
  const member = memberAccountOf(place);
  return member ? `${member}:${subject}` : subject;
}

/** IAM user names are unique case-insensitively, so the lock is too. */
const keyOf = (userName: string) => ({ userName: { S: userName.toLowerCase() } });
const epoch = (d: Date) => Math.floor(d.getTime() / 1000);
/** Released journals are kept this long for orphan detection, then expire through the table's TTL. */
const JOURNAL_RETENTION_SECONDS = 90 * 86400;

function toLock(item: Record<string, { S?: string; N?: string }> | undefined): LockItem | null {
  if (!item) return null;
  const since = item.creatingSince?.S;
  return {
    owner: item.owner?.S ?? null,
    expiresAt: Number(item.expiresAt?.N ?? 0),
    creatingSince: since ? new Date(since) : null,
    createdKeyId: item.createdKeyId?.S ?? null,
    createdVersionId: item.createdVersionId?.S ?? null,
    createdBy: item.createdBy?.S ?? null,
    replacedKeyId: item.replacedKeyId?.S ?? null,
    secretName: item.secretName?.S ?? null,
  };
}

export async function readLock(deps: LockDeps, userName: string): Promise<LockItem | null> {
  const out = await deps.dynamodb.send(
    new GetItemCommand({ TableName: deps.table, Key: keyOf(userName), ConsistentRead: true }),
  );
  return toLock(out.Item);
}

export type AcquireResult = { acquired: true; lock: LockItem } | { acquired: false; owner: string };

/** Takes the lock for `owner`, or re-takes it (same execution re-run), or takes over an expired one. */
export async function acquireLock(
  deps: LockDeps,
  userName: string,
  owner: string,
  now: Date,
  ttlSeconds: number,
): Promise<AcquireResult> {
  try {
    const out = await deps.dynamodb.send(
      new UpdateItemCommand({
        TableName: deps.table,
        Key: keyOf(userName),
        UpdateExpression: 'SET #owner = :owner, acquiredAt = :now, expiresAt = :exp',
        ConditionExpression: 'attribute_not_exists(#owner) OR #owner = :owner OR expiresAt < :nowEpoch',
        ExpressionAttributeNames: { '#owner': 'owner' },
        ExpressionAttributeValues: {
          ':owner': { S: owner },
          ':now': { S: now.toISOString() },
          ':exp': { N: String(epoch(now) + ttlSeconds) },
          ':nowEpoch': { N: String(epoch(now)) },
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
    const lock = toLock(out.Attributes);
    if (!lock) throw new Error('lock write returned no item');
    return { acquired: true, lock };
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
    const current = await readLock(deps, userName);
    return { acquired: false, owner: current?.owner ?? 'unknown execution' };
  }
}

/** Releases the lock if `owner` holds it; a no-op otherwise (a stopped rival must not free it). */
export async function releaseLock(
  deps: LockDeps,
  userName: string,
  owner: string,
  now: Date,
): Promise<boolean> {
  try {
    await deps.dynamodb.send(
      new UpdateItemCommand({
        TableName: deps.table,
        Key: keyOf(userName),
        UpdateExpression: 'REMOVE #owner, acquiredAt SET expiresAt = :exp',
        ConditionExpression: '#owner = :owner',
        ExpressionAttributeNames: { '#owner': 'owner' },
        ExpressionAttributeValues: {
          ':owner': { S: owner },
          ':exp': { N: String(epoch(now) + JOURNAL_RETENTION_SECONDS) },
        },
      }),
    );
    return true;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return false;
    throw error;
  }
}

/** A journal write that only the lock's owner may make; anyone else learns who holds it. */
async function journal(
  deps: LockDeps,
  userName: string,
  owner: string,
  update: string,
  values: Record<string, { S: string }>,
): Promise<void> {
  try {
    await deps.dynamodb.send(
      new UpdateItemCommand({
        TableName: deps.table,
        Key: keyOf(userName),
        UpdateExpression: update,
        ConditionExpression: '#owner = :owner',
        ExpressionAttributeNames: { '#owner': 'owner' },
        ExpressionAttributeValues: { ':owner': { S: owner }, ...values },
      }),
    );
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
    const current = await readLock(deps, userName);
    throw new RotationInProgress(userName, current?.owner ?? 'lock lost');
  }
}

/** A create is about to begin: the record of an earlier created key is dropped (the plan and the sweep have dealt with it). */
export const markCreating = (deps: LockDeps, userName: string, owner: string, since: Date) =>
  journal(
    deps,
    userName,
    owner,
    'SET creatingSince = :since REMOVE createdKeyId, createdVersionId, createdBy, replacedKeyId, secretName',
    { ':since': { S: since.toISOString() } },
  );

/** The created key, before its secret is written; its creator is the lock's owner (this execution). */
export const recordCreatedKey = (
  deps: LockDeps,
  userName: string,
  owner: string,
  created: CreatedKeyRecord,
) =>
  journal(
    deps,
    userName,
    owner,
    'SET createdKeyId = :k, createdVersionId = :v, createdBy = :owner, replacedKeyId = :r, secretName = :s',
    {
      ':k': { S: created.accessKeyId },
      ':v': { S: created.versionId },
      ':r': { S: created.replacedKeyId },
      ':s': { S: created.secretName },
    },
  );

/** The secret is stored: the created key is no longer a possible orphan. */
export const clearCreating = (deps: LockDeps, userName: string, owner: string) =>
  journal(deps, userName, owner, 'REMOVE creatingSince', {});
