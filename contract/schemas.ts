/**
 * One schema per state-machine payload. The Lambdas validate what they receive with these; the
 * TypeScript types come from them. The workflow carries key ids, dates, the secret's ARN and
 * version id: never a secret value.
 *
 * A plan with `serviceName` rotates the user's service-specific credential for that service; the
 * key fields (`oldKey`, `newKey`, ...) then hold its ServiceSpecificCredentialId.
 *
 * The state document grows as the execution runs:
 *   PlanRotation      -> the whole document (ResultPath $)
 *   CreateSecondKey   -> $.newKey
 *   VerifyNewKey      -> $.quietSince
 *   CheckLastUsed     -> $.adoption (and, when it found use, a Pass copies $.adoption.quietSince
 *                        to $.quietSince before the next wait)
 *   DeactivateOldKey  -> $.deactivation
 *   Catch             -> $.error
 *   Cleanup (failure) -> $.cleanup (or $.cleanupError)
 *   terminal Notify   -> $.outcome
 *
 * `quietSince` is the rotation's one reference instant Q: the old key must show no use at or after
 * Q (less the last-use grace) to pass the adoption check, the deactivate re-check, the verify step
 * and the delete. It starts at the hand-out and only ever moves forward where that is safe: to the
 * time of an adoption check that found use (a consumer may switch before the next check), or to a
 * resumed run's own start.
 */
import * as z from 'zod/mini';
import { ConsumerPrincipal } from './consumers.ts';
import { AccountId } from './organization.ts';
import './zod-messages.ts';

/** IAM user names: 1-64 of letters, digits and +=,.@_- (IAM's own rule). */
export const UserName = z
  .string({
    error: (issue) => (issue.input === undefined ? 'userName is required' : 'userName must be a string'),
  })
  .check(
    z.minLength(1, 'userName must not be empty'),
    z.maxLength(64, 'userName must be at most 64 characters'),
    z.regex(/^[A-Za-z0-9+=,.@_-]+$/, 'userName may contain only letters, digits and +=,.@_-'),
  );

/**
 * The services whose service-specific credentials rekey rotates (IAM's ServiceName values):
 * Amazon Keyspaces (Cassandra drivers) and CodeCommit (git over HTTPS). Shared by the workflow,
 * the audit and the CLI.
 */
export const SERVICE_NAMES = ['cassandra.amazonaws.com', 'codecommit.amazonaws.com'] as const;
export const ServiceName = z.enum(SERVICE_NAMES, {
  error: () => `serviceName must be one of ${SERVICE_NAMES.join(', ')}`,
});
export type ServiceName = z.infer<typeof ServiceName>;

/**
 * The execution input accepted from the console, the CLI and the audit. Unknown fields are refused.
 * The user name must also make a valid secret name (`<prefix><userName>`), so ',' (valid in IAM,
 * not in Secrets Manager names) is refused here, where the CLI checks it too, before any AWS call.
 */
export const RotationInput = z.strictObject(
  {
    userName: UserName.check(
      z.refine(
        (name) => !name.includes(','),
        "userName contains ',', which Secrets Manager names do not allow",
      ),
    ),
    /** Rotate the user's service-specific credential for this service instead of its access key. */
    serviceName: z.optional(ServiceName),
    /**
     * The account the user is in: a member account of the organization (docs/organizations.md),
     * or the hub's own. Absent: the hub's own.
     */
    accountId: z.optional(AccountId),
    dryRun: z.optional(z.boolean({ error: 'dryRun must be true or false' })),
    reason: z.optional(
      z
        .string({ error: 'reason must be a string' })
        .check(z.maxLength(256, 'reason must be at most 256 characters')),
    ),
  },
  { error: (issue) => (issue.code === 'unrecognized_keys' ? undefined : 'input must be a JSON object') },
);
export type RotationInput = z.infer<typeof RotationInput>;

/**
 * Why `raw` is not a RotationInput, one problem per entry, each naming its field
 * (`userName: userName must not be empty`, `unknown field(s): force`); empty when it is one.
 * The plan step and the CLI report a bad request in these same words.
 */
