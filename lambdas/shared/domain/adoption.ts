/**
 * CheckLastUsed: has the old key gone quiet since the new key was handed out? IAM's last-used
 * date answers "when"; CloudTrail (when enabled) tells the alert who and where from.
 */
import { type CloudTrailClient, LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import type { IAMClient } from '@aws-sdk/client-iam';
import type { Clock } from '../clock.ts';
import { errorName } from '../errors.ts';
import { logger } from '../logger.ts';
import type { Adoption, KeyRef, NewKey, RotationState } from '../schemas.ts';
import { getLastUse, iso, usedAtOrAfter } from './keys.ts';

export interface AdoptionDeps {
  iam: IAMClient;
  cloudTrail: CloudTrailClient;
  clock: Clock;
  env: {
    REKEY_MAX_ADOPTION_CHECKS: number;
    REKEY_LAST_USED_GRACE_SECONDS: number;
    REKEY_CLOUDTRAIL_LOOKUP: boolean;
  };
}

/** CloudTrail allows 2 LookupEvents per second per account: one page of the latest events is enough. */
const CLOUDTRAIL_EVENTS = 20;

export async function checkLastUsed(
  deps: AdoptionDeps,
  state: RotationState & { oldKey: KeyRef; newKey: NewKey },
): Promise<Adoption> {
  const handedOut = new Date(state.newKey.createDate);
  const lastUse = await getLastUse(deps.iam, state.oldKey.accessKeyId);
  const inUse = usedAtOrAfter(lastUse, handedOut, deps.env.REKEY_LAST_USED_GRACE_SECONDS);
  const checks = (state.adoption?.checks ?? 0) + 1;
  const adoption: Adoption = {
    checks,
    inUse,
    lastUsedDate: lastUse.date ? iso(lastUse.date) : null,
    lastUsedService: lastUse.service,
    lastUsedRegion: lastUse.region,
    mayWaitAgain: checks < deps.env.REKEY_MAX_ADOPTION_CHECKS,
  };
  if (inUse && deps.env.REKEY_CLOUDTRAIL_LOOKUP) {
    adoption.recentCallers = await recentCallers(deps, state.oldKey.accessKeyId, handedOut);
  }
  logger.info('old key adoption check', {
    userName: state.userName,
    accessKeyId: state.oldKey.accessKeyId,
    ...adoption,
  });
  return adoption;
}

/**
 * Distinct "EventName from IP (user agent)" of recent management events signed with the key.
 * Informational only: if CloudTrail cannot be read the decision (made from IAM above) stands, so
 * a lookup failure is logged and reported as no callers rather than failing the rotation.
 */
async function recentCallers(deps: AdoptionDeps, accessKeyId: string, since: Date): Promise<string[]> {
  try {
    const out = await deps.cloudTrail.send(
      new LookupEventsCommand({
        LookupAttributes: [{ AttributeKey: 'AccessKeyId', AttributeValue: accessKeyId }],
        StartTime: since,
        EndTime: deps.clock.now(),
        MaxResults: CLOUDTRAIL_EVENTS,
      }),
    );
    const callers = new Set<string>();
    for (const event of out.Events ?? []) {
      const detail = JSON.parse(event.CloudTrailEvent ?? '{}') as {
        sourceIPAddress?: string;
        userAgent?: string;
      };
      callers.add(
        `${event.EventName ?? '?'} from ${detail.sourceIPAddress ?? '?'} (${detail.userAgent ?? 'unknown agent'})`,
      );
    }
    return [...callers];
  } catch (error) {
    logger.warn('CloudTrail lookup failed; the decision rests on IAM last-used data', {
      errorName: errorName(error),
    });
    return [];
  }
}
