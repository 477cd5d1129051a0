/**
 * Reading IAM access keys: the user's keys (through the SDK paginator) and a key's last use.
 * Also the one comparison every safety check uses: "was this key used at or after an instant?".
 */
import {
  DeleteAccessKeyCommand,
  GetAccessKeyLastUsedCommand,
  type IAMClient,
  paginateListAccessKeys,
  type StatusType,
} from '@aws-sdk/client-iam';
import { isAwsError, UnexpectedKeyState } from '../../contract/errors.ts';

export interface AccessKeyInfo {
  accessKeyId: string;
  /** Active | Inactive | Expired: do not assume only two values. */
  status: StatusType | string;
  createDate: Date;
  /** A service-specific credential's user name, as IAM lists it (credentials.ts). */
  serviceUserName?: string;
}

export interface LastUse {
  /** Absent when the key was never used (since IAM started tracking, 2015-04-22). */
  date: Date | null;
  service: string | null;
  region: string | null;
  /**
   * Set when IAM keeps no last-use record for this kind of credential (service-specific
   * credentials): `date` null then means "unknown", never "unused", and is reported as such.
   */
  untracked?: true;
}

export async function listAccessKeys(iam: IAMClient, userName: string): Promise<AccessKeyInfo[]> {
  const keys: AccessKeyInfo[] = [];
  for await (const page of paginateListAccessKeys({ client: iam }, { UserName: userName })) {
    for (const k of page.AccessKeyMetadata ?? []) {
      if (!k.AccessKeyId || !k.CreateDate) continue;
      keys.push({ accessKeyId: k.AccessKeyId, status: k.Status ?? 'Unknown', createDate: k.CreateDate });
    }
  }
  return keys;
}

/** Finds a key of the user, or throws naming it (a key deleted behind rekey's back). */
export function requireKey(
  keys: AccessKeyInfo[],
  accessKeyId: string,
  userName: string,
  noun = 'access key',
): AccessKeyInfo {
  const key = keys.find((k) => k.accessKeyId === accessKeyId);
  if (!key) throw new UnexpectedKeyState(`${noun} ${accessKeyId} of "${userName}" no longer exists`);
  return key;
}

/**
 * Deletes an access key; a key that is already gone counts as deleted. That is what the SDK's
 * retry of a delete meets when the first attempt was applied but its response was lost.
 */
export async function deleteAccessKey(iam: IAMClient, userName: string, accessKeyId: string): Promise<void> {
  try {
    await iam.send(new DeleteAccessKeyCommand({ UserName: userName, AccessKeyId: accessKeyId }));
  } catch (error) {
    if (!isAwsError(error, 'NoSuchEntity', 'NoSuchEntityException')) throw error;
  }
}

export async function getLastUse(iam: IAMClient, accessKeyId: string): Promise<LastUse> {
  const out = await iam.send(new GetAccessKeyLastUsedCommand({ AccessKeyId: accessKeyId }));
  const u = out.AccessKeyLastUsed;
  const known = (v: string | undefined) => (v && v !== 'N/A' ? v : null);
  return { date: u?.LastUsedDate ?? null, service: known(u?.ServiceName), region: known(u?.Region) };
}

/**
 * True when the key was used at or after `instant`, counting uses up to `graceSeconds` before it
 * as "after": IAM reports last use with coarse granularity, so the comparison errs towards "in
 * use" (which only ever delays a rotation, never deactivates or deletes a key too early).
 */
export function usedAtOrAfter(lastUse: LastUse, instant: Date, graceSeconds: number): boolean {
  if (!lastUse.date) return false;
  return lastUse.date.getTime() >= instant.getTime() - graceSeconds * 1000;
}

/** A create step cannot outlive its Lambda (15 minutes at most): no orphan of it is younger. */
export const CREATE_WINDOW_MS = 15 * 60 * 1000;
/** Allowance for the Lambda's clock running ahead of IAM's when `creatingSince` was written. */
export const CLOCK_SKEW_MS = 5 * 1000;

/**
 * A key left behind by a create step that crashed before its secret was stored: active, never
 * used, and created inside that step's window, i.e. after it marked its intent in the user's lock
 * journal and no later than the step could have run. Nobody holds its secret, so deleting it
 * harms nobody; a key made by hand at any other time is never mistaken for one.
 */
export function isOrphanKey(key: AccessKeyInfo, lastUse: LastUse, creatingSince: Date | null): boolean {
  if (!creatingSince || key.status !== 'Active' || lastUse.date) return false;
  const created = key.createDate.getTime();
  const since = creatingSince.getTime();
  return created >= since - CLOCK_SKEW_MS && created <= since + CREATE_WINDOW_MS;
}

export const iso = (d: Date): string => d.toISOString();