export function rotationInputProblems(raw: unknown): string[] {
  const result = RotationInput.safeParse(raw);
  if (result.success) return [];
  return result.error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') return `unknown field(s): ${issue.keys.join(', ')}`;
    return issue.path.length ? `${issue.path.join('.')}: ${issue.message}` : issue.message;
  });
}

export const IsoDate = z.iso.datetime({ offset: true });

/**
 * A credential the workflow acts on. For a service-specific credential (the plan carries a
 * `serviceName`) `accessKeyId` holds its ServiceSpecificCredentialId (ACCA...): the state document
 * keeps one shape for both kinds.
 */
export const KeyRef = z.object({
  accessKeyId: z.string().check(z.minLength(16)),
  createDate: IsoDate,
  lastUsedDate: z.optional(z.nullable(IsoDate)),
});
export type KeyRef = z.infer<typeof KeyRef>;

export const STOP_REASONS = [
  'NoAccessKeys',
  'NoActiveKey',
  'TwoActiveKeys',
  'InactiveKeyWasUsed',
  'InactiveUsageUnknown',
  'RotationInProgress',
  'UserExempt',
  'UserProtected',
  'UserOutOfScope',
  'OldKeyStillInUse',
  'InvalidConsumerTag',
] as const;
export const StopReason = z.enum(STOP_REASONS);
export type StopReason = z.infer<typeof StopReason>;

export const NewKey = z.object({
  accessKeyId: z.string().check(z.minLength(16)),
  createDate: IsoDate,
  /** A service-specific credential's user name (e.g. alice-at-123456789012): not a secret. */
  serviceUserName: z.optional(z.string().check(z.minLength(1))),
  secretArn: z.string().check(z.minLength(1)),
  /** The secret version that holds the new key (the ClientRequestToken used to write it). */
  versionId: z.string().check(z.minLength(32)),
});
export type NewKey = z.infer<typeof NewKey>;

/** What PlanRotation decides; it becomes the root of the state document. */
export const Plan = z.object({
  userName: UserName,
  /**
   * The account the user is in: the request's, or the hub's own (REKEY_HUB_ACCOUNT_ID) when it
   * names none. Every later step acts in this account (lambdas/shared/member-account.ts).
   */
  accountId: AccountId,
  /** Present only when a service-specific credential is rotated: the kind discriminator of every step. */
  serviceName: z.optional(ServiceName),
  userArn: z.nullable(z.string()),
  dryRun: z.boolean(),
  reason: z.optional(z.string()),
  executionId: z.string().check(z.minLength(1)),
  secretName: z.string().check(z.minLength(1)),
  /**
   * ROTATE: a new key is created. RESUME: a new key rekey made and handed out earlier (AWSCURRENT)
   * is carried on, none is created. STOP: nothing is done.
   */
  action: z.enum(['ROTATE', 'RESUME', 'STOP']),
  /**
   * Where a RESUME re-enters: ADOPTION (both keys active: re-prove the new key, then the adoption
   * checks) or DELETION (the old key already inactive: the verification, then the delete). null
   * otherwise, so the state machine's Choice can always read it.
   */
  resumeStage: z.nullable(z.enum(['ADOPTION', 'DELETION'])),
  stopReason: z.optional(StopReason),
  /** Whether a STOP deserves an alert (two active keys do; an exempt user does not). */
  alert: z.boolean(),
  message: z.string(),
  /** The plan in words, for dry runs and the CLI. */
  steps: z.array(z.string()),
  /** The active key to rotate. */
  oldKey: z.nullable(KeyRef),
  /** An inactive, never-used extra key to delete before creating the new one. */
  extraKey: z.nullable(KeyRef),
  /**
   * A key rekey made that nobody holds, deleted by the create step before it makes the new one:
   * active, never used and without a stored secret, left by a crashed create; or recorded in the
   * journal and never handed out (its secret version never AWSCURRENT).
   */
  orphanKey: z.nullable(KeyRef),
  /** With RESUME: the key handed out earlier (the secret's AWSCURRENT version). */
  newKey: z.optional(NewKey),
  /**
   * The reference instant Q. The plan sets it only when it resumes a rotation (to its own start);
   * otherwise null, and the verify step sets it at the hand-out.
   */
  quietSince: z.nullable(IsoDate),
  /**
   * The principals the user's consumer tag names: they may read this user's secret (besides the
   * configured consumers). ARNs, not secrets. Absent when the tag names nobody.
   */
  consumers: z.optional(z.array(ConsumerPrincipal)),
  /** The user's owner, from its owner tag (contract/owner.ts): on every notification and event. */
  owner: z.optional(z.string().check(z.minLength(1), z.maxLength(254))),
});
export type Plan = z.infer<typeof Plan>;

