/**
 * Notifications: one SNS message (readable as an email) and one EventBridge event (source
 * `rekey`, detail-type from NOTIFICATION_EVENTS) per milestone. One invocation may announce
 * several milestones (the rotation's start and its new key, which are ready at the same moment):
 * their messages go in one SNS PublishBatch and their events in one PutEvents. They carry user
 * names, key ids, dates and reasons, built field by field from the state: never a secret.
 * Terminal events also release the user's lock. Dry runs publish nothing.
 */
import { type EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { PublishBatchCommand, type SNSClient } from '@aws-sdk/client-sns';
import { SAFE_STOP_ERRORS, STILL_IN_USE_ADVICE } from '../../../contract/errors.ts';
import {
  NOTIFICATION_EVENTS,
  type NotificationEvent,
  type NotifyInput,
  type Outcome,
  TERMINAL_EVENTS,
} from '../../../contract/schemas.ts';
import type { Clock } from '../../shared/clock.ts';
import { type LockDeps, lockSubject, releaseLock } from '../../shared/lock.ts';
import { outcomeMetrics, publishMetrics } from '../../shared/metrics.ts';

export interface NotifyDeps {
  sns: SNSClient;
  eventBridge: EventBridgeClient;
  lock: LockDeps;
  clock: Clock;
  env: {
    REKEY_TOPIC_ARN: string;
    REKEY_EVENT_BUS_NAME: string;
    /** The hub's own account: the account of a state that names none, and of its lock subject. */
    REKEY_HUB_ACCOUNT_ID?: string | undefined;
  };
}

type State = NotifyInput['state'];

/**
 * Why a service-specific credential's notifications say what they say: IAM keeps no last-used
 * data for these credentials and offers no call that proves their password.
 */
export const SERVICE_CREDENTIAL_CAVEAT =
  'IAM keeps no last-used data for service-specific credentials: rekey cannot see whether the old one is ' +
  'still used, and relies on the adoption wait (and on CloudTrail, when enabled) before deactivating it';

/** "access key", or "service-specific credential for cassandra.amazonaws.com". */
const nounOf = (state: State) =>
  state.serviceName ? `service-specific credential for ${state.serviceName}` : 'access key';

/** The `errorMessage` of a Lambda error's Cause (JSON with errorType/errorMessage/trace); never the trace. */
export function causeMessage(cause: string | undefined): string | undefined {
  if (!cause) return undefined;
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    return typeof parsed.errorMessage === 'string' ? parsed.errorMessage : cause.slice(0, 500);
  } catch {
    return cause.slice(0, 500);
  }
}

/**
 * What a stop raised by a step's re-check left behind, and what to do: the error message says why
 * (an exemption, a use of the old key), this says where the keys are and how the rotation goes on.
 */
function stepStopAdvice(state: State): string {
  if (state.error?.Error === 'OldKeyStillInUse') return ''; // its message already says it all
  const old = state.oldKey?.accessKeyId;
  const fresh = state.newKey?.accessKeyId;
  const again = 'once rekey may rotate the user again, start the rotation of this user again';
  if (!fresh) return `. Nothing was changed; ${again}`;
  // The old key is inactive after the deactivation, and in a run that resumed at the deletion.
  if (!state.deactivation && state.resumeStage !== 'DELETION') {
    return `. Both keys stay active and the secret holds the new key ${fresh}; ${again}: it resumes with ${fresh} and creates no key`;
  }
  return (
    `. The old key ${old} stays inactive (not deleted) and the secret holds the new key ${fresh}; ${again}: ` +
    `it resumes with the check that ${old} stayed unused, then deletes it (or reactivates it if it was used)`
  );
}

/** What the cleanup at the head of the failure path did, and what to do next. */
function afterFailure(state: State): string {
  const { cleanup, cleanupError } = state;
  if (cleanupError) {
    return (
      `. The cleanup failed too (${cleanupError.Error}); it runs again when the execution has ended. Then ` +
      'start the rotation of this user again: it resumes with a key already handed out, and removes one that never was'
    );
  }
  if (!cleanup?.acted) return '';
  const parts = [
    ...(cleanup.removedKeyIds.length
      ? [`${cleanup.removedKeyIds.join(', ')}, made by this run and never handed out, was deleted`]
      : []),
    ...(cleanup.keptKeyId
      ? [
          `the new ${nounOf(state)} ${cleanup.keptKeyId} was already handed out (AWSCURRENT) and is kept: once the ` +
            'cause is fixed, start the rotation of this user again and it resumes with that key',
        ]
      : ['once the cause is fixed, start the rotation of this user again']),
  ];
  return `. ${parts.join('; ')}`;
}

