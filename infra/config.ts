/**
 * The deployment's configuration: cdk.json context key `rekey` (an object) over the defaults
 * below, validated once. Pure TypeScript + zod on purpose: the local CLI runner imports
 * `loadConfig` and `lambdaEnvironment` to give the handlers exactly the environment the stack
 * gives the deployed Lambdas, without loading aws-cdk-lib.
 */
import * as z from 'zod';
import { ConsumerPrincipal } from '../contract/consumers.ts';
import { MAX_ROTATION_ATTEMPTS, type RekeyEnvVars } from '../contract/env.ts';
import type { AuditEnvKey } from '../contract/functions.ts';
import { STEP_NAMES, STEPS, type StepName, type StepSpec } from '../contract/functions.ts';
import {
  type AccountScope,
  DEFAULT_MEMBER_ROLE_PREFIX,
  ORGANIZATION_ID_PATTERN,
  ORGANIZATIONAL_UNIT_PATTERN,
  SECRETS_LOCATIONS,
} from '../contract/organization.ts';
import { UserName } from '../contract/schemas.ts';
import { worstCaseCallMs } from '../lambdas/shared/clients/config.ts';

const DAY_SECONDS = 86_400;
/** A Standard workflow execution may run for at most one year. */
const MAX_EXECUTION_DAYS = 365;
/** The longest timeout Lambda allows. */
export const MAX_LAMBDA_TIMEOUT_SECONDS = 900;
/** IAM's last-used resolution, in seconds: the least grace any last-use comparison may have. */
export const MIN_LAST_USED_GRACE_SECONDS = 900;

/** The runbook the alarms link to by default: its path in this repository. */
export const DEFAULT_RUNBOOK_URL = 'docs/operations.md';

/** The retention periods CloudWatch Logs accepts (aws-logs RetentionDays; 9999 = never expire). */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
  9999,
] as const;

const int = (min: number, max: number) => z.int().min(min).max(max);

/** Accounts and organizational units (or the root), for `organization.include` / `exclude`. */
const AccountsAndUnits = z
  .strictObject({
    accounts: z.array(z.string().regex(/^\d{12}$/, 'must be an account id of 12 digits')).default([]),
    organizationalUnits: z
      .array(
        z.string().regex(ORGANIZATIONAL_UNIT_PATTERN, 'must be an OU id (ou-...) or the root id (r-...)'),
      )
      .default([]),
  })
  .default({ accounts: [], organizationalUnits: [] });

/**
 * Organizations: the hub (this stack) rotates and audits IAM users of member accounts through the
 * member roles a StackSet deploys (docs/organizations.md).
 */
