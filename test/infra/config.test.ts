import { readFileSync } from 'node:fs';
import { App } from 'aws-cdk-lib';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { describe, expect, it } from 'vitest';
import { loadEnv } from '../../contract/env.ts';
import { STEP_NAMES, STEPS } from '../../contract/functions.ts';
import { accountScopeFrom } from '../../contract/organization.ts';
import {
  LOG_RETENTION_DAYS,
  lambdaEnvironment,
  loadConfig,
  type RekeyResources,
  stateMachineTimeoutSeconds,
  stepTimeoutSeconds,
} from '../../infra/config.ts';

/** An organization with every option given. */
const ORGANIZATION = {
  organizationId: 'o-abcdefghij',
  include: { organizationalUnits: ['ou-ab12-cdefghij'] },
  exclude: { accounts: ['111122223333'] },
  secrets: 'hub',
  stackSetTargets: ['ou-ab12-cdefghij'],
  stackSetRegions: ['eu-west-1'],
};

/** Every variable some rotation step reads. */
const STEP_ENV_KEYS = [...new Set(STEP_NAMES.flatMap((step) => STEPS[step].env))];

const RESOURCES: RekeyResources = {
  hubAccountId: '123456789012',
  kmsKeyId: 'arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555',
  topicArn: 'arn:aws:sns:us-east-1:123456789012:rekey',
  lockTable: 'rekey-locks',
  secretReaderRoles:
    'arn:aws:iam::123456789012:role/RekeyStack-VerifyNewKeyRole,arn:aws:iam::123456789012:role/RekeyStack-VerifyRotationRole',
};

