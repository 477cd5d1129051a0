/**
 * The baseline rekey's audit is compared with: the per-user scan other key-rotation and audit tools
 * do (aws-samples' access key rotation, Cloud Custodian's access-key filters, hand-written
 * scripts): list every user, list each user's keys, ask IAM when each key was last used. That is
 * 1 + 2N calls for N users with one key each (more pages on real IAM, below), against the credential
 * report's constant number. It finds the same old and unused keys, which the benchmark checks, so
 * the comparison is between two ways to get one answer.
 */
import {
  GetAccessKeyLastUsedCommand,
  type IAMClient,
  paginateListAccessKeys,
  paginateListUsers,
} from '@aws-sdk/client-iam';
import { pool } from '../cli/demo-seed.ts';
import { type Thresholds, wholeDays } from '../lambdas/audit/findings.ts';

/** ListUsers' largest page; real IAM answers 100 per page unless asked for more. */
const LIST_USERS_PAGE_SIZE = 1000;

export interface PerUserScanResult {
  users: number;
  keys: number;
  /** Active keys older than maxKeyAgeDays (rekey's OLD_KEY). */
  oldKeys: number;
  /** Active keys idle (since last use, or creation if never used) for unusedDays or more (UNUSED_KEY). */
  unusedKeys: number;
}

/**
 * Scans every user, `concurrency` users at a time (ListAccessKeys, then GetAccessKeyLastUsed for
 * each of its keys). `onProgress` is called every `progressEvery` users.
 */
export async function perUserScan(
  iam: IAMClient,
  thresholds: Pick<Thresholds, 'maxKeyAgeDays' | 'unusedDays'>,
  options: { concurrency: number; now?: Date; onProgress?: (done: number) => void; progressEvery?: number },
): Promise<PerUserScanResult> {
  const now = options.now ?? new Date();
  const userNames: string[] = [];
  for await (const page of paginateListUsers({ client: iam, pageSize: LIST_USERS_PAGE_SIZE }, {}))
    for (const user of page.Users ?? []) if (user.UserName) userNames.push(user.UserName);

  const result: PerUserScanResult = { users: userNames.length, keys: 0, oldKeys: 0, unusedKeys: 0 };
  let done = 0;
  await pool(userNames, options.concurrency, async (userName) => {
    for await (const page of paginateListAccessKeys({ client: iam }, { UserName: userName })) {
      for (const key of page.AccessKeyMetadata ?? []) {
        result.keys += 1;
        const { AccessKeyLastUsed } = await iam.send(
          new GetAccessKeyLastUsedCommand({ AccessKeyId: key.AccessKeyId }),
        );
        if (key.Status !== 'Active' || !key.CreateDate) continue;
        if (wholeDays(key.CreateDate, now) > thresholds.maxKeyAgeDays) result.oldKeys += 1;
        const idleSince = AccessKeyLastUsed?.LastUsedDate ?? key.CreateDate;
        if (wholeDays(idleSince, now) >= thresholds.unusedDays) result.unusedKeys += 1;
      }
    }
    done += 1;
    if (options.onProgress && done % (options.progressEvery ?? 1000) === 0) options.onProgress(done);
  });
  return result;
}