export const PlanInput = z.object({
  input: z.unknown(),
  executionId: z.string().check(z.minLength(1)),
});
export type PlanInput = z.infer<typeof PlanInput>;

export const Adoption = z.object({
  /** How many times CheckLastUsed has looked at the old key. */
  checks: z.int().check(z.nonnegative()),
  inUse: z.boolean(),
  lastUsedDate: z.nullable(IsoDate),
  lastUsedService: z.nullable(z.string()),
  lastUsedRegion: z.nullable(z.string()),
  /** Who/where from CloudTrail, when enabled and found (source IPs, user agents, event names). */
  recentCallers: z.optional(z.array(z.string())),
  /** Whether another check is allowed (checks < maxAdoptionChecks). */
  mayWaitAgain: z.boolean(),
  /**
   * Q after this check: the check's own time when it found use (the consumer may switch before the
   * next check, so only uses from then on can keep the old key "in use"); else Q unchanged.
   */
  quietSince: IsoDate,
  /**
   * false for service-specific credentials: IAM keeps no last-used data for them, so `inUse`
   * false means "no evidence of use", not "unused"; the adoption wait is what the rotation relies on.
   */
  lastUseTracked: z.optional(z.boolean()),
});
export type Adoption = z.infer<typeof Adoption>;

export const Deactivation = z.object({ deactivatedAt: IsoDate });
export type Deactivation = z.infer<typeof Deactivation>;

export const TaskError = z.object({ Error: z.string(), Cause: z.optional(z.string()) });

/** How an execution ended, as Step Functions' "Execution Status Change" events say it. */
export const ENDED_STATUSES = ['FAILED', 'ABORTED', 'TIMED_OUT'] as const;

/**
 * The cleanup's event: from the failure path of the state machine (status FAILED, the execution
 * still running its failure report), or from the EventBridge rule on the state machine's status
 * changes (the rule's input transformer builds this shape from the event's detail).
 */
export const CleanupInput = z.object({
  executionArn: z.string().check(z.minLength(1)),
  status: z.enum(ENDED_STATUSES),
  /** The execution's input as JSON text, as the status change event carries it. */
  input: z.nullable(z.string()),
});
export type CleanupInput = z.infer<typeof CleanupInput>;

export const CleanupResult = z.object({
  /** Whether the ended execution held the lock (only then does the cleanup touch anything). */
  acted: z.boolean(),
  releasedLock: z.boolean(),
  /** A key the execution created and never handed out: deleted. */
  removedKeyIds: z.array(z.string()),
  /** The key the execution created and handed out (AWSCURRENT): kept, a new run resumes with it. */
  keptKeyId: z.nullable(z.string()),
  message: z.string(),
});
export type CleanupResult = z.infer<typeof CleanupResult>;

/** The state document after planning, as later steps see it. */
export const RotationState = z.extend(Plan, {
  newKey: z.optional(NewKey),
  adoption: z.optional(Adoption),
  deactivation: z.optional(Deactivation),
  error: z.optional(TaskError),
  /** What the failure path's cleanup did, or why it could not run. */
  cleanup: z.optional(CleanupResult),
  cleanupError: z.optional(TaskError),
});
export type RotationState = z.infer<typeof RotationState>;

