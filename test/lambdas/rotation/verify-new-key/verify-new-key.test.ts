import {
  DeleteAccessKeyCommand,
  GetAccessKeyLastUsedCommand,
  ListAccessKeysCommand,
  UpdateAccessKeyCommand,
} from '@aws-sdk/client-iam';
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { NewKeyNotWorking, RotationVerificationFailed } from '../../../../contract/errors.ts';
import { STEPS } from '../../../../contract/functions.ts';
import { verifyNewKey } from '../../../../lambdas/rotation/verify-new-key/verify-new-key.ts';
import { verifyRotation } from '../../../../lambdas/rotation/verify-rotation/verify-rotation.ts';
import type { StsFactory } from '../../../../lambdas/shared/authenticate.ts';
import { iam, secretsManager } from '../../../../lambdas/shared/clients.ts';
import {
  ACCOUNT,
  awsError,
  callOrder,
  daysAgo,
  FAKE_SECRET,
  type FakeClock,
  fakeClock,
  inputsOf,
  type KeyFixture,
  mockKeys,
  NEW_KEY_CREATED,
  NEW_KEY_ID,
  NOW,
  OLD_KEY_CREATED,
  OLD_KEY_ID,
  QUIET_SINCE,
  rejectionOf,
  SECRET_ARN,
  silenceLogs,
  stateWithNewKey,
  TOKEN,
  USER,
  USER_ARN,
} from '../../../support/lambda-fixtures.ts';

const iamMock = mockClient(iam);
const smMock = mockClient(secretsManager);
const stsMock = mockClient(STSClient);

const PREVIOUS_VERSION = '11111111-2222-4333-8444-555555555555';
const secretOf = (accessKeyId: string) =>
  JSON.stringify({
    Version: 1,
    AccessKeyId: accessKeyId,
    SecretAccessKey: FAKE_SECRET,
    UserName: USER,
    CreateDate: NEW_KEY_CREATED.toISOString(),
  });
const identity = { Account: ACCOUNT, Arn: USER_ARN, UserId: 'AIDAEXAMPLEUSERID0001' };
const rejected = () => awsError('InvalidClientTokenId');

let clock: FakeClock;
let stsFor: ReturnType<typeof vi.fn<StsFactory>>;

beforeAll(silenceLogs);
beforeEach(() => {
  iamMock.reset();
  smMock.reset();
  stsMock.reset();
  clock = fakeClock();
  stsFor = vi.fn<StsFactory>((credentials) => new STSClient({ region: 'us-east-1', credentials }));
});

