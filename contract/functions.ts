/**
 * Every Lambda of rekey, in one registry: its folder under lambdas/, the environment variables it
 * reads and, for a workflow step, how many AWS calls it makes one after the other on its longest
 * path. The stack creates one function per entry, sets exactly these variables and derives a
 * step's timeout from its call count (infra/config.ts stepTimeoutSeconds); each handler validates
 * the same list at cold start; the local runner binds Tasks to step handlers by the
 * `rekey:handler` metadata the stack writes on each step's function. One list, every user.
 */
import type { RekeyEnvKey } from './env.ts';

/** A Lambda the rotation state machine invokes, in lambdas/rotation/<name>/. */
export interface StepSpec {
  readonly kind: 'step';
  readonly env: readonly RekeyEnvKey[];
  /**
   * Sequential AWS calls on the step's worst path, compensation and error-path reads included
   * (the comment above each entry lists them). Each costs at most worstCaseCallMs of the shared
   * clients (lambdas/shared/clients/config.ts). A list of a user's credentials is one call: a user
   * holds at most two keys (four service-specific credentials), one page.
   */
  readonly calls: number;
  /**
   * How many of `calls` only a run in a member account makes (lambdas/shared/member-account.ts):
   * the AssumeRole of the step's member role, and for the plan its check of the account in
   * Organizations. A run in the hub's own account makes `calls` less these (hubPathCalls).
   */
  readonly memberAccountCalls?: number;
  /**
   * The step also retries the new key in-process: REKEY_VERIFY_ATTEMPTS calls more (an STS call
   * signed with the key, or a listing of the credential), with the backoff sleeps between them.
   */
  readonly verifyLoop?: true;
  /**
   * The Lambda first waits out the longest of the other steps (the cleanup after an aborted or
   * timed-out execution, whose last step may still be running): its timeout adds that wait.
   */
  readonly waitsForSteps?: true;
}

/** A Lambda that runs on its own (a schedule, the console), in lambdas/<name>/. */
export interface StandaloneSpec {
  readonly kind: 'standalone';
  readonly env: readonly RekeyEnvKey[];
}

export type FunctionSpec = StepSpec | StandaloneSpec;

/** What the eligibility re-check (lambdas/shared/eligibility.ts) reads: the plan's rules, asked again before a key change. */
const ELIGIBILITY_ENV = [
  'REKEY_EXEMPT_TAG',
  'REKEY_PROTECTED_USERS',
  'REKEY_USER_PATH_PREFIX',
  'REKEY_OPT_IN_TAG',
] as const satisfies readonly RekeyEnvKey[];

/**
 * What a Lambda that acts in member accounts reads (lambdas/shared/member-account.ts): the hub's
 * account, the member roles' prefix, where member secrets live.
 */
export const MEMBER_ACCOUNT_ENV = [
  'REKEY_HUB_ACCOUNT_ID',
  'REKEY_MEMBER_ROLE_PREFIX',
  'REKEY_SECRETS_LOCATION',
] as const satisfies readonly RekeyEnvKey[];

/** What the plan and the organization audit check a named account against. */
export const ORGANIZATION_SCOPE_ENV = [
  'REKEY_ORGANIZATION_ID',
  'REKEY_ORGANIZATION_SCOPE',
] as const satisfies readonly RekeyEnvKey[];

/** The audit's thresholds and policies: all that decides what it finds and does (the demo uses these). */
export const AUDIT_POLICY_ENV = [
  'REKEY_MAX_KEY_AGE_DAYS',
  'REKEY_UNUSED_DAYS',
  'REKEY_WARN_DAYS',
  'REKEY_AUTO_ROTATE',
  'REKEY_MAX_ROTATIONS_PER_RUN',
  'REKEY_MAX_ROTATION_ATTEMPTS',
  'REKEY_DEACTIVATE_UNUSED',
  'REKEY_DEACTIVATE_UNUSED_AFTER_DAYS',
  'REKEY_SECURITY_HUB',
  'REKEY_AUDIT_SERVICE_CREDENTIALS',
  'REKEY_EXEMPT_TAG',
  'REKEY_OWNER_TAG',
  'REKEY_PROTECTED_USERS',
  'REKEY_USER_PATH_PREFIX',
  'REKEY_OPT_IN_TAG',
] as const satisfies readonly RekeyEnvKey[];

/** The policy plus the deployed resources it acts through. */
export const AUDIT_ENV = [
  ...AUDIT_POLICY_ENV,
  'REKEY_STATE_MACHINE_ARN',
  'REKEY_TOPIC_ARN',
  'REKEY_EVENT_BUS_NAME',
  'REKEY_KEY_ID_CACHE_TABLE',
  'REKEY_REPORT_BUCKET',
  ...MEMBER_ACCOUNT_ENV,
  ...ORGANIZATION_SCOPE_ENV,
  'REKEY_ORGANIZATION_RESULTS_TABLE',
] as const satisfies readonly RekeyEnvKey[];