/** Step inputs: the state document with the fields that step cannot work without. */
export const CreateSecondKeyInput = z.extend(RotationState, { oldKey: KeyRef });
export const VerifyNewKeyInput = z.extend(RotationState, { newKey: NewKey });
export const CheckLastUsedInput = z.extend(RotationState, {
  oldKey: KeyRef,
  newKey: NewKey,
  quietSince: IsoDate,
});
export const DeactivateInput = z.extend(RotationState, {
  oldKey: KeyRef,
  newKey: NewKey,
  quietSince: IsoDate,
});
/** No `deactivation`: a resumed run finds the old key already inactive and never deactivated it. */
export const VerifyRotationInput = z.extend(RotationState, {
  oldKey: KeyRef,
  newKey: NewKey,
  quietSince: IsoDate,
});
export const ReactivateInput = z.extend(RotationState, { oldKey: KeyRef });

/**
 * The delete step removes the extra inactive key before a rotation (it must never have been used);
 * the old key is deleted by the verify-rotation step, right after its checks.
 */
export const DeleteKeyInput = z.object({
  userName: UserName,
  /** The account the user is in (the plan's). */
  accountId: AccountId,
  accessKeyId: z.string().check(z.minLength(16)),
  /**
   * The key must not have been used at or after this instant (less the grace), such as a
   * rotation's quiet-since instant Q; null: it must never have been used (the extra key, which is
   * how the workflow calls it).
   */
  notUsedSince: z.nullable(IsoDate),
});
export type DeleteKeyInput = z.infer<typeof DeleteKeyInput>;

export const NOTIFICATION_EVENTS = {
  ROTATION_STARTED: 'Access Key Rotation Started',
  NEW_KEY_READY: 'New Access Key Ready',
  OLD_KEY_STILL_IN_USE: 'Old Access Key Still In Use',
  KEY_DEACTIVATED: 'Access Key Deactivated',
  ROTATION_COMPLETED: 'Access Key Rotation Completed',
  ROTATION_STOPPED: 'Access Key Rotation Stopped',
  ROTATION_FAILED: 'Access Key Rotation Failed',
  ROLLED_BACK: 'Access Key Rolled Back',
} as const;
export type NotificationEvent = keyof typeof NOTIFICATION_EVENTS;
export const NotificationEvent = z.enum(
  Object.keys(NOTIFICATION_EVENTS) as [NotificationEvent, ...NotificationEvent[]],
);

/** Events after which the execution ends: the notify step releases the user's lock. */
export const TERMINAL_EVENTS: readonly NotificationEvent[] = [
  'ROTATION_COMPLETED',
  'ROTATION_STOPPED',
  'ROTATION_FAILED',
  'ROLLED_BACK',
];

/**
 * A notification may be sent from any point, including the failure path right after planning
 * failed, when the state is still the raw request: every field but the user name is optional.
 * `events` are the milestones one notify invocation announces, in order: one SNS message and one
 * EventBridge entry each, sent in one PublishBatch and one PutEvents (both take up to 10). At most
 * one of them is terminal, and it comes last.
 */
export const NotifyInput = z.object({
  events: z.array(NotificationEvent).check(
    z.minLength(1, 'events must name at least one event'),
    z.maxLength(10, 'events may name at most 10 events (one PublishBatch, one PutEvents)'),
    z.refine(
      (events) => events.slice(0, -1).every((e) => !TERMINAL_EVENTS.includes(e)),
      'only the last of the events may be terminal',
    ),
  ),
  state: z.extend(z.partial(RotationState), { userName: z.optional(z.string()) }),
});
export type NotifyInput = z.infer<typeof NotifyInput>;

export const OUTCOME_STATUSES = ['ROTATED', 'STOPPED', 'FAILED', 'ROLLED_BACK', 'DRY_RUN'] as const;
export const Outcome = z.object({
  status: z.enum(OUTCOME_STATUSES),
  reason: z.optional(z.string()),
  message: z.string(),
});
export type Outcome = z.infer<typeof Outcome>;