describe('verifyNewKey', () => {
  const env = { REKEY_VERIFY_ATTEMPTS: 4, REKEY_VERIFY_BASE_DELAY_MS: 1000 };
  const deps = () => ({ iam, secretsManager, stsFor, clock, env });
  /** Right after the create step: nothing has set the quiet-since instant yet. */
  const created = () => ({ ...stateWithNewKey(), quietSince: null });

  function mockPendingVersion(): void {
    smMock
      .on(GetSecretValueCommand)
      .resolves({ ARN: SECRET_ARN, VersionId: TOKEN, SecretString: secretOf(NEW_KEY_ID) });
    smMock.on(DescribeSecretCommand).resolves({
      ARN: SECRET_ARN,
      VersionIdsToStages: { [PREVIOUS_VERSION]: ['AWSCURRENT'], [TOKEN]: ['AWSPENDING'] },
    });
    smMock.on(UpdateSecretVersionStageCommand).resolves({});
  }

  it('reads the stored version, proves it authenticates as the user, then promotes it', async () => {
    // Prepare
    mockPendingVersion();
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act
    const quietSince = await verifyNewKey(deps(), created());

    // Assess: the hand-out, taken just before the promotion, is the quiet-since instant.
    expect(quietSince).toBe(NOW.toISOString());
    expect(inputsOf(smMock.commandCalls(GetSecretValueCommand))).toEqual([
      { SecretId: SECRET_ARN, VersionId: TOKEN },
    ]);
    expect(stsFor).toHaveBeenCalledExactlyOnceWith({ accessKeyId: NEW_KEY_ID, secretAccessKey: FAKE_SECRET });
    expect(inputsOf(smMock.commandCalls(UpdateSecretVersionStageCommand))).toEqual([
      {
        SecretId: SECRET_ARN,
        VersionStage: 'AWSCURRENT',
        MoveToVersionId: TOKEN,
        RemoveFromVersionId: PREVIOUS_VERSION,
      },
      { SecretId: SECRET_ARN, VersionStage: 'AWSPENDING', RemoveFromVersionId: TOKEN },
    ]);
    expect(iamMock.calls()).toHaveLength(0);
    expect(clock.sleep).not.toHaveBeenCalled();
  });

  it('a resumed run keeps its own quiet-since instant (the promotion is then a no-op)', async () => {
    // Prepare: the version is already AWSCURRENT.
    smMock
      .on(GetSecretValueCommand)
      .resolves({ ARN: SECRET_ARN, VersionId: TOKEN, SecretString: secretOf(NEW_KEY_ID) });
    smMock.on(DescribeSecretCommand).resolves({
      ARN: SECRET_ARN,
      VersionIdsToStages: { [PREVIOUS_VERSION]: ['AWSPREVIOUS'], [TOKEN]: ['AWSCURRENT'] },
    });
    stsMock.on(GetCallerIdentityCommand).resolves(identity);
    const resumedAt = daysAgo(1).toISOString();

    // Act
    const quietSince = await verifyNewKey(deps(), { ...stateWithNewKey(), quietSince: resumedAt });

    // Assess
    expect(quietSince).toBe(resumedAt);
    expect(smMock).not.toHaveReceivedCommand(UpdateSecretVersionStageCommand);
  });

  it("a retry after an attempt that promoted takes the key's creation, which came before the hand-out", async () => {
    // Prepare
    smMock
      .on(GetSecretValueCommand)
      .resolves({ ARN: SECRET_ARN, VersionId: TOKEN, SecretString: secretOf(NEW_KEY_ID) });
    smMock.on(DescribeSecretCommand).resolves({
      ARN: SECRET_ARN,
      VersionIdsToStages: { [PREVIOUS_VERSION]: ['AWSPREVIOUS'], [TOKEN]: ['AWSCURRENT'] },
    });
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act & Assess
    await expect(verifyNewKey(deps(), created())).resolves.toBe(NEW_KEY_CREATED.toISOString());
  });

  it('waits for IAM to propagate the key (backoff 1000, 2000 ms) before promoting it', async () => {
    // Prepare
    mockPendingVersion();
    stsMock.on(GetCallerIdentityCommand).rejectsOnce(rejected()).rejectsOnce(rejected()).resolves(identity);

    // Act
    await verifyNewKey(deps(), created());

    // Assess
    expect(clock.sleep.mock.calls).toEqual([[1000], [2000]]);
    expect(smMock).toHaveReceivedCommandTimes(UpdateSecretVersionStageCommand, 2);
  });

  it('discards the key (DeleteAccessKey) and throws NewKeyNotWorking after all attempts; nothing promoted', async () => {
    // Prepare
    mockPendingVersion();
    stsMock.on(GetCallerIdentityCommand).rejects(rejected());
    mockKeys(iamMock, [
      { id: OLD_KEY_ID, created: OLD_KEY_CREATED },
      { id: NEW_KEY_ID, created: NEW_KEY_CREATED },
    ]);
    iamMock.on(DeleteAccessKeyCommand).resolves({});

    // Act
    const error = await rejectionOf(verifyNewKey(deps(), created()));

    // Assess
    expect(error).toBeInstanceOf(NewKeyNotWorking);
    expect(error.name).toBe('NewKeyNotWorking');
    expect(error.message).toBe(
      `new key ${NEW_KEY_ID} of "${USER}" did not authenticate after 4 attempts (InvalidClientTokenId); ` +
        'it was deleted and the old key is unchanged',
    );
    expect(error.message).not.toContain(FAKE_SECRET);
    expect(stsMock).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 4);
    expect(clock.sleep.mock.calls).toEqual([[1000], [2000], [4000]]);
    expect(inputsOf(iamMock.commandCalls(DeleteAccessKeyCommand))).toEqual([
      { UserName: USER, AccessKeyId: NEW_KEY_ID },
    ]);
    expect(iamMock).not.toHaveReceivedCommand(UpdateAccessKeyCommand);
    expect(smMock).not.toHaveReceivedCommand(UpdateSecretVersionStageCommand);
  });

  it('keeps a key handed out earlier (a resumed run) that fails verification: consumers may use it', async () => {
    // Prepare
    smMock
      .on(GetSecretValueCommand)
      .resolves({ ARN: SECRET_ARN, VersionId: TOKEN, SecretString: secretOf(NEW_KEY_ID) });
    smMock.on(DescribeSecretCommand).resolves({
      ARN: SECRET_ARN,
      VersionIdsToStages: { [PREVIOUS_VERSION]: ['AWSPREVIOUS'], [TOKEN]: ['AWSCURRENT'] },
    });
    stsMock.on(GetCallerIdentityCommand).rejects(rejected());
    mockKeys(iamMock, [
      { id: OLD_KEY_ID, created: OLD_KEY_CREATED },
      { id: NEW_KEY_ID, created: NEW_KEY_CREATED },
    ]);

    // Act
    const error = await rejectionOf(
      verifyNewKey(deps(), { ...stateWithNewKey(), quietSince: NOW.toISOString() }),
    );

    // Assess
    expect(error).toMatchObject({
      name: 'NewKeyNotWorking',
      message: expect.stringContaining(
        `handed out earlier (AWSCURRENT), failed verification after 4 attempts`,
      ),
    });
    expect(error.message).toContain('it was kept');
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  });

  it('throws NewKeyNotWorking without deleting anything when the key is already gone', async () => {
    // Prepare
    mockPendingVersion();
    stsMock.on(GetCallerIdentityCommand).rejects(rejected());
    mockKeys(iamMock, [{ id: OLD_KEY_ID, created: OLD_KEY_CREATED }]);

    // Act & Assess
    await expect(verifyNewKey(deps(), created())).rejects.toBeInstanceOf(NewKeyNotWorking);
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  });

  it('discards a key that authenticates as another principal', async () => {
    // Prepare
    mockPendingVersion();
    stsMock.on(GetCallerIdentityCommand).resolves({ ...identity, Arn: `arn:aws:iam::${ACCOUNT}:user/bob` });
    mockKeys(iamMock, [{ id: NEW_KEY_ID, created: NEW_KEY_CREATED }]);
    iamMock.on(DeleteAccessKeyCommand).resolves({});

    // Act & Assess
    await expect(verifyNewKey(deps(), created())).rejects.toMatchObject({
      name: 'NewKeyNotWorking',
      message: expect.stringContaining(
        `authenticated as arn:aws:iam::${ACCOUNT}:user/bob, expected ${USER_ARN}`,
      ),
    });
    expect(iamMock).toHaveReceivedCommandWith(DeleteAccessKeyCommand, {
      UserName: USER,
      AccessKeyId: NEW_KEY_ID,
    });
    expect(smMock).not.toHaveReceivedCommand(UpdateSecretVersionStageCommand);
  });

  it('refuses a secret version that holds another key, before any STS call and without deleting', async () => {
    // Prepare
    smMock.on(GetSecretValueCommand).resolves({ SecretString: secretOf(OLD_KEY_ID) });

    // Act & Assess
    await expect(verifyNewKey(deps(), created())).rejects.toMatchObject({
      name: 'NewKeyNotWorking',
      message: `secret version ${TOKEN} holds ${OLD_KEY_ID}, not ${NEW_KEY_ID}`,
    });
    expect(stsFor).not.toHaveBeenCalled();
    expect(iamMock.calls()).toHaveLength(0);
  });
});