describe('loadConfig', () => {
  it('fills every field with its default', () => {
    // Act
    const config = loadConfig({});

    // Assess
    expect(config).toEqual({
      adoptionWaitDays: 7,
      maxAdoptionChecks: 3,
      deleteAfterDays: 7,
      secretPrefix: 'rekey/',
      exemptTag: 'rekey:exempt',
      ownerTag: 'rekey:owner',
      protectedUsers: [],
      notificationEmails: [],
      userPathPrefix: '/',
      lastUsedGraceSeconds: 900,
      verifyAttempts: 6,
      verifyBaseDelayMs: 1000,
      cloudTrailLookup: false,
      logRetentionDays: 365,
      runbookBaseUrl: 'docs/operations.md',
      consumerPrincipals: [],
      consumerTag: 'rekey:consumers',
      auditSchedule: 'cron(0 6 * * ? *)',
      auditScheduleTimezone: 'UTC',
      maxKeyAgeDays: 90,
      unusedDays: 45,
      warnDays: 14,
      autoRotate: true,
      maxRotationsPerRun: 25,
      maxRotationAttempts: 3,
      deactivateUnused: false,
      deactivateUnusedAfterDays: 90,
      securityHub: false,
      auditServiceCredentials: true,
      auditReports: false,
      auditReportsRetentionDays: 400,
    });
  });

  it('reads the `rekey` context object of a construct node, over the defaults', () => {
    // Prepare
    const app = new App({ context: { rekey: { adoptionWaitDays: 3, protectedUsers: ['breakglass'] } } });

    // Act
    const config = loadConfig(app.node);

    // Assess
    expect(config.adoptionWaitDays).toBe(3);
    expect(config.protectedUsers).toEqual(['breakglass']);
    expect(config.deleteAfterDays).toBe(7);
  });

  it('accepts the context as a JSON string (cdk synth -c rekey=...)', () => {
    const app = new App({ context: { rekey: '{"deleteAfterDays": 2}' } });
    expect(loadConfig(app.node).deleteAfterDays).toBe(2);
  });

  it.each([
    [{ adoptionWaitDays: -1 }, /adoptionWaitDays: /],
    [{ adoptionWaitDays: 1.5 }, /adoptionWaitDays: /],
    [{ maxAdoptionChecks: 0 }, /maxAdoptionChecks: /],
    [{ deleteAfterDays: '7' }, /deleteAfterDays: /],
    [{ secretPrefix: 'bad,prefix' }, /secretPrefix: /],
    [{ secretPrefix: '' }, /secretPrefix: /],
    [{ protectedUsers: ['ok', 'a,b'] }, /protectedUsers\.1: must not contain a comma/],
    [{ notificationEmails: ['ops@example.com', 'not-an-email'] }, /notificationEmails\.1: must be an email/],
    [{ userPathPrefix: 'ci/' }, /userPathPrefix: /],
    [{ logRetentionDays: 10 }, /logRetentionDays: must be one of/],
    [{ consumerPrincipals: ['alice'] }, /consumerPrincipals\.0: alice is not an IAM user or role ARN/],
    [
      { consumerPrincipals: ['arn:aws:iam::123456789012:role/app', 'arn:aws:iam::210987654321:root'] },
      /consumerPrincipals\.1: arn:aws:iam::210987654321:root is an account root, which stands for every principal of its account and would void the secret's Deny/,
    ],
    [{ consumerPrincipals: ['210987654321'] }, /consumerPrincipals\.0: 210987654321 is an account root/],
    [
      { consumerPrincipals: ['arn:aws:iam::123456789012:role/*'] },
      /consumerPrincipals\.0: .* is not an IAM user/,
    ],
    [
      { consumerPrincipals: ['arn:aws:iam::123456789012:role/a,b'] },
      /consumerPrincipals\.0: .* is not an IAM user/,
    ],
    [
      { consumerPrincipals: ['arn:aws:sts::123456789012:assumed-role/app/session'] },
      /consumerPrincipals\.0: .* is not an IAM user or role ARN/,
    ],
    [{ consumerTag: '' }, /consumerTag: /],
    [{ consumerTag: true }, /consumerTag: /],
    [{ consumerTag: 'rekey:exempt' }, /consumerTag: must differ from exemptTag/],
    [{ ownerTag: 'rekey:exempt' }, /ownerTag: must differ from exemptTag/],
    [{ ownerTag: 'rekey:consumers' }, /ownerTag: must differ from consumerTag/],
    [{ optInTag: 'rekey:managed', consumerTag: 'rekey:managed' }, /consumerTag: must differ from optInTag/],
    [{ cloudTrailLookup: 'yes' }, /cloudTrailLookup: /],
    [{ optInTag: '' }, /optInTag: /],
    [{ adoptionWaitDays: 90, maxAdoptionChecks: 5 }, /adoptionWaitDays: .*at most 365 days/],
    [{ adoptionWaitDay: 7 }, /unknown field\(s\) adoptionWaitDay/],
    // Over the limit by itself: reported once, not again as the cleanup that waits it out.
    [
      { verifyAttempts: 12 },
      /^invalid rekey configuration: verifyAttempts: verifyAttempts and verifyBaseDelayMs make verify-new-key run up to \d+ s; a Lambda runs at most 900 s$/,
    ],
    // verify-new-key fits (809 s), but the cleanup waits that out and adds 172 s of its own.
    [
      { verifyAttempts: 10 },
      /^invalid rekey configuration: verifyAttempts: verifyAttempts and verifyBaseDelayMs make verify-new-key run up to \d+ s; the cleanup after an aborted or timed-out execution waits that out and runs up to \d+ s; a Lambda runs at most 900 s$/,
    ],
    // IAM records last use at 15-minute granularity: a smaller grace could deactivate a key in use.
    [{ lastUsedGraceSeconds: 899 }, /lastUsedGraceSeconds: /],
    [{ lastUsedGraceSeconds: 0 }, /lastUsedGraceSeconds: /],
  ])('rejects %j naming the field', (raw, message) => {
    expect(() => loadConfig(raw)).toThrow(message);
  });

  it('reports an invalid context through the same error', () => {
    const app = new App({ context: { rekey: { verifyAttempts: 0 } } });
    expect(() => loadConfig(app.node)).toThrow(/invalid rekey configuration: verifyAttempts: /);
  });

  it('accepts valid principals, emails and a nested user path', () => {
    const config = loadConfig({
      consumerPrincipals: [
        'arn:aws:iam::123456789012:role/app',
        'arn:aws-us-gov:iam::210987654321:role/ci/deployer',
        'arn:aws:iam::123456789012:user/svc+smtp=1.x@y_z-w',
      ],
      notificationEmails: ['ops@example.com'],
      userPathPrefix: '/ci/external/',
      consumerTag: false,
    });
    expect(config.consumerPrincipals).toHaveLength(3);
    expect(config.consumerTag).toBe(false);
    expect(config.userPathPrefix).toBe('/ci/external/');
  });

  it('offers only retention periods CloudWatch Logs accepts', () => {
    const valid = Object.values(RetentionDays).filter((v): v is number => typeof v === 'number');
    expect(valid).toEqual(expect.arrayContaining([...LOG_RETENTION_DAYS]));
  });

  it('stays free of aws-cdk-lib, so the local runner can import it', () => {
    const source = readFileSync(new URL('../../infra/config.ts', import.meta.url), 'utf8');
    const imports = [...source.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]);
    expect(imports.filter((m) => !m?.startsWith('../lambdas/') && !m?.startsWith('../contract/'))).toEqual([
      'zod',
    ]);
  });
});