/**
 * Where in the report bucket the audit writes (`<prefix><account>/<date>/...`): the audit's role
 * may put objects under this prefix only.
 */
export const AUDIT_REPORT_PREFIX = 'audit-reports/';

export type AuditEnvKey = (typeof AUDIT_ENV)[number];

export const FUNCTIONS = {
  plan: {
    kind: 'step',
    env: [
      'REKEY_SECRET_PREFIX',
      'REKEY_LOCK_TABLE',
      'REKEY_LOCK_TTL_SECONDS',
      'REKEY_EXEMPT_TAG',
      'REKEY_PROTECTED_USERS',
      'REKEY_USER_PATH_PREFIX',
      'REKEY_OPT_IN_TAG',
      'REKEY_CONSUMER_TAG',
      'REKEY_OWNER_TAG',
      ...MEMBER_ACCOUNT_ENV,
      ...ORGANIZATION_SCOPE_ENV,
    ],
    // GetUser; DescribeSecret (a secret under the request's spelling of the name); GetItem (lock);
    // ListAccessKeys; GetAccessKeyLastUsed per key (2); DescribeSecret (is the journal's key
    // rekey's own?); UpdateItem (acquire); GetItem (the rival's owner, when the acquire loses).
    // A member account first: DescribeAccount, ListParents from the account up to the root (an
    // account sits at most 5 OUs deep: 6 calls), AssumeRole.
    calls: 17,
    memberAccountCalls: 8,
  },
  'create-second-key': {
    kind: 'step',
    env: [
      'REKEY_SECRET_PREFIX',
      'REKEY_KMS_KEY_ID',
      'REKEY_LOCK_TABLE',
      'REKEY_CONSUMER_PRINCIPALS',
      'REKEY_SECRET_READER_ROLES',
      ...ELIGIBILITY_ENV,
      ...MEMBER_ACCOUNT_ENV,
    ],
    // ListAccessKeys; the first sweep: GetItem (lock) and DescribeSecret; its never-handed-out key of the
    // journal: DescribeSecret, DeleteAccessKey, UpdateSecretVersionStage (its AWSPENDING label, a
    // retried move refused) and DescribeSecret (is the label gone?); GetUser (the re-check),
    // UpdateItem (mark), CreateAccessKey lost to LimitExceeded; the second sweep: ListAccessKeys,
    // GetItem, then GetAccessKeyLastUsed and DeleteAccessKey for the lost create's key (the mark
    // removed the journal's record, so no key is asked about again), UpdateItem (clear); GetUser,
    // UpdateItem (mark), CreateAccessKey; UpdateItem (record); CreateSecret, PutResourcePolicy,
    // PutSecretValue failing, then DescribeSecret, DeleteAccessKey (compensation), UpdateItem
    // (clear) lost to a rival, GetItem (who holds the lock).
    // In a member account, AssumeRole first.
    calls: 27,
    memberAccountCalls: 1,
  },
  'verify-new-key': {
    kind: 'step',
    env: ['REKEY_VERIFY_ATTEMPTS', 'REKEY_VERIFY_BASE_DELAY_MS', ...MEMBER_ACCOUNT_ENV],
    // GetSecretValue; the verify loop (STS or ListServiceSpecificCredentials per attempt); then
    // either the promotion, DescribeSecret and UpdateSecretVersionStage twice (AWSCURRENT, then
    // AWSPENDING), each refused move (a retry of an applied one) re-read with DescribeSecret; or,
    // for a key that never worked, DescribeSecret (was it handed out?), ListAccessKeys and
    // DeleteAccessKey, which is shorter.
    // In a member account, AssumeRole first.
    calls: 7,
    memberAccountCalls: 1,
    verifyLoop: true,
  },
  'check-last-used': {
    kind: 'step',
    env: [
      'REKEY_MAX_ADOPTION_CHECKS',
      'REKEY_LAST_USED_GRACE_SECONDS',
      'REKEY_CLOUDTRAIL_LOOKUP',
      ...MEMBER_ACCOUNT_ENV,
    ],
    // GetAccessKeyLastUsed; LookupEvents (with cloudTrailLookup).
    // In a member account, AssumeRole first.
    calls: 3,
    memberAccountCalls: 1,
  },
  'deactivate-old-key': {
    kind: 'step',
    env: ['REKEY_LAST_USED_GRACE_SECONDS', ...ELIGIBILITY_ENV, ...MEMBER_ACCOUNT_ENV],
    // ListAccessKeys; GetAccessKeyLastUsed; GetUser (the re-check); UpdateAccessKey.
    // In a member account, AssumeRole first.
    calls: 5,
    memberAccountCalls: 1,
  },
  'verify-rotation': {
    kind: 'step',
    env: ['REKEY_LAST_USED_GRACE_SECONDS', ...ELIGIBILITY_ENV, ...MEMBER_ACCOUNT_ENV],
    // ListAccessKeys; GetSecretValue; STS GetCallerIdentity with the new key; GetAccessKeyLastUsed;
    // GetUser (the re-check); DeleteAccessKey.
    // In a member account, AssumeRole first.
    calls: 7,
    memberAccountCalls: 1,
  },
  'reactivate-old-key': {
    kind: 'step',
    env: [...MEMBER_ACCOUNT_ENV],
    // ListAccessKeys; UpdateAccessKey.
    // In a member account, AssumeRole first.
    calls: 3,
    memberAccountCalls: 1,
  },
  'delete-key': {
    kind: 'step',
    env: ['REKEY_LAST_USED_GRACE_SECONDS', ...ELIGIBILITY_ENV, ...MEMBER_ACCOUNT_ENV],
    // ListAccessKeys; GetAccessKeyLastUsed; GetUser (the re-check); DeleteAccessKey.
    // In a member account, AssumeRole first.
    calls: 5,
    memberAccountCalls: 1,
  },
  notify: {
    kind: 'step',
    // The hub's account: a lock subject names any other account (lambdas/shared/lock.ts).
    env: ['REKEY_TOPIC_ARN', 'REKEY_EVENT_BUS_NAME', 'REKEY_LOCK_TABLE', 'REKEY_HUB_ACCOUNT_ID'],
    // PublishBatch (every event of the invocation); PutEvents (the same); UpdateItem (release the lock).
    calls: 3,
  },
  cleanup: {
    kind: 'step',
    env: ['REKEY_LOCK_TABLE', 'REKEY_SECRET_PREFIX', 'REKEY_CLEANUP_SETTLE_SECONDS', ...MEMBER_ACCOUNT_ENV],
    // GetItem (lock); ListAccessKeys; DescribeSecret (was the journal's key handed out?);
    // DeleteAccessKey and UpdateSecretVersionStage (its AWSPENDING label, a retried move refused)
    // and DescribeSecret (is the label gone?); GetAccessKeyLastUsed and DeleteAccessKey (a key a
    // crashed create left beside the journal's, the replaced key deleted meanwhile: a user holds
    // two keys at most); UpdateItem (release). Plus the settle wait.
    // In a member account, AssumeRole first.
    calls: 10,
    memberAccountCalls: 1,
    waitsForSteps: true,
  },
  audit: {
    kind: 'standalone',
    env: AUDIT_ENV,
  },
  /**
   * The organization audit's first state: the accounts in scope, read from Organizations in the
   * hub (lambdas/organization-accounts). Not a member Lambda: it acts in no member account.
   */
  'organization-accounts': {
    kind: 'standalone',
    env: ['REKEY_HUB_ACCOUNT_ID', ...ORGANIZATION_SCOPE_ENV],
  },
} as const satisfies Record<string, FunctionSpec>;