export function outcomeOf(event: NotificationEvent, state: State): Outcome | null {
  const failure = state.error ? `${state.error.Error}: ${causeMessage(state.error.Cause) ?? ''}` : undefined;
  switch (event) {
    case 'ROTATION_COMPLETED':
      return {
        status: 'ROTATED',
        message: state.serviceName
          ? `rotated the ${nounOf(state)} of "${state.userName}": ${state.oldKey?.accessKeyId} was replaced by ${state.newKey?.accessKeyId}`
          : `rotated "${state.userName}": ${state.oldKey?.accessKeyId} was replaced by ${state.newKey?.accessKeyId}`,
      };
    case 'ROTATION_STOPPED': {
      const stepStop = state.error && (SAFE_STOP_ERRORS as readonly string[]).includes(state.error.Error);
      if (state.error && stepStop) {
        return {
          status: 'STOPPED',
          reason: state.error.Error,
          message: `${causeMessage(state.error.Cause) ?? state.error.Error}${stepStopAdvice(state)}`,
        };
      }
      const stillInUse = state.adoption?.inUse === true;
      const reason = stillInUse ? 'OldKeyStillInUse' : (state.stopReason ?? 'Stopped');
      const message = !stillInUse
        ? (state.message ?? 'stopped')
        : state.serviceName
          ? `the old ${nounOf(state)} ${state.oldKey?.accessKeyId} of "${state.userName}" was still in use ` +
            `after ${state.adoption?.checks} checks (CloudTrail, last ${state.adoption?.lastUsedDate}); both ` +
            `credentials stay active and the secret holds the new one, ${state.newKey?.accessKeyId}. ${STILL_IN_USE_ADVICE}`
          : `the old key ${state.oldKey?.accessKeyId} of "${state.userName}" was still in use after ` +
            `${state.adoption?.checks} checks (last used ${state.adoption?.lastUsedDate}` +
            `${state.adoption?.lastUsedService ? ` by ${state.adoption.lastUsedService}` : ''}` +
            `${state.adoption?.lastUsedRegion ? ` in ${state.adoption.lastUsedRegion}` : ''}); both keys stay active ` +
            `and the secret holds the new key ${state.newKey?.accessKeyId}. ${STILL_IN_USE_ADVICE}`;
      return { status: 'STOPPED', reason, message };
    }
    case 'ROTATION_FAILED':
      return {
        status: 'FAILED',
        reason: state.error?.Error ?? 'Unknown',
        message:
          (state.serviceName
            ? `rotation of the ${nounOf(state)} of "${state.userName}" failed: ${failure ?? 'unknown error'}`
            : `rotation of "${state.userName}" failed: ${failure ?? 'unknown error'}`) + afterFailure(state),
      };
    case 'ROLLED_BACK':
      return {
        status: 'ROLLED_BACK',
        reason: state.error?.Error ?? 'Unknown',
        message: state.serviceName
          ? `rotation of the ${nounOf(state)} of "${state.userName}" was rolled back: the old credential ` +
            `${state.oldKey?.accessKeyId} is active again. ${failure ?? ''}`.trim()
          : `rotation of "${state.userName}" was rolled back: the old key ${state.oldKey?.accessKeyId} is active again. ` +
            `${failure ?? ''}`.trim(),
      };
    default:
      return null;
  }
}

function summary(event: NotificationEvent, state: State): string {
  return state.serviceName ? serviceSummary(event, state) : keySummary(event, state);
}

/** The SNS text and event message for a service-specific credential: the same milestones, honest about what IAM can tell. */
function serviceSummary(event: NotificationEvent, state: State): string {
  const user = `"${state.userName ?? 'unknown user'}"`;
  const noun = nounOf(state);
  const old = state.oldKey?.accessKeyId;
  const fresh = state.newKey?.accessKeyId;
  switch (event) {
    case 'ROTATION_STARTED':
      return `Rotation of the ${noun} of ${user} started: ${old} will be replaced. ${state.reason ? `Reason: ${state.reason}.` : ''}`.trim();
    case 'NEW_KEY_READY':
      return (
        `A new ${noun}, ${fresh}${state.newKey?.serviceUserName ? ` (user name ${state.newKey.serviceUserName})` : ''}, ` +
        `for ${user} is ready in ${state.secretName} (AWSCURRENT). Switch every consumer to it. rekey checked that ` +
        `the stored credential is ${user}'s and Active in IAM; the password itself is proven by the consumer's first ` +
        `connection. ${SERVICE_CREDENTIAL_CAVEAT}: the old credential ${old} will be deactivated after that wait.`
      );
    case 'OLD_KEY_STILL_IN_USE':
      return (
        `The old ${noun} ${old} of ${user} is still in use: CloudTrail shows it used at ${state.adoption?.lastUsedDate}` +
        `${state.adoption?.recentCallers?.length ? ` (${state.adoption.recentCallers.join('; ')})` : ''}. ` +
        `Check ${state.adoption?.checks}; switch it to the new credential ${fresh}.`
      );
    case 'KEY_DEACTIVATED':
      return (
        `The old ${noun} ${old} of ${user} was deactivated at ${state.deactivation?.deactivatedAt}. ` +
        `${SERVICE_CREDENTIAL_CAVEAT}: a consumer that still used it now fails to connect; switch it to ${fresh}. ` +
        'The old credential will be deleted after the waiting period (until then it can be reactivated).'
      );
    default:
      return outcomeOf(event, state)?.message ?? event;
  }
}

