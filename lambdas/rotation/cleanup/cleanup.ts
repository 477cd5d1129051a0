/**
 * Cleanup after an execution that ended without finishing (FAILED, ABORTED, TIMED_OUT): it runs
 * at the head of the failure path, and again from the EventBridge rule on the state machine's
 * status changes, which also sees a console Stop, an execution timeout and a failing terminal
 * notification. Either may come first or twice; it acts only while the ended execution still
 * holds the user's lock, so a newer execution that took the lock is never disturbed.
 *
 * What it removes is what nobody has: the key that execution's journal says it created, when its
 * secret version was never AWSCURRENT (never handed out), and a key its crashed create step made
 * before the journal recorded it. A handed-out key is kept: a new rotation resumes with it.
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { SecretsLocation } from '../../../contract/organization.ts';
import { type CleanupInput, type CleanupResult, RotationInput } from '../../../contract/schemas.ts';
import type { Clock } from '../../shared/clock.ts';
import { credentialKind } from '../../shared/credentials.ts';
import { isOrphanKey } from '../../shared/keys.ts';
import { type LockDeps, lockSubject, readLock, releaseLock } from '../../shared/lock.ts';
import { logger } from '../../shared/logger.ts';
import { publishMetrics, rotationOutcomeMetric } from '../../shared/metrics.ts';
import { createdKeyOf, removeNeverHandedOut } from '../../shared/own-key.ts';
import { secretNameFor } from '../../shared/secret.ts';

export interface CleanupDeps {
  iam: IAMClient;
  secretsManager: SecretsManagerClient;
  lock: LockDeps;
  clock: Clock;
  env: {
    REKEY_SECRET_PREFIX: string;
    REKEY_CLEANUP_SETTLE_SECONDS: number;
    /** The hub's own account; a request naming another one is a member account's. */
    REKEY_HUB_ACCOUNT_ID?: string | undefined;
    REKEY_SECRETS_LOCATION?: SecretsLocation | undefined;
  };
}

const untouched = (message: string): CleanupResult => ({
  acted: false,
  releasedLock: false,
  removedKeyIds: [],
  keptKeyId: null,
  message,
});

/**
 * The user (and service, and account) the ended execution was about, or null when its input
 * names none. The handler runs the cleanup in that account (lambdas/shared/handler.ts).
 */
export function requestOf(input: string | null): RotationInput | null {
  if (input === null) return null;
  try {
    const parsed = RotationInput.safeParse(JSON.parse(input));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export async function cleanUp(deps: CleanupDeps, event: CleanupInput): Promise<CleanupResult> {
  const { executionArn, status } = event;
  const request = requestOf(event.input);
  // A request the plan rejected never took a lock nor made a key.
  if (!request) return untouched(`${status}: the execution input names no valid user; nothing to clean up`);
  const { userName, serviceName } = request;
  const place = {
    accountId: request.accountId,
    hubAccountId: deps.env.REKEY_HUB_ACCOUNT_ID,
    secrets: deps.env.REKEY_SECRETS_LOCATION,
  };
  const subject = lockSubject(userName, serviceName, place);
  // An aborted or timed-out execution may still have a step running (Step Functions does not stop
  // a Lambda it invoked), e.g. a verify about to make the new key AWSCURRENT: removing that key
  // now would hand consumers a dead one. After this wait no step of that execution runs any more.
  // A failed execution has none: its failing step is what ended it.
  if (status !== 'FAILED') await deps.clock.sleep(deps.env.REKEY_CLEANUP_SETTLE_SECONDS * 1000);
  const lock = await readLock(deps.lock, subject);
  if (lock?.owner !== executionArn) {
    return untouched(
      `${status}: the lock of "${subject}" is ${lock?.owner ? `held by ${lock.owner}` : 'not held'}, not by ${executionArn}; nothing was changed`,
    );
  }

  const kind = credentialKind(deps.iam, serviceName);
  const removedKeyIds: string[] = [];
  let keptKeyId: string | null = null;
  const keys = await kind.list(userName);
  const created =
    lock.createdBy === executionArn
      ? await createdKeyOf(
          deps.secretsManager,
          lock,
          secretNameFor(deps.env.REKEY_SECRET_PREFIX, userName, serviceName, place),
        )
      : null;
  if (created?.handedOut) {
    keptKeyId = created.accessKeyId;
  } else if (created && keys.some((k) => k.accessKeyId === created.accessKeyId)) {
    await removeNeverHandedOut(deps.secretsManager, kind, userName, created);
    removedKeyIds.push(created.accessKeyId);
  }
  // A key its create step made but crashed before recording: active, never used, made inside
  // that step's window after it marked its intent (the create step's own orphan rule).
  if (lock.creatingSince) {
    for (const key of keys) {
      if ([created?.accessKeyId, lock.replacedKeyId].includes(key.accessKeyId)) continue;
      if (!isOrphanKey(key, await kind.lastUse(key.accessKeyId), lock.creatingSince)) continue;
      logger.warn('removing a credential an ended execution made before recording it', {
        userName,
        accessKeyId: key.accessKeyId,
        executionArn,
      });
      await kind.remove(userName, key.accessKeyId);
      removedKeyIds.push(key.accessKeyId);
    }
  }
  const releasedLock = await releaseLock(deps.lock, subject, executionArn, deps.clock.now());
  const result: CleanupResult = {
    acted: true,
    releasedLock,
    removedKeyIds,
    keptKeyId,
    message:
      `${status}: ` +
      [
        removedKeyIds.length
          ? `removed ${removedKeyIds.join(', ')}, made by this execution and never handed out`
          : 'no key to remove',
        ...(keptKeyId
          ? [`kept ${keptKeyId}, handed out (AWSCURRENT): a new rotation of "${userName}" resumes with it`]
          : []),
        releasedLock ? `released the lock of "${subject}"` : 'the lock was released meanwhile',
      ].join('; '),
  };
  logger.info('cleanup after an ended execution', { executionArn, subject, ...result });
  // A failed rotation is counted by its failure notification; an aborted or timed-out one ends
  // here, counted once: a repeated cleanup finds the lock released and does not act.
  if (status !== 'FAILED') publishMetrics([rotationOutcomeMetric(status)]);
  return result;
}