export type FunctionName = keyof typeof FUNCTIONS;
export const FUNCTION_NAMES = Object.keys(FUNCTIONS) as FunctionName[];

/** The workflow steps: the registry's entries of kind 'step'. */
export type StepName = {
  [K in FunctionName]: (typeof FUNCTIONS)[K]['kind'] extends 'step' ? K : never;
}[FunctionName];
export function isStep(name: FunctionName): name is StepName {
  return FUNCTIONS[name].kind === 'step';
}
export const STEP_NAMES = FUNCTION_NAMES.filter(isStep);
export const STEPS = Object.fromEntries(STEP_NAMES.map((name) => [name, FUNCTIONS[name]])) as {
  readonly [K in StepName]: (typeof FUNCTIONS)[K];
};

/** The calls of a step's worst path in the hub's own account: no member role, no account check. */
export function hubPathCalls(name: StepName): number {
  const spec: StepSpec = STEPS[name];
  return spec.calls - (spec.memberAccountCalls ?? 0);
}

/** A function's folder under lambdas/: its handler is `lambdas/<folder>/index.ts` (export `handler`). */
export function functionFolder(name: FunctionName): string {
  return isStep(name) ? `rotation/${name}` : name;
}

/** Metadata key on each AWS::Lambda::Function that names its handler folder. */
export const HANDLER_METADATA_KEY = 'rekey:handler';

/**
 * Metadata key on every rekey AWS::Lambda::Function, workflow step or standalone (the audit):
 * its name in FUNCTIONS. A local run against an emulator finds each Lambda's role through it
 * (cli/deployed-roles.ts). Unlike HANDLER_METADATA_KEY it binds no state-machine Task.
 */
export const LAMBDA_METADATA_KEY = 'rekey:lambda';