describe('stateMachineTimeoutSeconds', () => {
  it('covers every adoption wait, the delete wait and one more day', () => {
    expect(stateMachineTimeoutSeconds(loadConfig({}))).toBe((7 * 3 + 7 + 1) * 86_400);
    expect(
      stateMachineTimeoutSeconds(
        loadConfig({ adoptionWaitDays: 2, maxAdoptionChecks: 4, deleteAfterDays: 3 }),
      ),
    ).toBe((2 * 4 + 3 + 1) * 86_400);
  });
});

describe('lambdaEnvironment', () => {
  it('sets every variable the rotation steps read, as strings, and nothing else', () => {
    // Act
    const env = lambdaEnvironment(
      loadConfig({ optInTag: 'rekey:opt-in', organization: ORGANIZATION }),
      RESOURCES,
    );

    // Assess
    expect(Object.keys(env).sort()).toEqual([...STEP_ENV_KEYS].sort());
    for (const value of Object.values(env)) expect(typeof value).toBe('string');
  });

  it.each(STEP_NAMES)('satisfies the cold-start validation of %s', (step) => {
    const env = lambdaEnvironment(loadConfig({}), RESOURCES);
    expect(() => loadEnv(STEPS[step].env, env)).not.toThrow();
  });

  it('produces values the Lambdas accept and read back as configured', () => {
    // Prepare
    const config = loadConfig({
      protectedUsers: ['breakglass', 'ci-bot'],
      consumerPrincipals: ['arn:aws:iam::210987654321:role/reader', 'arn:aws:iam::123456789012:role/ci'],
      consumerTag: 'team:readers',
      cloudTrailLookup: true,
      verifyAttempts: 5,
      userPathPrefix: '/ci/',
      secretPrefix: 'keys/',
    });

    // Act
    const parsed = loadEnv(STEP_ENV_KEYS, lambdaEnvironment(config, RESOURCES));

    // Assess
    expect(parsed).toEqual({
      REKEY_SECRET_PREFIX: 'keys/',
      REKEY_KMS_KEY_ID: RESOURCES.kmsKeyId,
      REKEY_CONSUMER_PRINCIPALS: [
        'arn:aws:iam::210987654321:role/reader',
        'arn:aws:iam::123456789012:role/ci',
      ],
      REKEY_CONSUMER_TAG: 'team:readers',
      REKEY_SECRET_READER_ROLES: [
        'arn:aws:iam::123456789012:role/RekeyStack-VerifyNewKeyRole',
        'arn:aws:iam::123456789012:role/RekeyStack-VerifyRotationRole',
      ],
      REKEY_TOPIC_ARN: RESOURCES.topicArn,
      REKEY_EVENT_BUS_NAME: 'default',
      REKEY_LOCK_TABLE: RESOURCES.lockTable,
      REKEY_LOCK_TTL_SECONDS: stateMachineTimeoutSeconds(config),
      REKEY_EXEMPT_TAG: 'rekey:exempt',
      REKEY_OWNER_TAG: 'rekey:owner',
      REKEY_PROTECTED_USERS: ['breakglass', 'ci-bot'],
      REKEY_USER_PATH_PREFIX: '/ci/',
      REKEY_MAX_ADOPTION_CHECKS: 3,
      REKEY_LAST_USED_GRACE_SECONDS: 900,
      REKEY_VERIFY_ATTEMPTS: 5,
      REKEY_VERIFY_BASE_DELAY_MS: 1000,
      REKEY_CLOUDTRAIL_LOOKUP: true,
      // The longest step timeout: the create step's (verify-new-key with 5 attempts is shorter).
      REKEY_CLEANUP_SETTLE_SECONDS: stepTimeoutSeconds('create-second-key', config),
      REKEY_HUB_ACCOUNT_ID: RESOURCES.hubAccountId,
    });
  });

  it('sets the organization variables only with organization, the hub account always', () => {
    const single = lambdaEnvironment(loadConfig({}), RESOURCES);
    expect(single.REKEY_HUB_ACCOUNT_ID).toBe('123456789012');
    for (const key of [
      'REKEY_MEMBER_ROLE_PREFIX',
      'REKEY_SECRETS_LOCATION',
      'REKEY_ORGANIZATION_ID',
      'REKEY_ORGANIZATION_SCOPE',
    ])
      expect(single, key).not.toHaveProperty(key);
    const org = loadEnv(
      STEP_ENV_KEYS,
      lambdaEnvironment(loadConfig({ organization: ORGANIZATION }), RESOURCES),
    );
    expect(org).toMatchObject({
      REKEY_HUB_ACCOUNT_ID: '123456789012',
      REKEY_MEMBER_ROLE_PREFIX: 'rekey-member-',
      REKEY_SECRETS_LOCATION: 'hub',
      REKEY_ORGANIZATION_ID: 'o-abcdefghij',
    });
    expect(accountScopeFrom(org.REKEY_ORGANIZATION_SCOPE ?? '')).toEqual({
      include: { accounts: [], organizationalUnits: ['ou-ab12-cdefghij'] },
      exclude: { accounts: ['111122223333'], organizationalUnits: [] },
    });
  });

  it('leaves the secret reader roles out when no deployment gave them (a local run)', () => {
    const { secretReaderRoles: _deployedOnly, ...local } = RESOURCES;
    expect(lambdaEnvironment(loadConfig({}), local)).not.toHaveProperty('REKEY_SECRET_READER_ROLES');
    expect(loadEnv(['REKEY_SECRET_READER_ROLES'], lambdaEnvironment(loadConfig({}), local))).toEqual({});
    expect(lambdaEnvironment(loadConfig({}), local).REKEY_CONSUMER_PRINCIPALS).toBe('');
  });

  it('sets the consumer tag by default and leaves it out when turned off', () => {
    expect(lambdaEnvironment(loadConfig({}), RESOURCES).REKEY_CONSUMER_TAG).toBe('rekey:consumers');
    const off = lambdaEnvironment(loadConfig({ consumerTag: false }), RESOURCES);
    expect(off).not.toHaveProperty('REKEY_CONSUMER_TAG');
    expect(loadEnv(['REKEY_CONSUMER_TAG'], off)).toEqual({});
  });

  it('leaves the opt-in tag out unless configured', () => {
    expect(lambdaEnvironment(loadConfig({}), RESOURCES)).not.toHaveProperty('REKEY_OPT_IN_TAG');
    expect(lambdaEnvironment(loadConfig({ optInTag: 'rekey' }), RESOURCES).REKEY_OPT_IN_TAG).toBe('rekey');
  });

  it('gives the lock the longest lifetime the longest configurable execution needs', () => {
    // The Lambdas cap the lock TTL; the largest valid configuration must fit under that cap.
    const config = loadConfig({ adoptionWaitDays: 90, maxAdoptionChecks: 3, deleteAfterDays: 90 });
    expect(() => loadEnv(['REKEY_LOCK_TTL_SECONDS'], lambdaEnvironment(config, RESOURCES))).not.toThrow();
  });
});
