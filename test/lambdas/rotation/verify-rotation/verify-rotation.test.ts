import {
  DeleteAccessKeyCommand,
  DeleteServiceSpecificCredentialCommand,
  GetAccessKeyLastUsedCommand,
  GetUserCommand,
  ListAccessKeysCommand,
} from '@aws-sdk/client-iam';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { beforeEach, describe, expect, it } from 'vitest';
import { RotationVerificationFailed, UserNotEligible } from '../../../../contract/errors.ts';
import { hubPathCalls } from '../../../../contract/functions.ts';
import { verifyRotation } from '../../../../lambdas/rotation/verify-rotation/verify-rotation.ts';
import { iam, secretsManager } from '../../../../lambdas/shared/clients.ts';
import { statusDeps } from '../../../support/key-status-fixtures.ts';
import {
  ACCOUNT,
  callOrder,
  daysAgo,
  ELIGIBILITY,
  FAKE_SECRET,
  inputsOf,
  type KeyFixture,
  mockEligibleUser,
  mockKeys,
  NEW_KEY_CREATED,
  NEW_KEY_ID,
  OLD_KEY_CREATED,
  OLD_KEY_ID,
  QUIET_SINCE,
  rejectionOf,
  SECRET_ARN,
  stateWithNewKey,
  USER,
} from '../../../support/lambda-fixtures.ts';
import {
  mockListed,
  NEW_ID,
  OLD_ID,
  SERVICE_SECRET_ARN,
  serviceStateWithNewKey,
  storedServiceValue,
} from '../../../support/service-credential-fixtures.ts';
import { identity, rejected, secretOf, verifyMocks } from '../../../support/verify-fixtures.ts';

const v = verifyMocks();
const { iamMock, smMock, stsMock } = v;
// After verifyMocks' reset: USER is eligible, and the delete goes through.
beforeEach(() => {
  mockEligibleUser(iamMock);
  iamMock.on(DeleteAccessKeyCommand).resolves({});
  iamMock.on(DeleteServiceSpecificCredentialCommand).resolves({});
});

