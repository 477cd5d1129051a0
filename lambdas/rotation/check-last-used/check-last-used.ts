/**
 * CheckLastUsed: has the old key gone quiet since the rotation's quiet-since instant Q (the
 * hand-out, or the previous check that found use)? IAM's last-used date answers "when";
 * CloudTrail (when enabled) tells the alert who and where from. A check that finds use moves Q to
 * its own time: a consumer that switches before the next check then lets the rotation go on,
 * while any use from this check on (less the grace) still counts.
 *
 * Service-specific credentials have no last-used data in IAM: the check says so
 * (`lastUseTracked: false`) instead of calling the credential unused, and the adoption wait is
 * what the rotation relies on. CloudTrail, when enabled, can add evidence but never remove it:
 * LookupEvents returns management events only (CodeCommit's git pulls and pushes; Keyspaces' DDL,
 * not its data reads and writes) and does not reliably say which of a user's two credentials made
 * a call. An event of that service, by that user, at or after Q, that names the OLD
 * credential's id counts as use (the rotation then waits again); the user's other events of that
 * service are listed for the humans but cannot be pinned to the old credential.
 */
import { type CloudTrailClient, LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import type { IAMClient } from '@aws-sdk/client-iam';
import { errorName } from '../../../contract/errors.ts';
import type { Adoption, KeyRef, NewKey, RotationState, ServiceName } from '../../../contract/schemas.ts';
import type { Clock } from '../../shared/clock.ts';
import { credentialKind } from '../../shared/credentials.ts';
import { getLastUse, iso, usedAtOrAfter } from '../../shared/keys.ts';
import { logger } from '../../shared/logger.ts';

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

type CheckState = RotationState & { oldKey: KeyRef; newKey: NewKey; quietSince: string };

/** Where the check looks from: Q less the grace, the earliest use that still counts. */
const windowStart = (deps: AdoptionDeps, state: CheckState) =>
  new Date(new Date(state.quietSince).getTime() - deps.env.REKEY_LAST_USED_GRACE_SECONDS * 1000);

export async function checkLastUsed(deps: AdoptionDeps, state: CheckState): Promise<Adoption> {
  if (state.serviceName) return checkServiceCredential(deps, { ...state, serviceName: state.serviceName });
  const quietSince = new Date(state.quietSince);
  // Taken before the read: a use the read cannot see yet is then after this instant, not before.
  const checkedAt = iso(deps.clock.now());
  const lastUse = await getLastUse(deps.iam, state.oldKey.accessKeyId);
  const inUse = usedAtOrAfter(lastUse, quietSince, deps.env.REKEY_LAST_USED_GRACE_SECONDS);
  const checks = (state.adoption?.checks ?? 0) + 1;
  const adoption: Adoption = {
    checks,
    inUse,
    lastUsedDate: lastUse.date ? iso(lastUse.date) : null,
    lastUsedService: lastUse.service,
    lastUsedRegion: lastUse.region,
    mayWaitAgain: checks < deps.env.REKEY_MAX_ADOPTION_CHECKS,
    quietSince: inUse ? checkedAt : state.quietSince,
  };
  if (inUse && deps.env.REKEY_CLOUDTRAIL_LOOKUP) {
    adoption.recentCallers = await recentCallers(deps, state.oldKey.accessKeyId, windowStart(deps, state));
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

type ServiceState = CheckState & { serviceName: ServiceName };

async function checkServiceCredential(deps: AdoptionDeps, state: ServiceState): Promise<Adoption> {
  const quietSince = new Date(state.quietSince);
  const checkedAt = iso(deps.clock.now());
  // Asked of the kind rather than assumed, so the day IAM records it this reports it.
  const lastUse = await credentialKind(deps.iam, state.serviceName).lastUse(state.oldKey.accessKeyId);
  const checks = (state.adoption?.checks ?? 0) + 1;
  const trail = deps.env.REKEY_CLOUDTRAIL_LOOKUP
    ? await serviceEvents(deps, state, windowStart(deps, state))
    : null;
  const inUse =
    usedAtOrAfter(lastUse, quietSince, deps.env.REKEY_LAST_USED_GRACE_SECONDS) || (trail?.oldUsed ?? false);
  const adoption: Adoption = {
    checks,
    inUse,
    lastUsedDate: lastUse.date ? iso(lastUse.date) : (trail?.oldLastUsed ?? null),
    lastUsedService: lastUse.service ?? (trail?.oldUsed ? state.serviceName : null),
    lastUsedRegion: lastUse.region,
    ...(trail && trail.callers.length > 0 ? { recentCallers: trail.callers } : {}),
    mayWaitAgain: checks < deps.env.REKEY_MAX_ADOPTION_CHECKS,
    quietSince: inUse ? checkedAt : state.quietSince,
    lastUseTracked: !lastUse.untracked,
  };
  logger.info('old service-specific credential adoption check', {
    userName: state.userName,
    serviceName: state.serviceName,
    accessKeyId: state.oldKey.accessKeyId,
    ...adoption,
  });
  return adoption;
}

/**
 * The user's management events of the credential's service since Q (less the grace). CloudTrail's
 * eventSource for these services is the service name itself. Failures are logged and reported
 * as "nothing found": the decision then rests on the adoption wait, as with the lookup off.
 */
async function serviceEvents(
  deps: AdoptionDeps,
  state: ServiceState,
  since: Date,
): Promise<{ oldUsed: boolean; oldLastUsed: string | null; callers: string[] }> {
  const none = { oldUsed: false, oldLastUsed: null, callers: [] };
  try {
    const out = await deps.cloudTrail.send(
      new LookupEventsCommand({
        LookupAttributes: [{ AttributeKey: 'Username', AttributeValue: state.userName }],
        StartTime: since,
        EndTime: deps.clock.now(),
        MaxResults: CLOUDTRAIL_EVENTS,
      }),
    );
    let oldLastUsed: Date | null = null;
    const callers = new Set<string>();
    for (const event of out.Events ?? []) {
      if (event.EventSource !== state.serviceName) continue;
      const detail = JSON.parse(event.CloudTrailEvent ?? '{}') as {
        sourceIPAddress?: string;
        userAgent?: string;
        userIdentity?: { accessKeyId?: string };
      };
      const credentialId = detail.userIdentity?.accessKeyId || null;
      const byOld = credentialId === state.oldKey.accessKeyId;
      if (byOld && event.EventTime && (!oldLastUsed || event.EventTime > oldLastUsed))
        oldLastUsed = event.EventTime;
      const who = byOld ? 'the OLD credential' : credentialId ? credentialId : 'credential not recorded';
      callers.add(
        `${event.EventName ?? '?'} from ${detail.sourceIPAddress ?? '?'} (${detail.userAgent ?? 'unknown agent'}; ${who})`,
      );
    }
    return {
      oldUsed: oldLastUsed !== null,
      oldLastUsed: oldLastUsed ? iso(oldLastUsed) : null,
      callers: [...callers],
    };
  } catch (error) {
    logger.warn('CloudTrail lookup failed; the decision rests on the adoption wait', {
      errorName: errorName(error),
    });
    return none;
  }
}
