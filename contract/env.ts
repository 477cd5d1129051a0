/**
 * The environment contract between the CDK stack (which sets these variables) and the Lambdas
 * (which validate them once, at cold start). Keys and defaults live here only; infra imports the
 * type so a renamed variable fails to compile on both sides.
 */
import * as z from 'zod/mini';
import { ConsumerPrincipal } from './consumers.ts';
import { ConfigurationError } from './errors.ts';
import './zod-messages.ts';

const intFrom = (min: number, max: number) =>
  z.coerce.number().check(z.int(), z.minimum(min), z.maximum(max));
const boolFrom = z.pipe(
  z.enum(['true', 'false']),
  z.transform((v) => v === 'true'),
);
const listFrom = z.pipe(
  z.string(),
  z.transform((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
  ),
);
/** `schema`, or `value` when the variable is unset. */
const orDefault = z._default;

/**
 * The most attempts the audit makes of one rotation. One digit, so that the attempt suffix of an
 * execution name (`-<n>`) is at most two characters: the names of every attempt fit Step
 * Functions' 80 (lambdas/audit/actions.ts executionNameFor).
 */
export const MAX_ROTATION_ATTEMPTS = 9;

export const RekeyEnvSchema = z.object({
  /** Secrets are named `<prefix><userName>`. */
  REKEY_SECRET_PREFIX: orDefault(z.string().check(z.regex(/^[A-Za-z0-9/_+=.@-]*$/)), 'rekey/'),
  /** The customer-managed KMS key that encrypts the secrets. */
  REKEY_KMS_KEY_ID: z.string().check(z.minLength(1)),
  /**
   * Comma-separated IAM user or role ARNs that may read every secret besides its own user
   * (never an account root: see consumers.ts).
   */
  REKEY_CONSUMER_PRINCIPALS: orDefault(z.pipe(listFrom, z.array(ConsumerPrincipal)), []),
  /** The user tag naming who may read that user's secret; unset, per-user consumers are off. */
  REKEY_CONSUMER_TAG: z.optional(z.string().check(z.minLength(1))),
  /**
   * Comma-separated ARNs of the roles of rekey's verify steps, the only rekey principals that read
   * a secret. The stack always sets it; unset (a local run), a secret's policy denies nobody.
   */
  REKEY_SECRET_READER_ROLES: z.optional(listFrom),
  REKEY_TOPIC_ARN: z.string().check(z.startsWith('arn:')),
  REKEY_EVENT_BUS_NAME: orDefault(z.string().check(z.minLength(1)), 'default'),
  /** DynamoDB table holding one rotation lock per user. */
  REKEY_LOCK_TABLE: z.string().check(z.minLength(1)),
  /** How long a lock is honoured if its execution never releases it (the state machine timeout). */
  REKEY_LOCK_TTL_SECONDS: orDefault(intFrom(60, 400 * 86400), 60 * 86400),
  /** A user carrying this tag is not rotated while the exemption holds (see lambdas/shared/exemption.ts). */
  REKEY_EXEMPT_TAG: orDefault(z.string().check(z.minLength(1)), 'rekey:exempt'),
  /** The user tag naming the user's owner, on every finding, notification and event (contract/owner.ts). */
  REKEY_OWNER_TAG: orDefault(z.string().check(z.minLength(1)), 'rekey:owner'),
  /** Comma-separated user names rekey must never touch (break-glass, automation). */
  REKEY_PROTECTED_USERS: orDefault(listFrom, []),
  /** Only users under this IAM path are touched. */
  REKEY_USER_PATH_PREFIX: orDefault(z.string().check(z.regex(/^\/([\x21-\x7e]*\/)?$/)), '/'),
  /** When set, only users carrying this tag are touched. */
  REKEY_OPT_IN_TAG: z.optional(z.string()),
  REKEY_MAX_ADOPTION_CHECKS: orDefault(intFrom(1, 100), 3),
  /**
   * Key last-use times are compared with this much slack, in the safe direction: a use up to
   * this many seconds before the reference instant counts as "after" it. IAM records last use at
   * 15-minute granularity, so less than 900 is a misconfiguration, refused at cold start.
   */
  REKEY_LAST_USED_GRACE_SECONDS: orDefault(intFrom(900, 86400), 900),
  /** The new key is tried this many times (IAM is eventually consistent) before it is discarded. */
  REKEY_VERIFY_ATTEMPTS: orDefault(intFrom(1, 20), 6),
  REKEY_VERIFY_BASE_DELAY_MS: orDefault(intFrom(0, 60_000), 1000),
  /** Look up CloudTrail for who still uses the old key (2 requests/s per account: keep it modest). */
  REKEY_CLOUDTRAIL_LOOKUP: orDefault(boolFrom, false),
  /**
   * How long the cleanup waits after an aborted or timed-out execution before it looks: the
   * longest a step's Lambda can still be running (Step Functions does not stop it). No default:
   * the stack sets the real value; the local runner, which waits for its steps itself, sets 0.
   */
  REKEY_CLEANUP_SETTLE_SECONDS: intFrom(0, 900),

  // AWS Organizations (contract/organization.ts, docs/organizations.md).
  /** The hub's own account: the Lambdas act there with their own roles. Set by the stack. */
  REKEY_HUB_ACCOUNT_ID: z.optional(z.string().check(z.regex(/^\d{12}$/, 'must be 12 digits'))),
  /**
   * Member roles are named `<prefix><lambda>`. Set only with `organization`: unset, no account
   * other than the hub's may be named.
   */
  REKEY_MEMBER_ROLE_PREFIX: z.optional(z.string().check(z.regex(/^[A-Za-z0-9+=,.@_-]{1,40}$/))),
  /** Where a member account's secrets live: `member` (its own Secrets Manager; unset means this) or `hub`. */
  REKEY_SECRETS_LOCATION: z.optional(z.enum(['member', 'hub'])),
  /** The organization (`o-...`) whose member accounts may be named. */
  REKEY_ORGANIZATION_ID: z.optional(z.string().check(z.regex(/^o-[a-z0-9]{10,32}$/))),
  /**
   * The accounts in scope: JSON of contract/organization.ts AccountScope, parsed where it is
   * used (accountScopeFrom), so that the Lambdas that never read it do not bundle its schema.
   */
  REKEY_ORGANIZATION_SCOPE: z.optional(z.string().check(z.minLength(2))),
  /**
   * The organization audit's results table (one item per run and account, contract/tables.ts).
   * Set by the stack only with `organization`; the audit's `account` and `aggregate` modes need it.
   */
  REKEY_ORGANIZATION_RESULTS_TABLE: z.optional(z.string().check(z.minLength(1))),

  // The scheduled audit (lambdas/audit; ages and idle times are whole days, see lambdas/audit/findings.ts).
  /** An active key older than this many days is OLD_KEY (IAM.3: "rotated every 90 days or less"). */
  REKEY_MAX_KEY_AGE_DAYS: orDefault(intFrom(1, 3650), 90),
  /** An active key not used for this many days or more (never used: created that long ago) is UNUSED_KEY. */
  REKEY_UNUSED_DAYS: orDefault(intFrom(1, 3650), 45),
  /** A key that turns OLD within this many days is EXPIRING_KEY (0 turns the warning off). */
  REKEY_WARN_DAYS: orDefault(intFrom(0, 3650), 14),
  /** The audit starts the rotation state machine for OLD_KEY findings. */
  REKEY_AUTO_ROTATE: orDefault(boolFrom, true),
  /**
   * At most this many rotation starts, new ones and retries alike (and, with the opt-in policy,
   * deactivations) per audit run.
   */
  REKEY_MAX_ROTATIONS_PER_RUN: orDefault(intFrom(0, 1000), 25),
  /**
   * Executions the audit starts for one old key before it gives up: a FAILED, ABORTED or
   * TIMED_OUT attempt is started again (one attempt per run) until this many have ended so.
   */
  REKEY_MAX_ROTATION_ATTEMPTS: orDefault(intFrom(1, MAX_ROTATION_ATTEMPTS), 3),
  /** Opt-in: the audit deactivates active keys unused for longer than REKEY_DEACTIVATE_UNUSED_AFTER_DAYS. */
  REKEY_DEACTIVATE_UNUSED: orDefault(boolFrom, false),
  REKEY_DEACTIVATE_UNUSED_AFTER_DAYS: orDefault(intFrom(1, 3650), 90),
  /** Opt-in: findings are imported into Security Hub (ASFF) and resolved when they clear. */
  REKEY_SECURITY_HUB: orDefault(boolFrom, false),
  /**
   * The audit also lists the service-specific credentials (Amazon Keyspaces, CodeCommit) of all
   * users. Off only where IAM's ListServiceSpecificCredentials is missing (the local emulator).
   */
  REKEY_AUDIT_SERVICE_CREDENTIALS: orDefault(boolFrom, true),
  /**
   * The audit's key-id cache table (lambdas/audit/key-id-cache.ts). The stack always sets it;
   * unset (`rekey audit`, a local run), every user with a finding costs one ListAccessKeys.
   */
  REKEY_KEY_ID_CACHE_TABLE: z.optional(z.string().check(z.minLength(1))),
  /**
   * Opt-in (auditReports): the S3 bucket each audit run writes its HTML and CSV report to, under
   * AUDIT_REPORT_PREFIX (contract/functions.ts). Unset: no report is written.
   */
  REKEY_REPORT_BUCKET: z.optional(z.string().check(z.regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/))),
  /** The rotation state machine the audit starts (no default: required where it is read). */
  REKEY_STATE_MACHINE_ARN: z
    .string()
    .check(
      z.regex(
        /^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$/,
        'must be a Step Functions state machine ARN',
      ),
    ),
});
export type RekeyEnv = z.infer<typeof RekeyEnvSchema>;
/** What the stack writes: every variable as a string. */
export type RekeyEnvVars = { [K in keyof RekeyEnv]?: string };
export type RekeyEnvKey = keyof RekeyEnv;

/**
 * Validate the variables one Lambda needs. Throws ConfigurationError naming every bad variable.
 * Call at module scope so a broken deployment fails at cold start, not half-way through a step.
 */
export function loadEnv<K extends RekeyEnvKey>(
  keys: readonly K[],
  source: Record<string, string | undefined> = process.env,
): Pick<RekeyEnv, K> {
  const mask: Partial<Record<RekeyEnvKey, true>> = Object.fromEntries(keys.map((k) => [k, true]));
  const result = z.pick(RekeyEnvSchema, mask).safeParse(source);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigurationError(`invalid environment: ${problems}`);
  }
  return result.data as unknown as Pick<RekeyEnv, K>;
}
