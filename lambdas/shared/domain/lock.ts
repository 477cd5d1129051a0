/**
 * One rotation per user at a time: a lock item per user in DynamoDB, taken with a conditional
 * write (the only atomic compare-and-set in rekey's toolbox). The item doubles as the create
 * step's journal: `creatingSince` is set before CreateAccessKey and cleared once the secret is
 * stored, so a later attempt can tell a key orphaned by a crash from a key somebody else made.
 * Releasing keeps the journal (with a TTL) so an orphan is still recognised by the next rotation.
 */
import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { RotationInProgress } from '../errors.ts';
import type { ServiceName } from '../schemas.ts';

export interface LockItem {
  owner: string | null;
  expiresAt: number;
  creatingSince: Date | null;
  createdKeyId: string | null;
  createdVersionId: string | null;
}

export interface LockDeps {
  dynamodb: DynamoDBClient;
  table: string;
}

/**
 * What one lock covers: a user's access keys (`alice`), or its service-specific credentials for
 * one service (`alice/cassandra.amazonaws.com`), so that rotations of different credentials of one
 * user never block each other while two of the same credential do. IAM user names hold no '/'.
 * The lock functions below take this subject wherever they say `userName`.
 */
export function lockSubject(userName: string, serviceName?: ServiceName): string {
  return serviceName ? `${userName}/${serviceName}` : userName;
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

export const markCreating = (deps: LockDeps, userName: string, owner: string, since: Date) =>
  journal(deps, userName, owner, 'SET creatingSince = :since REMOVE createdKeyId, createdVersionId', {
    ':since': { S: since.toISOString() },
  });

export const recordCreatedKey = (
  deps: LockDeps,
  userName: string,
  owner: string,
  accessKeyId: string,
  versionId: string,
) =>
  journal(deps, userName, owner, 'SET createdKeyId = :k, createdVersionId = :v', {
    ':k': { S: accessKeyId },
    ':v': { S: versionId },
  });

/** The secret is stored: the created key is no longer a possible orphan. */
export const clearCreating = (deps: LockDeps, userName: string, owner: string) =>
  journal(deps, userName, owner, 'REMOVE creatingSince', {});
