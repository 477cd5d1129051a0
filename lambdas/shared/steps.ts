/**
 * The Lambdas of the rotation workflow: their folder under lambdas/, the environment variables
 * each one reads, and how many AWS calls it makes one after the other on its longest path. The
 * stack creates one function per entry, sets exactly these variables and derives its timeout from
 * the call count (infra/config.ts stepTimeoutSeconds); each handler validates the same list at
 * cold start; the local runner binds Tasks to handlers by the `rekey:handler` metadata the stack
 * writes on each function. One list, three users.
 */
import type { RekeyEnvKey } from './env.ts';

/** One Lambda of the workflow. */
export interface StepSpec {
  readonly description: string;
  readonly env: readonly RekeyEnvKey[];
  /**
   * Sequential AWS calls on the step's worst path, compensation and error-path reads included
   * (the comment above each entry lists them). Each costs at most worstCaseCallMs of the shared
   * clients (lambdas/shared/clients/config.ts). A list of a user's credentials is one call: a user
   * holds at most two keys (four service-specific credentials), one page.
   */
  readonly calls: number;
  /**
   * The step also retries the new key in-process: REKEY_VERIFY_ATTEMPTS calls more (an STS call
   * signed with the key, or a listing of the credential), with the backoff sleeps between them.
   */
  readonly verifyLoop?: true;
}

export const STEPS = {
  plan: {
    description: 'Validates the request, checks the user and its keys, takes the user lock, decides',
    env: [
      'REKEY_SECRET_PREFIX',
      'REKEY_LOCK_TABLE',
      'REKEY_LOCK_TTL_SECONDS',
      'REKEY_EXEMPT_TAG',
      'REKEY_PROTECTED_USERS',
      'REKEY_USER_PATH_PREFIX',
      'REKEY_OPT_IN_TAG',
      'REKEY_CONSUMER_TAG',
    ],
    // GetUser; GetItem (lock); ListAccessKeys; GetAccessKeyLastUsed per key (2); UpdateItem
    // (acquire); GetItem (the rival's owner, when the acquire loses).
    calls: 7,
  },
  'create-second-key': {
    description: 'Creates the new access key and stores it in Secrets Manager in one invocation',
    env: [
      'REKEY_SECRET_PREFIX',
      'REKEY_KMS_KEY_ID',
      'REKEY_LOCK_TABLE',
      'REKEY_CONSUMER_PRINCIPALS',
      'REKEY_SECRET_READER_ROLES',
    ],
    // GetItem (lock); ListAccessKeys; DescribeSecret; the extra key's GetAccessKeyLastUsed and
    // DeleteAccessKey (an orphan); UpdateItem (mark), CreateAccessKey lost to LimitExceeded, then
    // ListAccessKeys, GetItem, GetAccessKeyLastUsed, DeleteAccessKey, UpdateItem (clear); UpdateItem
    // (mark), CreateAccessKey; UpdateItem (record); CreateSecret, PutResourcePolicy,
    // PutSecretValue failing, then DescribeSecret, DeleteAccessKey (compensation), UpdateItem
    // (clear) lost to a rival, GetItem (who holds the lock).
    calls: 22,
  },
  'verify-new-key': {
    description: 'Proves the stored key authenticates as its user, then makes it AWSCURRENT',
    env: ['REKEY_VERIFY_ATTEMPTS', 'REKEY_VERIFY_BASE_DELAY_MS'],
    // GetSecretValue; the verify loop (STS or ListServiceSpecificCredentials per attempt); then
    // either ListAccessKeys and DeleteAccessKey (a key that never worked) or DescribeSecret and
    // UpdateSecretVersionStage twice, each refused move re-read with DescribeSecret.
    calls: 6,
    verifyLoop: true,
  },
  'check-last-used': {
    description: 'Checks whether the old key was used after the new key was handed out',
    env: ['REKEY_MAX_ADOPTION_CHECKS', 'REKEY_LAST_USED_GRACE_SECONDS', 'REKEY_CLOUDTRAIL_LOOKUP'],
    // GetAccessKeyLastUsed; LookupEvents (with cloudTrailLookup).
    calls: 2,
  },
  'deactivate-old-key': {
    description: 'Re-checks the old key is quiet, then deactivates it',
    env: ['REKEY_LAST_USED_GRACE_SECONDS'],
    // ListAccessKeys; GetAccessKeyLastUsed; UpdateAccessKey.
    calls: 3,
  },
  'verify-rotation': {
    description: 'Checks the old key stayed inactive and unused and the new key still works',
    env: ['REKEY_LAST_USED_GRACE_SECONDS'],
    // ListAccessKeys; GetAccessKeyLastUsed; GetSecretValue; STS GetCallerIdentity with the new key.
    calls: 4,
  },
  'reactivate-old-key': {
    description: 'Rollback: reactivates the old access key',
    env: [],
    // ListAccessKeys; UpdateAccessKey.
    calls: 2,
  },
  'delete-key': {
    description: 'Deletes an inactive access key that was not used since a given instant',
    env: ['REKEY_LAST_USED_GRACE_SECONDS'],
    // ListAccessKeys; GetAccessKeyLastUsed; DeleteAccessKey.
    calls: 3,
  },
  notify: {
    description: 'Publishes a notification (SNS and EventBridge); terminal events release the user lock',
    env: ['REKEY_TOPIC_ARN', 'REKEY_EVENT_BUS_NAME', 'REKEY_LOCK_TABLE'],
    // Publish; PutEvents; UpdateItem (release the lock).
    calls: 3,
  },
} as const satisfies Record<string, StepSpec>;

export type StepName = keyof typeof STEPS;
export const STEP_NAMES = Object.keys(STEPS) as StepName[];

/** Metadata key on each AWS::Lambda::Function that names its handler folder. */
export const HANDLER_METADATA_KEY = 'rekey:handler';

/**
 * Metadata key on every rekey AWS::Lambda::Function, workflow step or standalone (the audit):
 * its folder under lambdas/. A local run against an emulator finds each Lambda's role through it
 * (cli/deployed-roles.ts). Unlike HANDLER_METADATA_KEY it binds no state-machine Task.
 */
export const LAMBDA_METADATA_KEY = 'rekey:lambda';
