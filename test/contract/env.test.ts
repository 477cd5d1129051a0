import { describe, expect, it } from 'vitest';
import { loadEnv, type RekeyEnvVars } from '../../contract/env.ts';
import { ConfigurationError } from '../../contract/errors.ts';
import { STEP_NAMES, STEPS } from '../../contract/functions.ts';
import { KMS_KEY_ID, TOPIC_ARN } from '../support/lambda-fixtures.ts';

/** Every variable the stack may set, as strings (extra variables are ignored by loadEnv). */
const FULL: RekeyEnvVars & Record<string, string> = {
  REKEY_SECRET_PREFIX: 'rekey/',
  REKEY_KMS_KEY_ID: KMS_KEY_ID,
  REKEY_TOPIC_ARN: TOPIC_ARN,
  REKEY_EVENT_BUS_NAME: 'default',
  REKEY_LOCK_TABLE: 'rekey-locks',
  REKEY_LOCK_TTL_SECONDS: '3600',
  REKEY_EXEMPT_TAG: 'rekey:exempt',
  REKEY_PROTECTED_USERS: 'break-glass',
  REKEY_USER_PATH_PREFIX: '/',
  REKEY_OPT_IN_TAG: 'rekey:managed',
  REKEY_CONSUMER_TAG: 'rekey:consumers',
  REKEY_MAX_ADOPTION_CHECKS: '3',
  REKEY_LAST_USED_GRACE_SECONDS: '900',
  REKEY_VERIFY_ATTEMPTS: '6',
  REKEY_VERIFY_BASE_DELAY_MS: '1000',
  REKEY_CLOUDTRAIL_LOOKUP: 'false',
  REKEY_STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:123456789012:stateMachine:rekey-rotation',
  REKEY_CLEANUP_SETTLE_SECONDS: '190',
};

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a throw');
}

describe('loadEnv', () => {
  it('throws ConfigurationError naming REKEY_LOCK_TABLE when it is missing', () => {
    // Act
    const error = errorOf(() => loadEnv(STEPS.plan.env, {}));

    // Assess
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.name).toBe('ConfigurationError');
    expect(error.message).toMatch(/^invalid environment: /);
    expect(error.message).toContain('REKEY_LOCK_TABLE');
  });

  it('applies the defaults and returns only the requested variables', () => {
    // Act
    const env = loadEnv(STEPS.plan.env, {
      REKEY_LOCK_TABLE: 'rekey-locks',
      REKEY_TOPIC_ARN: 'not requested',
    });

    // Assess
    expect(env).toEqual({
      REKEY_SECRET_PREFIX: 'rekey/',
      REKEY_LOCK_TABLE: 'rekey-locks',
      REKEY_LOCK_TTL_SECONDS: 60 * 86_400,
      REKEY_EXEMPT_TAG: 'rekey:exempt',
      REKEY_OWNER_TAG: 'rekey:owner',
      REKEY_PROTECTED_USERS: [],
      REKEY_USER_PATH_PREFIX: '/',
    });
    expect(env).not.toHaveProperty('REKEY_TOPIC_ARN');
  });

  it('applies the defaults of the verify and adoption variables', () => {
    expect(loadEnv([...STEPS['verify-new-key'].env, ...STEPS['check-last-used'].env], {})).toEqual({
      REKEY_VERIFY_ATTEMPTS: 6,
      REKEY_VERIFY_BASE_DELAY_MS: 1000,
      REKEY_MAX_ADOPTION_CHECKS: 3,
      REKEY_LAST_USED_GRACE_SECONDS: 900,
      REKEY_CLOUDTRAIL_LOOKUP: false,
    });
  });

  it('parses REKEY_PROTECTED_USERS as a trimmed, comma-separated list without empty entries', () => {
    // Act
    const env = loadEnv(['REKEY_PROTECTED_USERS'], {
      REKEY_PROTECTED_USERS: ' break-glass , terraform-ci,,  ',
    });

    // Assess
    expect(env.REKEY_PROTECTED_USERS).toEqual(['break-glass', 'terraform-ci']);
  });

  it('refuses an account root among REKEY_CONSUMER_PRINCIPALS at cold start, naming it', () => {
    // Act
    const error = errorOf(() =>
      loadEnv(['REKEY_CONSUMER_PRINCIPALS'], {
        REKEY_CONSUMER_PRINCIPALS: 'arn:aws:iam::123456789012:role/ci,arn:aws:iam::210987654321:root',
      }),
    );

    // Assess
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toContain(
      'REKEY_CONSUMER_PRINCIPALS.1: arn:aws:iam::210987654321:root is an account root',
    );
  });

  it('parses REKEY_CONSUMER_PRINCIPALS into IAM user and role ARNs', () => {
    expect(
      loadEnv(['REKEY_CONSUMER_PRINCIPALS'], {
        REKEY_CONSUMER_PRINCIPALS:
          'arn:aws:iam::123456789012:role/ci/deployer, arn:aws:iam::123456789012:user/app',
      }),
    ).toEqual({
      REKEY_CONSUMER_PRINCIPALS: [
        'arn:aws:iam::123456789012:role/ci/deployer',
        'arn:aws:iam::123456789012:user/app',
      ],
    });
  });

  it('parses numbers and booleans from strings', () => {
    expect(
      loadEnv(['REKEY_LOCK_TTL_SECONDS', 'REKEY_CLOUDTRAIL_LOOKUP'], {
        REKEY_LOCK_TTL_SECONDS: '7200',
        REKEY_CLOUDTRAIL_LOOKUP: 'true',
      }),
    ).toEqual({ REKEY_LOCK_TTL_SECONDS: 7200, REKEY_CLOUDTRAIL_LOOKUP: true });
  });

  it.each([
    ['REKEY_MAX_ADOPTION_CHECKS', '0'],
    ['REKEY_MAX_ADOPTION_CHECKS', 'three'],
    ['REKEY_VERIFY_ATTEMPTS', '1.5'],
    ['REKEY_LOCK_TTL_SECONDS', '59'],
    ['REKEY_CLOUDTRAIL_LOOKUP', 'yes'],
    ['REKEY_TOPIC_ARN', 'rekey-topic'],
    ['REKEY_SECRET_PREFIX', 'rekey,'],
    ['REKEY_USER_PATH_PREFIX', 'service'],
    ['REKEY_KMS_KEY_ID', ''],
    // Below IAM's 15-minute last-used resolution.
    ['REKEY_LAST_USED_GRACE_SECONDS', '899'],
  ] as const)('rejects %s=%j, naming the variable', (key, value) => {
    // Act
    const error = errorOf(() => loadEnv([key], { [key]: value }));

    // Assess
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toContain(`${key}: `);
  });

  it('names every bad variable at once', () => {
    // Act
    const error = errorOf(() => loadEnv(STEPS.notify.env, { REKEY_TOPIC_ARN: 'x' }));

    // Assess
    expect(error.message).toContain('REKEY_TOPIC_ARN');
    expect(error.message).toContain('REKEY_LOCK_TABLE');
  });

  it.each(STEP_NAMES)('the variables of step %s load from a complete environment', (step) => {
    expect(() => loadEnv(STEPS[step].env, FULL)).not.toThrow();
  });
});