describe('verifyRotation', () => {
  const env = { REKEY_LAST_USED_GRACE_SECONDS: 60 };
  const deps = () => ({ iam, secretsManager, stsFor, clock, env });
  const deactivatedAt = daysAgo(7);
  const state = () => ({
    ...stateWithNewKey(),
    deactivation: { deactivatedAt: deactivatedAt.toISOString() },
  });
  const quietSince = QUIET_SINCE.toISOString();
  const oldInactive: KeyFixture = {
    id: OLD_KEY_ID,
    status: 'Inactive',
    created: OLD_KEY_CREATED,
    lastUsed: daysAgo(9.5),
  };
  const newActive: KeyFixture = { id: NEW_KEY_ID, created: NEW_KEY_CREATED, lastUsed: daysAgo(0.1) };

  function mockCurrent(accessKeyId = NEW_KEY_ID): void {
    smMock.on(GetSecretValueCommand).resolves({ ARN: SECRET_ARN, SecretString: secretOf(accessKeyId) });
  }

  it('passes when the old key stayed inactive and unused, and the current secret authenticates', async () => {
    // Prepare
    mockKeys(iamMock, [oldInactive, newActive]);
    mockCurrent();
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act
    const result = await verifyRotation(deps(), state());

    // Assess
    expect(result).toEqual({ verified: true });
    expect(inputsOf(iamMock.commandCalls(ListAccessKeysCommand))).toEqual([{ UserName: USER }]);
    expect(inputsOf(iamMock.commandCalls(GetAccessKeyLastUsedCommand))).toEqual([
      { AccessKeyId: OLD_KEY_ID },
    ]);
    expect(inputsOf(smMock.commandCalls(GetSecretValueCommand))).toEqual([
      { SecretId: SECRET_ARN, VersionStage: 'AWSCURRENT' },
    ]);
    expect(stsMock).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 1);
    expect(clock.sleep).not.toHaveBeenCalled();
  });

  it('fails (RotationVerificationFailed) when the old key is Active again', async () => {
    // Prepare
    mockKeys(iamMock, [{ ...oldInactive, status: 'Active' }, newActive]);
    mockCurrent();
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act
    const error = await rejectionOf(verifyRotation(deps(), state()));

    // Assess
    expect(error).toBeInstanceOf(RotationVerificationFailed);
    expect(error).toMatchObject({
      name: 'RotationVerificationFailed',
      message: `verification of the rotation of "${USER}" failed: the old key ${OLD_KEY_ID} is active again`,
    });
    expect(stsMock).not.toHaveReceivedCommand(GetCallerIdentityCommand);
  });

  it('fails naming the date, service and region when the old key was used after its deactivation', async () => {
    // Prepare
    const usedAt = daysAgo(2);
    mockKeys(iamMock, [{ ...oldInactive, lastUsed: usedAt, service: 'ses', region: 'eu-west-1' }, newActive]);
    mockCurrent();
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act & Assess
    await expect(verifyRotation(deps(), state())).rejects.toMatchObject({
      name: 'RotationVerificationFailed',
      message:
        `verification of the rotation of "${USER}" failed: the old key ${OLD_KEY_ID} was used at ` +
        `${usedAt.toISOString()} (ses, eu-west-1), at or after ${quietSince}, since when it had to be quiet; ` +
        `deactivated at ${deactivatedAt.toISOString()}`,
    });
  });

  it('fails on a use between Q and the deactivation that surfaced only after it (late last-used data)', async () => {
    // Prepare: used after Q (9 days ago) but before the deactivation (7 days ago).
    const usedAt = daysAgo(8);
    mockKeys(iamMock, [{ ...oldInactive, lastUsed: usedAt }, newActive]);
    mockCurrent();
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act & Assess
    await expect(verifyRotation(deps(), state())).rejects.toMatchObject({
      name: 'RotationVerificationFailed',
      message: expect.stringContaining(
        `was used at ${usedAt.toISOString()} (s3, eu-west-1), at or after ${quietSince}`,
      ),
    });
  });

  it('a resumed run (no deactivation in the state) compares with its Q', async () => {
    // Prepare
    mockKeys(iamMock, [{ ...oldInactive, lastUsed: daysAgo(2) }, newActive]);
    mockCurrent();
    stsMock.on(GetCallerIdentityCommand).resolves(identity);
    const resumed = { ...stateWithNewKey(), quietSince: daysAgo(1).toISOString() };

    // Act & Assess: the use came before the resumed run's Q.
    await expect(verifyRotation(deps(), resumed)).resolves.toEqual({ verified: true });
    await expect(
      verifyRotation(deps(), { ...resumed, quietSince: daysAgo(3).toISOString() }),
    ).rejects.toBeInstanceOf(RotationVerificationFailed);
  });

  it('counts a use within the grace period before Q as a use after it', async () => {
    // Prepare
    mockKeys(iamMock, [{ ...oldInactive, lastUsed: new Date(QUIET_SINCE.getTime() - 30_000) }, newActive]);
    mockCurrent();
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act & Assess
    await expect(verifyRotation(deps(), state())).rejects.toBeInstanceOf(RotationVerificationFailed);
  });

  it('passes when the old key is already gone', async () => {
    // Prepare
    mockKeys(iamMock, [newActive]);
    mockCurrent();
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act & Assess
    await expect(verifyRotation(deps(), state())).resolves.toEqual({ verified: true });
    expect(iamMock).not.toHaveReceivedCommand(GetAccessKeyLastUsedCommand);
  });

  it.each([
    [
      'Inactive',
      [oldInactive, { ...newActive, status: 'Inactive' as const }],
      `the new key ${NEW_KEY_ID} is Inactive`,
    ],
    ['gone', [oldInactive], `the new key ${NEW_KEY_ID} is gone`],
  ])('fails when the new key is %s', async (_label, keys, why) => {
    // Prepare
    mockKeys(iamMock, keys);
    mockCurrent();
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act & Assess
    await expect(verifyRotation(deps(), state())).rejects.toMatchObject({
      name: 'RotationVerificationFailed',
      message: expect.stringContaining(why),
    });
  });

  it('fails when AWSCURRENT holds another key than the new one', async () => {
    // Prepare
    mockKeys(iamMock, [oldInactive, newActive]);
    mockCurrent(OLD_KEY_ID);
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act & Assess
    await expect(verifyRotation(deps(), state())).rejects.toMatchObject({
      name: 'RotationVerificationFailed',
      message: expect.stringContaining(
        `the secret's AWSCURRENT version holds ${OLD_KEY_ID}, not the new key ${NEW_KEY_ID}`,
      ),
    });
    expect(stsMock).not.toHaveReceivedCommand(GetCallerIdentityCommand);
  });

  it('fails when the new key is rejected by STS', async () => {
    // Prepare
    mockKeys(iamMock, [oldInactive, newActive]);
    mockCurrent();
    stsMock.on(GetCallerIdentityCommand).rejects(rejected());

    // Act & Assess
    await expect(verifyRotation(deps(), state())).rejects.toMatchObject({
      name: 'RotationVerificationFailed',
      message: expect.stringContaining(
        `the new key ${NEW_KEY_ID} no longer authenticates (InvalidClientTokenId)`,
      ),
    });
    expect(stsMock).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 1);
  });

  it('fails when the new key authenticates as another principal', async () => {
    // Prepare
    mockKeys(iamMock, [oldInactive, newActive]);
    mockCurrent();
    stsMock.on(GetCallerIdentityCommand).resolves({ ...identity, Arn: `arn:aws:iam::${ACCOUNT}:user/bob` });

    // Act & Assess
    await expect(verifyRotation(deps(), state())).rejects.toMatchObject({
      name: 'RotationVerificationFailed',
      message: expect.stringContaining(`authenticates as arn:aws:iam::${ACCOUNT}:user/bob`),
    });
  });

  it('never puts the secret into a failure message', async () => {
    // Prepare
    mockKeys(iamMock, [oldInactive, newActive]);
    mockCurrent(OLD_KEY_ID);

    // Act
    const error = await rejectionOf(verifyRotation(deps(), state()));

    // Assess
    expect(error.message).not.toContain(FAKE_SECRET);
  });
});

