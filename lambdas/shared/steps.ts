/**
 * The Lambdas of the rotation workflow: their folder under lambdas/ and the environment variables
 * each one reads. The stack creates one function per entry and sets exactly these variables; each
 * handler validates the same list at cold start; the local runner binds Tasks to handlers by the
 * `rekey:handler` metadata the stack writes on each function. One list, three users.
 */
import type { RekeyEnvKey } from './env.ts';

/** What the eligibility re-check (domain/eligibility.ts) reads: the plan's rules, asked again before a key change. */
const ELIGIBILITY_ENV = [
  'REKEY_EXEMPT_TAG',
  'REKEY_PROTECTED_USERS',
  'REKEY_USER_PATH_PREFIX',
  'REKEY_OPT_IN_TAG',
] as const satisfies readonly RekeyEnvKey[];

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
    ],
  },
  'create-second-key': {
    description: 'Creates the new access key and stores it in Secrets Manager in one invocation',
    env: [
      'REKEY_SECRET_PREFIX',
      'REKEY_KMS_KEY_ID',
      'REKEY_LOCK_TABLE',
      'REKEY_CONSUMER_PRINCIPALS',
      'REKEY_SECRET_READER_ROLES',
      ...ELIGIBILITY_ENV,
    ],
  },
  'verify-new-key': {
    description: 'Proves the stored key authenticates as its user, then makes it AWSCURRENT',
    env: ['REKEY_VERIFY_ATTEMPTS', 'REKEY_VERIFY_BASE_DELAY_MS'],
  },
  'check-last-used': {
    description:
      'Checks whether the old key was used since it had to be quiet (the hand-out, or the last check that found use)',
    env: ['REKEY_MAX_ADOPTION_CHECKS', 'REKEY_LAST_USED_GRACE_SECONDS', 'REKEY_CLOUDTRAIL_LOOKUP'],
  },
  'deactivate-old-key': {
    description: 'Re-checks the old key is quiet and the user still in scope, then deactivates it',
    env: ['REKEY_LAST_USED_GRACE_SECONDS', ...ELIGIBILITY_ENV],
  },
  'verify-rotation': {
    description:
      'Checks the old key stayed inactive and unused since it had to be quiet, and the new key still works',
    env: ['REKEY_LAST_USED_GRACE_SECONDS'],
  },
  'reactivate-old-key': {
    description: 'Rollback: reactivates the old access key',
    env: [],
  },
  'delete-key': {
    description:
      'Deletes an inactive access key that was not used since a given instant, the user still in scope',
    env: ['REKEY_LAST_USED_GRACE_SECONDS', ...ELIGIBILITY_ENV],
  },
  notify: {
    description: 'Publishes a notification (SNS and EventBridge); terminal events release the user lock',
    env: ['REKEY_TOPIC_ARN', 'REKEY_EVENT_BUS_NAME', 'REKEY_LOCK_TABLE'],
  },
  cleanup: {
    description:
      'After a failed, aborted or timed-out execution: removes the key it made and never handed out, releases its lock',
    env: ['REKEY_LOCK_TABLE', 'REKEY_SECRET_PREFIX', 'REKEY_CLEANUP_SETTLE_SECONDS'],
  },
} as const satisfies Record<string, { description: string; env: readonly RekeyEnvKey[] }>;

export type StepName = keyof typeof STEPS;
export const STEP_NAMES = Object.keys(STEPS) as StepName[];

/** Metadata key on each AWS::Lambda::Function that names its handler folder. */
export const HANDLER_METADATA_KEY = 'rekey:handler';