function keySummary(event: NotificationEvent, state: State): string {
  const user = `"${state.userName ?? 'unknown user'}"`;
  switch (event) {
    case 'ROTATION_STARTED':
      return `Rotation of ${user} started: ${state.oldKey?.accessKeyId} will be replaced. ${state.reason ? `Reason: ${state.reason}.` : ''}`.trim();
    case 'NEW_KEY_READY':
      return (
        `A new access key ${state.newKey?.accessKeyId} for ${user} is ready in ${state.secretName} (AWSCURRENT). ` +
        `Switch every consumer to it; the old key ${state.oldKey?.accessKeyId} will be deactivated once it is no longer used.`
      );
    case 'OLD_KEY_STILL_IN_USE':
      return (
        `The old access key ${state.oldKey?.accessKeyId} of ${user} is still in use: last used ` +
        `${state.adoption?.lastUsedDate}${state.adoption?.lastUsedService ? ` by ${state.adoption.lastUsedService}` : ''}` +
        `${state.adoption?.lastUsedRegion ? ` in ${state.adoption.lastUsedRegion}` : ''}` +
        `${state.adoption?.recentCallers?.length ? ` (${state.adoption.recentCallers.join('; ')})` : ''}. ` +
        `Check ${state.adoption?.checks}; switch it to the new key ${state.newKey?.accessKeyId}.`
      );
    case 'KEY_DEACTIVATED':
      return `The old access key ${state.oldKey?.accessKeyId} of ${user} was deactivated at ${state.deactivation?.deactivatedAt}. It will be deleted after the waiting period if it stays unused.`;
    default:
      return outcomeOf(event, state)?.message ?? event;
  }
}

/** The event detail: an explicit list of fields (an allow-list is what keeps secrets out). */
export function detailOf(
  event: NotificationEvent,
  state: State,
  hubAccountId?: string,
): Record<string, unknown> {
  const outcome = outcomeOf(event, state);
  const service = state.serviceName;
  return {
    event,
    // The account the user is in: the plan's, or the hub's when the state names none.
    accountId: accountOf(state, hubAccountId) ?? null,
    userName: state.userName ?? null,
    owner: state.owner ?? null,
    executionId: state.executionId ?? null,
    // A service-specific credential's ids are under names of their own: an old or new "access key id"
    // in an event would mislead every consumer's rule that reads it.
    oldAccessKeyId: service ? null : (state.oldKey?.accessKeyId ?? null),
    oldKeyLastUsedDate: state.adoption?.lastUsedDate ?? state.oldKey?.lastUsedDate ?? null,
    newAccessKeyId: service ? null : (state.newKey?.accessKeyId ?? null),
    ...(service
      ? {
          serviceName: service,
          oldServiceSpecificCredentialId: state.oldKey?.accessKeyId ?? null,
          newServiceSpecificCredentialId: state.newKey?.accessKeyId ?? null,
          serviceUserName: state.newKey?.serviceUserName ?? null,
          lastUseData: 'none',
          lastUseNote: SERVICE_CREDENTIAL_CAVEAT,
        }
      : {}),
    secretArn: state.newKey?.secretArn ?? null,
    adoptionChecks: state.adoption?.checks ?? null,
    recentCallers: state.adoption?.recentCallers ?? null,
    deactivatedAt: state.deactivation?.deactivatedAt ?? null,
    status: outcome?.status ?? null,
    reason: outcome?.reason ?? state.stopReason ?? null,
    message: summary(event, state),
  };
}

/** The account of the rotation: the state's, else (a request that named none) the hub's own. */
function accountOf(state: State, hubAccountId: string | undefined): string | undefined {
  return state.accountId ?? hubAccountId;
}