describe('the call budgets their Lambda timeouts are derived from', () => {
  const attempts = 4;
  const verifyEnv = { REKEY_VERIFY_ATTEMPTS: attempts, REKEY_VERIFY_BASE_DELAY_MS: 1000 };
  const order = () => callOrder(smMock, stsMock, iamMock);

  it('verify-new-key: its longest path makes exactly STEPS[verify-new-key].calls calls plus one per attempt', async () => {
    // Prepare: the key works at the last attempt; both label moves were applied but their answers
    // lost, so the SDK's retries are refused and the labels read again each time.
    smMock
      .on(GetSecretValueCommand)
      .resolves({ ARN: SECRET_ARN, VersionId: TOKEN, SecretString: secretOf(NEW_KEY_ID) });
    stsMock
      .on(GetCallerIdentityCommand)
      .rejectsOnce(rejected())
      .rejectsOnce(rejected())
      .rejectsOnce(rejected())
      .resolves(identity);
    smMock
      .on(DescribeSecretCommand)
      .resolvesOnce({
        ARN: SECRET_ARN,
        VersionIdsToStages: { [PREVIOUS_VERSION]: ['AWSCURRENT'], [TOKEN]: ['AWSPENDING'] },
      })
      .resolvesOnce({
        ARN: SECRET_ARN,
        VersionIdsToStages: { [PREVIOUS_VERSION]: ['AWSPREVIOUS'], [TOKEN]: ['AWSCURRENT', 'AWSPENDING'] },
      })
      .resolves({
        ARN: SECRET_ARN,
        VersionIdsToStages: { [PREVIOUS_VERSION]: ['AWSPREVIOUS'], [TOKEN]: ['AWSCURRENT'] },
      });
    smMock.on(UpdateSecretVersionStageCommand).rejects(awsError('InvalidParameterException'));

    // Act
    await verifyNewKey(
      { iam, secretsManager, stsFor, clock, env: verifyEnv },
      { ...stateWithNewKey(), quietSince: null },
    );

    // Assess
    expect(order()).toEqual([
      'GetSecretValue',
      ...Array(attempts).fill('GetCallerIdentity'),
      'DescribeSecret',
      'UpdateSecretVersionStage',
      'DescribeSecret',
      'UpdateSecretVersionStage',
      'DescribeSecret',
    ]);
    expect(order()).toHaveLength(STEPS['verify-new-key'].calls + attempts);
  });

  it('verify-new-key: a key that never works, removed, takes no more', async () => {
    // Prepare
    smMock
      .on(GetSecretValueCommand)
      .resolves({ ARN: SECRET_ARN, VersionId: TOKEN, SecretString: secretOf(NEW_KEY_ID) });
    stsMock.on(GetCallerIdentityCommand).rejects(rejected());
    smMock.on(DescribeSecretCommand).resolves({
      ARN: SECRET_ARN,
      VersionIdsToStages: { [PREVIOUS_VERSION]: ['AWSCURRENT'], [TOKEN]: ['AWSPENDING'] },
    });
    mockKeys(iamMock, [
      { id: OLD_KEY_ID, created: OLD_KEY_CREATED },
      { id: NEW_KEY_ID, created: NEW_KEY_CREATED },
    ]);
    iamMock.on(DeleteAccessKeyCommand).resolves({});

    // Act
    await rejectionOf(
      verifyNewKey(
        { iam, secretsManager, stsFor, clock, env: verifyEnv },
        { ...stateWithNewKey(), quietSince: null },
      ),
    );

    // Assess
    expect(order()).toEqual([
      'GetSecretValue',
      ...Array(attempts).fill('GetCallerIdentity'),
      'DescribeSecret',
      'ListAccessKeys',
      'DeleteAccessKey',
    ]);
    expect(order().length).toBeLessThanOrEqual(STEPS['verify-new-key'].calls + attempts);
  });

  it('verify-rotation: its longest path makes exactly STEPS[verify-rotation].calls calls', async () => {
    // Prepare: the old key still listed (inactive, quiet), the current secret signs a call.
    mockKeys(iamMock, [
      { id: OLD_KEY_ID, status: 'Inactive', created: OLD_KEY_CREATED, lastUsed: daysAgo(9.5) },
      { id: NEW_KEY_ID, created: NEW_KEY_CREATED, lastUsed: daysAgo(0.1) },
    ]);
    smMock.on(GetSecretValueCommand).resolves({ ARN: SECRET_ARN, SecretString: secretOf(NEW_KEY_ID) });
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act
    await verifyRotation(
      { iam, secretsManager, stsFor, env: { REKEY_LAST_USED_GRACE_SECONDS: 60 } },
      stateWithNewKey(),
    );

    // Assess
    expect(order()).toEqual([
      'ListAccessKeys',
      'GetAccessKeyLastUsed',
      'GetSecretValue',
      'GetCallerIdentity',
    ]);
    expect(order()).toHaveLength(STEPS['verify-rotation'].calls);
  });
});