export const OrganizationConfigSchema = z.strictObject({
  /** The organization (`o-...`): every member role trusts only principals inside it. */
  organizationId: z.string().regex(ORGANIZATION_ID_PATTERN, 'must be an organization id (o-...)'),
  /**
   * Member roles are named `<memberRolePrefix><lambda>` (contract/organization.ts). At most 40
   * characters, so that the longest name fits IAM's 64.
   * @default 'rekey-member-'
   */
  memberRolePrefix: z
    .string()
    .min(1)
    .max(40)
    .regex(/^[A-Za-z0-9+=,.@_-]+$/, 'may contain only letters, digits and +=,.@_-')
    .default(DEFAULT_MEMBER_ROLE_PREFIX),
  /** Accounts and OUs in scope; both empty: the whole organization. */
  include: AccountsAndUnits,
  /** Accounts and OUs left out (an exclusion wins). */
  exclude: AccountsAndUnits,
  /**
   * Where a member account's secrets live: `member` (next to their consumers, encrypted with the
   * member stack's KMS key) or `hub` (consumers read them across accounts).
   * @default 'member'
   */
  secrets: z.enum(SECRETS_LOCATIONS).default('member'),
  /**
   * The OUs (or the root) the member StackSet deploys to, automatically for every account that
   * joins them. Required: the StackSet needs its targets.
   */
  stackSetTargets: z
    .array(z.string().regex(ORGANIZATIONAL_UNIT_PATTERN, 'must be an OU id (ou-...) or the root id (r-...)'))
    .min(1),
  /**
   * The region the StackSet deploys the member stack to: one, since the member roles' names are
   * global (a second region's stack instance could not create them again); with `secrets: member`
   * the hub's region, where the member secrets key must be.
   */
  stackSetRegions: z
    .array(z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be a region name'))
    .min(1)
    .max(1, 'must name one region: the member roles have fixed names, and IAM names are global'),
  /**
   * Who creates the StackSet: `DELEGATED_ADMIN` when the hub is the StackSets delegated
   * administrator, `SELF` when the hub is the organization's management account.
   * @default 'DELEGATED_ADMIN'
   */
  stackSetCallAs: z.enum(['DELEGATED_ADMIN', 'SELF']).default('DELEGATED_ADMIN'),
  /**
   * How many accounts the organization audit's Map audits at once.
   * @default 10
   */
  auditConcurrency: int(1, 40).default(10),
});
export type OrganizationConfig = z.infer<typeof OrganizationConfigSchema>;

export const RekeyConfigSchema = z
  .strictObject({
    /**
     * Days consumers get to switch to the new key before the old key's last use is checked.
     * @default 7
     */
    adoptionWaitDays: int(1, 90).default(7),
    /**
     * How many times the old key's last use is checked (each after an adoption wait) before the
     * rotation stops safely with both keys active.
     * @default 3
     */
    maxAdoptionChecks: int(1, 100).default(3),
    /**
     * Days an old key stays deactivated (and must stay unused) before it is deleted.
     * @default 7
     */
    deleteAfterDays: int(1, 90).default(7),
    /**
     * Secrets are named `<secretPrefix><userName>`; rekey's IAM permissions cover this prefix only.
     * @default 'rekey/'
     */
    secretPrefix: z
      .string()
      .min(1)
      .max(256)
      .regex(/^[A-Za-z0-9/_+=.@-]+$/, 'may contain only letters, digits and /_+=.@-')
      .default('rekey/'),
    /**
     * Users carrying this tag are not rotated.
     * @default 'rekey:exempt'
     */
    exemptTag: z.string().min(1).max(128).default('rekey:exempt'),
    /**
     * The user tag naming who owns the user's keys (an email address or a team id): every finding,
     * notification and event for that user carries it, and SNS messages carry it as the message
     * attribute `owner` for subscription filter policies.
     * @default 'rekey:owner'
     */
    ownerTag: z.string().min(1).max(128).default('rekey:owner'),
    /**
     * Users rekey must never touch (break-glass, automation). Passed to the Lambdas comma-joined,
     * so a name containing a comma (legal in IAM) is refused here rather than split there.
     * @default []
     */
    protectedUsers: z
      .array(UserName.check(z.refine((v: string) => !v.includes(','), 'must not contain a comma')))
      .default([]),
    /**
     * Email addresses subscribed to the notifications topic (each must confirm the subscription).
     * @default []
     */
    notificationEmails: z.array(z.email('must be an email address')).default([]),
    /**
     * Only users under this IAM path are touched; rekey's IAM permissions are scoped to it.
     * @default '/'
     */
    userPathPrefix: z
      .string()
      .regex(/^\/([\x21-\x7e]*\/)?$/, "must start and end with '/' (e.g. '/' or '/ci/')")
      .default('/'),
    /**
     * When set, only users carrying this tag are touched.
     * @default - every user under userPathPrefix
     */
    optInTag: z.string().min(1).max(128).optional(),
    /**
     * Slack, in seconds, when comparing a key's last use with the rotation's reference instant:
     * a use up to this long before it counts as at or after it. IAM records last use at
     * 15-minute granularity (the credential report: "only the first use in a 15-minute span") and
     * documents no delivery bound for GetAccessKeyLastUsed, so less than 900 is refused.
     * @default 900
     */
    lastUsedGraceSeconds: int(MIN_LAST_USED_GRACE_SECONDS, DAY_SECONDS).default(MIN_LAST_USED_GRACE_SECONDS),
    /**
     * How many times the new key is tried while IAM propagates it before it is discarded
     * (delays 1+2+4+8+16 s with the default base: ~31 s, above the 4-15 s reported for IAM).
     * @default 6
     */
    verifyAttempts: int(1, 20).default(6),
    /**
     * First delay, in milliseconds, between attempts to use the new key (then backing off).
     * @default 1000
     */
    verifyBaseDelayMs: int(0, 60_000).default(1000),
    /**
     * Look up CloudTrail for who still uses the old key (adds cloudtrail:LookupEvents).
     * @default false
     */
    cloudTrailLookup: z.boolean().default(false),
    /**
     * Retention of every rekey log group, in days (a value CloudWatch Logs accepts; 9999 = never).
     * @default 365
     */
    logRetentionDays: z
      .number()
      .refine((v) => (LOG_RETENTION_DAYS as readonly number[]).includes(v), {
        message: `must be one of ${LOG_RETENTION_DAYS.join(', ')}`,
      })
      .default(365),
    /**
     * Where every CloudWatch alarm's description points for what to do: the runbook, each alarm
     * linking to its own section as `<runbookBaseUrl>#<alarm name without the stack prefix>`. The
     * default is the runbook's path in this repository (docs/operations.md), a relative reference
     * a reader resolves against their checkout; a fork or an internal wiki can point it at its own
     * copy, e.g. `https://github.com/<owner>/rekey/blob/main/docs/operations.md`.
     * @default 'docs/operations.md'
     */
    runbookBaseUrl: z
      .string()
      .min(1)
      .max(512)
      .regex(/^[^\s#]+$/, 'must be a URL or path without spaces and without a #fragment')
      .default(DEFAULT_RUNBOOK_URL),
    /**
     * IAM user or role ARNs that may read every stored secret (the consumers of all rotated
     * keys), in this account or another; each is also named in the secrets key's policy. An
     * account root is refused: it would stand for every principal of its account.
     * @default []
     */
    consumerPrincipals: z.array(ConsumerPrincipal).default([]),
    /**
     * The user tag naming who may read that user's secret (and no other): IAM user or role ARNs
     * of the user's account, separated by spaces. `false` turns per-user consumers off (the key
     * policy then lets only the users under userPathPrefix decrypt, besides consumerPrincipals).
     * @default 'rekey:consumers'
     */
    consumerTag: z.union([z.string().min(1).max(128), z.literal(false)]).default('rekey:consumers'),

    // The scheduled audit (infra/constructs/audit.ts). Ages and idle times are whole days; the
    // exact boundaries are in lambdas/audit/findings.ts.
    /**
     * When the audit runs: an EventBridge Scheduler expression, `cron(minutes hours day-of-month
     * month day-of-week year)` with one of the two day fields `?`, read in auditScheduleTimezone;
     * or `rate(N minutes|hours|days)`.
     * @default 'cron(0 6 * * ? *)' (every day at 06:00)
     */
    auditSchedule: z
      .string()
      .regex(
        /^(cron\((\S+ ){2}(\? \S+ (?!\?)\S+|(?!\?)\S+ \S+ \?) \S+\)|rate\([1-9]\d* (minute|hour|day)s?\))$/,
        "must be cron(minutes hours day-of-month month day-of-week year) with one day field '?', or rate(N unit)",
      )
      .default('cron(0 6 * * ? *)'),
    /**
     * The IANA time zone the cron expression is read in (daylight saving time is followed).
     * @default 'UTC'
     */
    auditScheduleTimezone: z
      .string()
      .refine((v) => {
        if (!/^(UTC|[A-Za-z]+(\/[A-Za-z0-9_+-]+)+)$/.test(v)) return false;
        try {
          return new Intl.DateTimeFormat('en', { timeZone: v }).resolvedOptions().timeZone.length > 0;
        } catch {
          return false;
        }
      }, 'must be an IANA time zone such as UTC or Europe/Berlin')
      .default('UTC'),
    /**
     * An active key older than this many days is OLD_KEY (Security Hub IAM.3: rotated every 90
     * days or less, so 90 days old is still compliant).
     * @default 90
     */
    maxKeyAgeDays: int(1, 3650).default(90),
    /**
     * An active key not used for this many days or more (never used: created that long ago) is
     * UNUSED_KEY (Security Hub IAM.22: unused for 45 days or more).
     * @default 45
     */
    unusedDays: int(1, 3650).default(45),
    /**
     * An active key that turns OLD_KEY within this many days is EXPIRING_KEY; 0 turns it off.
     * @default 14
     */
    warnDays: int(0, 3650).default(14),
    /**
     * The audit starts the rotation state machine for OLD_KEY findings (grants the audit
     * states:StartExecution and states:DescribeExecution on the rotation state machine only).
     * @default true
     */
    autoRotate: z.boolean().default(true),
    /**
     * At most this many rotation starts per audit run, new rotations and retries of failed ones
     * alike (and, with deactivateUnused, as many deactivations); the oldest keys go first, the
     * rest wait for the next run.
     * @default 25
     */
    maxRotationsPerRun: int(0, 1000).default(25),
    /**
     * How many executions the audit starts for one old key. An attempt that ended FAILED, ABORTED
     * or TIMED_OUT is followed, at the next run, by a new one named `<first attempt's name>-<n>`;
     * after this many such attempts the audit reports the rotation as still failing (digest and an
     * "Access Key Rotation Still Failing" event) and starts no more. At most 9.
     * @default 3
     */
    maxRotationAttempts: int(1, MAX_ROTATION_ATTEMPTS).default(3),
    /**
     * Opt-in: the audit deactivates active keys unused for more than deactivateUnusedAfterDays,
     * after re-reading their last use (grants iam:GetAccessKeyLastUsed and iam:UpdateAccessKey).
     * @default false
     */
    deactivateUnused: z.boolean().default(false),
    /**
     * With deactivateUnused: an UNUSED_KEY idle for more than this many days is deactivated.
     * Only UNUSED_KEY findings are considered, so a value below unusedDays acts as unusedDays - 1.
     * @default 90
     */
    deactivateUnusedAfterDays: int(1, 3650).default(90),
    /**
     * Opt-in: findings go to Security Hub (ASFF, controls IAM.3, IAM.8, IAM.22, IAM.4) and are
     * resolved there when they clear (grants securityhub:BatchImportFindings and GetFindings).
     * @default false
     */
    securityHub: z.boolean().default(false),
    /**
     * The audit also reports old service-specific credentials (Amazon Keyspaces, CodeCommit) and
     * rotates them with autoRotate (grants iam:ListServiceSpecificCredentials on the account's
     * users). Turn it off where the API is missing, e.g. a local emulator.
     * @default true
     */
    auditServiceCredentials: z.boolean().default(true),
    /**
     * Opt-in: the stack gets an S3 bucket of audit reports, and each audit run writes its HTML and
     * CSV report there (grants s3:PutObject on the bucket's report prefix); the digest links to them.
     * @default false
     */
    auditReports: z.boolean().default(false),
    /**
     * AWS Organizations: rotate and audit the member accounts of an organization from this hub.
     * Absent: this account only.
     * @default - none
     */
    organization: OrganizationConfigSchema.optional(),
    /**
     * With auditReports: a report is deleted this many days after it was written (the bucket's
     * lifecycle rule).
     * @default 400
     */
    auditReportsRetentionDays: int(1, 3650).default(400),
  })
  .superRefine((c, ctx) => {
    // One tag, one meaning: the value of an opt-in or exemption tag is no list of consumers.
    for (const other of ['exemptTag', 'optInTag'] as const) {
      if (c.consumerTag !== false && c.consumerTag === c[other]) {
        ctx.addIssue({ code: 'custom', path: ['consumerTag'], message: `must differ from ${other}` });
      }
    }
    for (const other of ['exemptTag', 'optInTag', 'consumerTag'] as const) {
      if (c.ownerTag === c[other]) {
        ctx.addIssue({ code: 'custom', path: ['ownerTag'], message: `must differ from ${other}` });
      }
    }
    const limit = `a Lambda runs at most ${MAX_LAMBDA_TIMEOUT_SECONDS} s`;
    /** What makes a step run that long, named by the setting that does (the verify loop's). */
    const cause = (step: StepName) =>
      (STEPS[step] as StepSpec).verifyLoop
        ? `verifyAttempts and verifyBaseDelayMs make ${step} run up to ${stepTimeoutSeconds(step, c)} s`
        : `${step} runs up to ${stepTimeoutSeconds(step, c)} s`;
    const waiting = STEP_NAMES.filter((step) => (STEPS[step] as StepSpec).waitsForSteps);
    const others = STEP_NAMES.filter((step) => !waiting.includes(step));
    for (const step of others) {
      if (stepTimeoutSeconds(step, c) <= MAX_LAMBDA_TIMEOUT_SECONDS) continue;
      const spec: StepSpec = STEPS[step];
      ctx.addIssue({
        code: 'custom',
        path: spec.verifyLoop ? ['verifyAttempts'] : [],
        message: `${cause(step)}; ${limit}`,
      });
    }
    // The cleanup's own calls are fixed; what can push it past the limit is the step it waits
    // out, so the issue names that step's setting. A step already over the limit is reported once.
    const longest = others.reduce((a, b) => (stepTimeoutSeconds(b, c) > stepTimeoutSeconds(a, c) ? b : a));
    if (stepTimeoutSeconds(longest, c) <= MAX_LAMBDA_TIMEOUT_SECONDS) {
      for (const step of waiting) {
        const seconds = stepTimeoutSeconds(step, c);
        if (seconds <= MAX_LAMBDA_TIMEOUT_SECONDS) continue;
        ctx.addIssue({
          code: 'custom',
          path: (STEPS[longest] as StepSpec).verifyLoop ? ['verifyAttempts'] : [],
          message: `${cause(longest)}; the ${step} after an aborted or timed-out execution waits that out and runs up to ${seconds} s; ${limit}`,
        });
      }
    }
    const days = executionDays(c);
    if (days > MAX_EXECUTION_DAYS) {
      ctx.addIssue({
        code: 'custom',
        path: ['adoptionWaitDays'],
        message:
          `adoptionWaitDays * maxAdoptionChecks + deleteAfterDays + 1 is ${days} days; a Standard ` +
          `workflow runs at most ${MAX_EXECUTION_DAYS} days`,
      });
    }
  });

export type RekeyConfig = z.infer<typeof RekeyConfigSchema>;

/** What the CDK context exposes (a construct's `node`); structural, so no aws-cdk-lib import. */
export interface ContextSource {
  tryGetContext(key: string): unknown;
}

/** The cdk.json context key holding the configuration object. */
export const CONTEXT_KEY = 'rekey';

/** Read the raw configuration from the CDK context; `-c rekey='{...}'` arrives as a JSON string. */
export function configFromContext(node: ContextSource): unknown {
  const raw = node.tryGetContext(CONTEXT_KEY);
  if (typeof raw !== 'string') return raw ?? {};
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    throw new Error(`invalid rekey configuration: context "${CONTEXT_KEY}" is not a JSON object`);
  }
}

function isContextSource(source: unknown): source is ContextSource {
  return (
    typeof source === 'object' &&
    source !== null &&
    typeof (source as Partial<ContextSource>).tryGetContext === 'function'
  );
}

/**
 * Validate the configuration, from a construct node (reads context `rekey`) or a raw object.
 * Throws an Error naming every invalid field.
 */
export function loadConfig(source: ContextSource | unknown = {}): RekeyConfig {
  const raw = isContextSource(source) ? configFromContext(source) : (source ?? {});
  const result = RekeyConfigSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues
      .map((i) => {
        const field = i.path.length > 0 ? i.path.join('.') : CONTEXT_KEY;
        return i.code === 'unrecognized_keys'
          ? `unknown field(s) ${i.keys.join(', ')}`
          : `${field}: ${i.message}`;
      })
      .join('; ');
    throw new Error(`invalid rekey configuration: ${problems}`);
  }
  return result.data;
}

function executionDays(
  c: Pick<RekeyConfig, 'adoptionWaitDays' | 'maxAdoptionChecks' | 'deleteAfterDays'>,
): number {
  // Every adoption wait may be taken, then the delete wait, plus a day for the steps themselves.
  return c.adoptionWaitDays * c.maxAdoptionChecks + c.deleteAfterDays + 1;
}

/** The state machine's timeout, which is also how long a user's rotation lock is honoured. */
export function stateMachineTimeoutSeconds(config: RekeyConfig): number {
  return executionDays(config) * DAY_SECONDS;
}

/**
 * What a step's Lambda does besides its AWS calls, at most: a cold start whose init outlasts
 * Lambda's 10-s init phase is run again inside the invocation, on its clock; then parsing,
 * logging and the handler's own work, milliseconds.
 */
export const HANDLER_OVERHEAD_SECONDS = 10;

/**
 * The sleeps of the verify loop when every attempt fails: baseDelay * 2^(n-1) between attempts n
 * and n+1 (lambdas/shared/authenticate.ts, lambdas/rotation/verify-new-key/verify-new-key.ts).
 */
export function verifySleepMs(c: Pick<RekeyConfig, 'verifyAttempts' | 'verifyBaseDelayMs'>): number {
  return c.verifyBaseDelayMs * (2 ** (c.verifyAttempts - 1) - 1);
}

/**
 * A step's Lambda timeout: longer than its worst path can take, so that no invocation is killed
 * between a change and its compensation (a key created but neither stored nor deleted). Its
 * sequential calls (STEPS[step].calls, plus one per verify attempt) each take at most
 * worstCaseCallMs of the shared client settings (every attempt hitting its time limits, every
 * retry its longest backoff); the verify loop adds its sleeps; HANDLER_OVERHEAD_SECONDS the rest.
 * Each verify attempt is counted as a shared-client call: more than the single-attempt STS call
 * of an access key, as much as the listing that verifies a service-specific credential.
 */
export function stepTimeoutSeconds(
  step: StepName,
  c: Pick<RekeyConfig, 'verifyAttempts' | 'verifyBaseDelayMs'>,
): number {
  const spec: StepSpec = STEPS[step];
  const calls = spec.calls + (spec.verifyLoop ? c.verifyAttempts : 0);
  const sleepMs = spec.verifyLoop ? verifySleepMs(c) : 0;
  const own = Math.ceil((calls * worstCaseCallMs() + sleepMs) / 1000) + HANDLER_OVERHEAD_SECONDS;
  return own + (spec.waitsForSteps ? cleanupSettleSeconds(c) : 0);
}

/**
 * How long the cleanup waits after an aborted or timed-out execution before it looks at the keys:
 * the longest timeout of the other steps. Step Functions does not stop a Lambda it invoked when an
 * execution is aborted or times out, so a step may still be running (and could still create or
 * hand out a key) for that long.
 */
export function cleanupSettleSeconds(c: Pick<RekeyConfig, 'verifyAttempts' | 'verifyBaseDelayMs'>): number {
  return Math.max(
    ...STEP_NAMES.filter((step) => !(STEPS[step] as StepSpec).waitsForSteps).map((step) =>
      stepTimeoutSeconds(step, c),
    ),
  );
}

/** The deployed resources the Lambdas address (CDK tokens in the stack, real names locally). */
export interface RekeyResources {
  /** The hub's own account (the stack's AWS::AccountId; locally, the emulator's). */
  readonly hubAccountId: string;
  /** Key id or ARN of the customer-managed KMS key that encrypts the secrets. */
  readonly kmsKeyId: string;
  readonly topicArn: string;
  /** Name of the DynamoDB lock table. */
  readonly lockTable: string;
  /**
   * Comma-separated ARNs of the verify steps' roles, the only rekey principals a secret's policy
   * lets read it. Absent in a local run (no deployed roles): the secret's policy then denies nobody.
   */
  readonly secretReaderRoles?: string;
}

/** Every variable a rotation step declares in STEPS (contract/functions.ts). */
export type StepEnvKey = (typeof STEPS)[keyof typeof STEPS]['env'][number];

/** The rotation steps' variables that may be absent: each is left out when it is off or unknown. */
type OptionalStepEnvKey =
  | 'REKEY_OPT_IN_TAG'
  | 'REKEY_CONSUMER_TAG'
  | 'REKEY_SECRET_READER_ROLES'
  | OrganizationEnvKey;

/** Set only with `organization` (organizationEnvironment). */
type OrganizationEnvKey =
  | 'REKEY_MEMBER_ROLE_PREFIX'
  | 'REKEY_SECRETS_LOCATION'
  | 'REKEY_ORGANIZATION_ID'
  | 'REKEY_ORGANIZATION_SCOPE';

/**
 * The variables of AWS Organizations (contract/functions.ts MEMBER_ACCOUNT_ENV and
 * ORGANIZATION_SCOPE_ENV): the hub's account always, the rest only with `organization`.
 */
export function organizationEnvironment(
  config: RekeyConfig,
  hubAccountId: string,
): { REKEY_HUB_ACCOUNT_ID: string } & Pick<RekeyEnvVars, OrganizationEnvKey> {
  const org = config.organization;
  if (!org) return { REKEY_HUB_ACCOUNT_ID: hubAccountId };
  const scope: AccountScope = { include: org.include, exclude: org.exclude };
  return {
    REKEY_HUB_ACCOUNT_ID: hubAccountId,
    REKEY_MEMBER_ROLE_PREFIX: org.memberRolePrefix,
    REKEY_SECRETS_LOCATION: org.secrets,
    REKEY_ORGANIZATION_ID: org.organizationId,
    REKEY_ORGANIZATION_SCOPE: JSON.stringify(scope),
  };
}

/**
 * The rotation steps' environment: every variable set, as a string, except the opt-in tag,
 * which is absent unless configured, the consumer tag, absent when turned off, and the secret
 * reader roles, absent in a local run. A variable added to a step in STEPS fails to compile here
 * until the stack sets it. (Variables of other Lambdas, e.g. the audit's, are not in here.)
 */
export type RotationEnvVars = Required<Pick<RekeyEnvVars, Exclude<StepEnvKey, OptionalStepEnvKey>>> &
  Pick<RekeyEnvVars, OptionalStepEnvKey>;

/** The environment contract (contract/env.ts) of the rotation steps, for this configuration. */
export function lambdaEnvironment(config: RekeyConfig, resources: RekeyResources): RotationEnvVars {
  return {
    REKEY_SECRET_PREFIX: config.secretPrefix,
    REKEY_KMS_KEY_ID: resources.kmsKeyId,
    REKEY_CONSUMER_PRINCIPALS: config.consumerPrincipals.join(','),
    ...(resources.secretReaderRoles === undefined
      ? {}
      : { REKEY_SECRET_READER_ROLES: resources.secretReaderRoles }),
    REKEY_TOPIC_ARN: resources.topicArn,
    REKEY_EVENT_BUS_NAME: 'default',
    REKEY_LOCK_TABLE: resources.lockTable,
    REKEY_LOCK_TTL_SECONDS: String(stateMachineTimeoutSeconds(config)),
    REKEY_EXEMPT_TAG: config.exemptTag,
    REKEY_OWNER_TAG: config.ownerTag,
    REKEY_PROTECTED_USERS: config.protectedUsers.join(','),
    REKEY_USER_PATH_PREFIX: config.userPathPrefix,
    ...(config.optInTag === undefined ? {} : { REKEY_OPT_IN_TAG: config.optInTag }),
    ...(config.consumerTag === false ? {} : { REKEY_CONSUMER_TAG: config.consumerTag }),
    REKEY_MAX_ADOPTION_CHECKS: String(config.maxAdoptionChecks),
    REKEY_LAST_USED_GRACE_SECONDS: String(config.lastUsedGraceSeconds),
    REKEY_VERIFY_ATTEMPTS: String(config.verifyAttempts),
    REKEY_VERIFY_BASE_DELAY_MS: String(config.verifyBaseDelayMs),
    REKEY_CLOUDTRAIL_LOOKUP: String(config.cloudTrailLookup),
    REKEY_CLEANUP_SETTLE_SECONDS: String(cleanupSettleSeconds(config)),
    ...organizationEnvironment(config, resources.hubAccountId),
  };
}

/** What the audit Lambda addresses (CDK tokens in the stack). */
export interface AuditResources {
  /** The hub's own account (the stack's AWS::AccountId). */
  readonly hubAccountId: string;
  readonly topicArn: string;
  /** The rotation state machine; its ARN also names the partition, region and account. */
  readonly stateMachineArn: string;
  /** The key-id cache table (infra/constructs/audit.ts). */
  readonly keyIdCacheTable: string;
  /** The bucket of audit reports, with auditReports (infra/constructs/report-bucket.ts). */
  readonly reportBucket?: string;
  /** The organization audit's results table, with organization (infra/constructs/organization-audit.ts). */
  readonly organizationResultsTable?: string;
}

/**
 * The audit's environment: every AUDIT_ENV variable as a string, the opt-in tag and the report
 * bucket only when set.
 */
export type AuditEnvVars = Required<Pick<RekeyEnvVars, Exclude<AuditEnvKey, OptionalAuditEnvKey>>> &
  Pick<RekeyEnvVars, OptionalAuditEnvKey>;
type OptionalAuditEnvKey =
  | 'REKEY_OPT_IN_TAG'
  | 'REKEY_REPORT_BUCKET'
  | 'REKEY_ORGANIZATION_RESULTS_TABLE'
  | OrganizationEnvKey;

/** The environment contract (contract/functions.ts AUDIT_ENV) of the audit, for this configuration. */
export function auditEnvironment(config: RekeyConfig, resources: AuditResources): AuditEnvVars {
  return {
    REKEY_MAX_KEY_AGE_DAYS: String(config.maxKeyAgeDays),
    REKEY_UNUSED_DAYS: String(config.unusedDays),
    REKEY_WARN_DAYS: String(config.warnDays),
    REKEY_AUTO_ROTATE: String(config.autoRotate),
    REKEY_MAX_ROTATIONS_PER_RUN: String(config.maxRotationsPerRun),
    REKEY_MAX_ROTATION_ATTEMPTS: String(config.maxRotationAttempts),
    REKEY_DEACTIVATE_UNUSED: String(config.deactivateUnused),
    REKEY_DEACTIVATE_UNUSED_AFTER_DAYS: String(config.deactivateUnusedAfterDays),
    REKEY_SECURITY_HUB: String(config.securityHub),
    REKEY_AUDIT_SERVICE_CREDENTIALS: String(config.auditServiceCredentials),
    REKEY_STATE_MACHINE_ARN: resources.stateMachineArn,
    REKEY_TOPIC_ARN: resources.topicArn,
    REKEY_EVENT_BUS_NAME: 'default',
    REKEY_KEY_ID_CACHE_TABLE: resources.keyIdCacheTable,
    REKEY_EXEMPT_TAG: config.exemptTag,
    REKEY_OWNER_TAG: config.ownerTag,
    REKEY_PROTECTED_USERS: config.protectedUsers.join(','),
    REKEY_USER_PATH_PREFIX: config.userPathPrefix,
    ...(config.optInTag === undefined ? {} : { REKEY_OPT_IN_TAG: config.optInTag }),
    ...(config.auditReports && resources.reportBucket ? { REKEY_REPORT_BUCKET: resources.reportBucket } : {}),
    ...organizationEnvironment(config, resources.hubAccountId),
    ...(config.organization && resources.organizationResultsTable
      ? { REKEY_ORGANIZATION_RESULTS_TABLE: resources.organizationResultsTable }
      : {}),
  };
}