/**
 * The milestones this invocation announces. A resumed run (the plan set `resumeStage`) announces
 * no start: its rotation started in the run it resumes, which said so then.
 */
export function eventsToSend(input: NotifyInput): NotificationEvent[] {
  return input.events.filter((e) => e !== 'ROTATION_STARTED' || !input.state.resumeStage);
}

export async function notify(
  deps: NotifyDeps,
  input: NotifyInput,
): Promise<Outcome | { published: boolean }> {
  const { state } = input;
  const events = eventsToSend(input);
  // At most the last one is terminal (NotifyInput): its outcome is the invocation's.
  const last = input.events.at(-1) as NotificationEvent;
  const terminal = TERMINAL_EVENTS.includes(last);
  const outcome = outcomeOf(last, state);
  if (state.dryRun) return outcome ?? { published: false };
  try {
    if (events.length > 0) await publish(deps, events, state);
    // Counted once the notification went out: a retried publication is not a second rotation.
    if (outcome) publishMetrics(outcomeMetrics(outcome));
    return outcome ?? { published: events.length > 0 };
  } finally {
    // Every terminal path releases the lock, also when publishing fails (the state machine retries
    // the notification): a user must not stay locked for the whole execution timeout because an
    // alert could not go out.
    if (terminal && state.userName && state.executionId) {
      const subject = lockSubject(state.userName, state.serviceName, {
        accountId: state.accountId,
        hubAccountId: deps.env.REKEY_HUB_ACCOUNT_ID,
      });
      await releaseLock(deps.lock, subject, state.executionId, deps.clock.now());
    }
  }
}

/** One event's SNS subject and body, and its EventBridge entry. */
function messageOf(event: NotificationEvent, state: State, env: NotifyDeps['env']) {
  const detailType = NOTIFICATION_EVENTS[event];
  const detail = detailOf(event, state, env.REKEY_HUB_ACCOUNT_ID);
  const accountId = accountOf(state, env.REKEY_HUB_ACCOUNT_ID);
  const who = `${state.userName ?? 'unknown user'}${state.serviceName ? ` (${state.serviceName})` : ''}`;
  const body = [
    detail.message,
    '',
    ...Object.entries(detail)
      .filter(([k, v]) => v !== null && k !== 'message')
      .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join('; ') : String(v)}`),
  ].join('\n');
  return {
    detailType,
    sns: {
      Subject: `[rekey] ${detailType}: ${who}`.slice(0, 99),
      Message: body,
      MessageAttributes: {
        event: { DataType: 'String', StringValue: event },
        // For a subscription filter policy on the owner (contract/owner.ts) or the account.
        ...(state.owner ? { owner: { DataType: 'String', StringValue: state.owner } } : {}),
        ...(accountId ? { accountId: { DataType: 'String', StringValue: accountId } } : {}),
      },
    },
    entry: {
      Source: 'rekey',
      DetailType: detailType,
      Detail: JSON.stringify(detail),
      EventBusName: env.REKEY_EVENT_BUS_NAME,
      Resources: state.newKey?.secretArn ? [state.newKey.secretArn] : [],
    },
  };
}

async function publish(deps: NotifyDeps, events: NotificationEvent[], state: State): Promise<void> {
  const messages = events.map((event) => messageOf(event, state, deps.env));
  const batch = await deps.sns.send(
    new PublishBatchCommand({
      TopicArn: deps.env.REKEY_TOPIC_ARN,
      // Ids only need to be unique within the batch.
      PublishBatchRequestEntries: messages.map((m, i) => ({ Id: String(i), ...m.sns })),
    }),
  );
  const refused = batch.Failed?.[0];
  if (refused) {
    const detailType = messages[Number(refused.Id)]?.detailType ?? 'notification';
    const failure = new Error(`SNS refused the ${detailType} message: ${refused.Code ?? 'unknown'}`);
    // A refusal SNS marks as its own fault is transient: the state machine's retry sends again.
    if (refused.SenderFault === false) failure.name = 'InternalFailure';
    throw failure;
  }
  const put = await deps.eventBridge.send(new PutEventsCommand({ Entries: messages.map((m) => m.entry) }));
  if (put.FailedEntryCount) {
    const index = put.Entries?.findIndex((e) => e.ErrorCode) ?? -1;
    throw new Error(
      `EventBridge rejected the ${messages[index]?.detailType ?? messages[0]?.detailType} event: ${put.Entries?.[index]?.ErrorCode ?? 'unknown'}`,
    );
  }
}