describe('verifyRotation', () => {
  const env = { ...ELIGIBILITY, REKEY_LAST_USED_GRACE_SECONDS: 60 };
  const deps = () => ({ iam, secretsManager, stsFor: v.stsFor, clock: v.clock, env });
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

  it('passes when the old key stayed inactive and unused, and the current secret authenticates; then deletes the old key', async () => {
    // Prepare
    mockKeys(iamMock, [oldInactive, newActive]);
    mockCurrent();
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act
    const result = await verifyRotation(deps(), state());

    // Assess
    expect(result).toEqual({ verified: true, deleted: true });
    expect(inputsOf(iamMock.commandCalls(GetUserCommand))).toEqual([{ UserName: USER }]);
    expect(inputsOf(iamMock.commandCalls(DeleteAccessKeyCommand))).toEqual([
      { UserName: USER, AccessKeyId: OLD_KEY_ID },
    ]);
    expect(inputsOf(iamMock.commandCalls(ListAccessKeysCommand))).toEqual([{ UserName: USER }]);
    expect(inputsOf(iamMock.commandCalls(GetAccessKeyLastUsedCommand))).toEqual([
      { AccessKeyId: OLD_KEY_ID },
    ]);
    expect(inputsOf(smMock.commandCalls(GetSecretValueCommand))).toEqual([
      { SecretId: SECRET_ARN, VersionStage: 'AWSCURRENT' },
    ]);
    expect(stsMock).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 1);
    expect(v.clock.sleep).not.toHaveBeenCalled();
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
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
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
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
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
    await expect(verifyRotation(deps(), resumed)).resolves.toEqual({ verified: true, deleted: true });
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
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  });

  it('passes when the old key is already gone (a retry after the delete), and deletes nothing', async () => {
    // Prepare
    mockKeys(iamMock, [newActive]);
    mockCurrent();
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act & Assess
    await expect(verifyRotation(deps(), state())).resolves.toEqual({ verified: true, deleted: false });
    expect(iamMock).not.toHaveReceivedCommand(GetAccessKeyLastUsedCommand);
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  });

  it.each([
    ['exempt', { 'rekey:exempt': 'true' }],
    ['out of scope', {}],
  ])(
    'a user who became %s meanwhile stops it before the delete: the old key is kept inactive',
    async (label, tags) => {
      // Prepare
      mockKeys(iamMock, [oldInactive, newActive]);
      mockCurrent();
      stsMock.on(GetCallerIdentityCommand).resolves(identity);
      mockEligibleUser(iamMock, tags);
      const scoped = label === 'out of scope' ? { ...env, REKEY_USER_PATH_PREFIX: '/rotated/' } : env;

      // Act
      const error = await rejectionOf(verifyRotation({ ...deps(), env: scoped }, state()));

      // Assess
      expect(error).toBeInstanceOf(UserNotEligible);
      expect(error.message).toContain(`stopped before deleting ${OLD_KEY_ID}, which is kept inactive`);
      expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
    },
  );

  it("reads the old key's last use after the new key's proof, right before the re-check and the delete", async () => {
    // Prepare
    mockKeys(iamMock, [oldInactive, newActive]);
    mockCurrent();
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act
    await verifyRotation(deps(), state());

    // Assess
    expect(callOrder(smMock, stsMock, iamMock).slice(-4)).toEqual([
      'GetCallerIdentity',
      'GetAccessKeyLastUsed',
      'GetUser',
      'DeleteAccessKey',
    ]);
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

describe('verifyRotation: a service-specific credential', () => {
  it('verifyRotation fails when the old credential is active again or the new one is not', async () => {
    smMock.on(GetSecretValueCommand).resolves({ SecretString: storedServiceValue() });
    const state = { ...serviceStateWithNewKey(), deactivation: { deactivatedAt: daysAgo(1).toISOString() } };
    const verifyDeps = {
      ...statusDeps(),
      secretsManager,
      stsFor: () => {
        throw new Error('no STS');
      },
    };

    mockListed(iamMock, [{ id: OLD_ID, status: 'Inactive' }, { id: NEW_ID }]);
    await expect(verifyRotation(verifyDeps, state)).resolves.toEqual({ verified: true, deleted: true });
    expect(inputsOf(iamMock.commandCalls(DeleteServiceSpecificCredentialCommand))).toEqual([
      { UserName: USER, ServiceSpecificCredentialId: OLD_ID },
    ]);
    expect(smMock).toHaveReceivedCommandWith(GetSecretValueCommand, {
      SecretId: SERVICE_SECRET_ARN,
      VersionStage: 'AWSCURRENT',
    });

    mockListed(iamMock, [{ id: OLD_ID }, { id: NEW_ID }]);
    expect(await rejectionOf(verifyRotation(verifyDeps, state))).toBeInstanceOf(RotationVerificationFailed);
    mockListed(iamMock, [
      { id: OLD_ID, status: 'Inactive' },
      { id: NEW_ID, status: 'Inactive' },
    ]);
    const error = await rejectionOf(verifyRotation(verifyDeps, state));
    expect(error.message).toContain(`the new key ${NEW_ID} is Inactive`);
  });
});

describe('the call budget its Lambda timeout is derived from', () => {
  const order = () => callOrder(smMock, stsMock, iamMock);

  it('verify-rotation: its longest path makes exactly its hub-path calls (STEPS[verify-rotation].calls less memberAccountCalls)', async () => {
    // Prepare: the old key still listed (inactive, quiet), the current secret signs a call.
    mockKeys(iamMock, [
      { id: OLD_KEY_ID, status: 'Inactive', created: OLD_KEY_CREATED, lastUsed: daysAgo(9.5) },
      { id: NEW_KEY_ID, created: NEW_KEY_CREATED, lastUsed: daysAgo(0.1) },
    ]);
    smMock.on(GetSecretValueCommand).resolves({ ARN: SECRET_ARN, SecretString: secretOf(NEW_KEY_ID) });
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act
    await verifyRotation(
      {
        iam,
        secretsManager,
        stsFor: v.stsFor,
        clock: v.clock,
        env: { ...ELIGIBILITY, REKEY_LAST_USED_GRACE_SECONDS: 60 },
      },
      stateWithNewKey(),
    );

    // Assess
    expect(order()).toEqual([
      'ListAccessKeys',
      'GetSecretValue',
      'GetCallerIdentity',
      'GetAccessKeyLastUsed',
      'GetUser',
      'DeleteAccessKey',
    ]);
    expect(order()).toHaveLength(hubPathCalls('verify-rotation'));
  });
});
