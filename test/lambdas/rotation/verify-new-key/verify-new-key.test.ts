import {
  DeleteAccessKeyCommand,
  DeleteServiceSpecificCredentialCommand,
  ListServiceSpecificCredentialsCommand,
  UpdateAccessKeyCommand,
} from '@aws-sdk/client-iam';
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { beforeEach, describe, expect, it } from 'vitest';
import { NewKeyNotWorking } from '../../../../contract/errors.ts';
import { hubPathCalls } from '../../../../contract/functions.ts';
import { verifyNewKey } from '../../../../lambdas/rotation/verify-new-key/verify-new-key.ts';
import { iam, secretsManager } from '../../../../lambdas/shared/clients.ts';
import {
  ACCOUNT,
  awsError,
  callOrder,
  daysAgo,
  FAKE_SECRET,
  fakeClock,
  inputsOf,
  mockKeys,
  NEW_KEY_CREATED,
  NEW_KEY_ID,
  NOW,
  OLD_KEY_CREATED,
  OLD_KEY_ID,
  rejectionOf,
  SECRET_ARN,
  stateWithNewKey,
  TOKEN,
  USER,
  USER_ARN,
} from '../../../support/lambda-fixtures.ts';
import {
  mockListed,
  NEW_CREATED,
  NEW_ID,
  OLD_ID,
  PASSWORD,
  SERVICE,
  SERVICE_SECRET_ARN,
  SERVICE_TOKEN,
  SERVICE_USER,
  serviceStateWithNewKey,
  storedServiceValue,
} from '../../../support/service-credential-fixtures.ts';
import {
  identity,
  PREVIOUS_VERSION,
  rejected,
  secretOf,
  verifyMocks,
} from '../../../support/verify-fixtures.ts';

const v = verifyMocks();
const { iamMock, smMock, stsMock } = v;

describe('verifyNewKey', () => {
  const env = { REKEY_VERIFY_ATTEMPTS: 4, REKEY_VERIFY_BASE_DELAY_MS: 1000 };
  const deps = () => ({ iam, secretsManager, stsFor: v.stsFor, clock: v.clock, env });
  /** Right after the create step: nothing has set the quiet-since instant yet. */
  const created = () => ({ ...stateWithNewKey(), quietSince: null });

  function mockPendingVersion(): void {
    smMock.on(GetSecretValueCommand).resolves({
      ARN: SECRET_ARN,
      VersionId: TOKEN,
      SecretString: secretOf(NEW_KEY_ID),
      VersionStages: ['AWSPENDING'],
    });
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
    expect(v.stsFor).toHaveBeenCalledExactlyOnceWith({
      accessKeyId: NEW_KEY_ID,
      secretAccessKey: FAKE_SECRET,
    });
    expect(inputsOf(smMock.commandCalls(UpdateSecretVersionStageCommand))).toEqual([
      {
        SecretId: SECRET_ARN,
        VersionStage: 'AWSCURRENT',
        MoveToVersionId: TOKEN,
        RemoveFromVersionId: PREVIOUS_VERSION,
      },
      { SecretId: SECRET_ARN, VersionStage: 'AWSPENDING', RemoveFromVersionId: TOKEN },
    ]);
    // The version was only AWSPENDING: DescribeSecret named the version AWSCURRENT moves from.
    expect(inputsOf(smMock.commandCalls(DescribeSecretCommand))).toEqual([{ SecretId: SECRET_ARN }]);
    expect(iamMock.calls()).toHaveLength(0);
    expect(v.clock.sleep).not.toHaveBeenCalled();
  });

  it("a secret's first version, which Secrets Manager made AWSCURRENT when it was written, is promoted without DescribeSecret", async () => {
    // Prepare: GetSecretValue reports the version's labels.
    smMock.on(GetSecretValueCommand).resolves({
      ARN: SECRET_ARN,
      VersionId: TOKEN,
      SecretString: secretOf(NEW_KEY_ID),
      VersionStages: ['AWSCURRENT', 'AWSPENDING'],
    });
    smMock.on(UpdateSecretVersionStageCommand).resolves({});
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act
    const quietSince = await verifyNewKey(deps(), created());

    // Assess: it was current before the hand-out, so the key's creation stands in for it.
    expect(quietSince).toBe(NEW_KEY_CREATED.toISOString());
    expect(smMock).not.toHaveReceivedCommand(DescribeSecretCommand);
    expect(inputsOf(smMock.commandCalls(UpdateSecretVersionStageCommand))).toEqual([
      { SecretId: SECRET_ARN, VersionStage: 'AWSPENDING', RemoveFromVersionId: TOKEN },
    ]);
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
    expect(v.clock.sleep.mock.calls).toEqual([[1000], [2000]]);
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
    expect(v.clock.sleep.mock.calls).toEqual([[1000], [2000], [4000]]);
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
    expect(v.stsFor).not.toHaveBeenCalled();
    expect(iamMock.calls()).toHaveLength(0);
  });
});

describe('verifyNewKey: a service-specific credential', () => {
  const deps = () => ({
    iam,
    secretsManager,
    stsFor: () => {
      throw new Error('no STS call proves a service-specific credential');
    },
    clock: fakeClock(),
    env: { REKEY_VERIFY_ATTEMPTS: 3, REKEY_VERIFY_BASE_DELAY_MS: 10 },
  });

  beforeEach(() => {
    smMock.on(GetSecretValueCommand).resolves({ SecretString: storedServiceValue() });
    smMock
      .on(DescribeSecretCommand)
      .resolves({ ARN: SERVICE_SECRET_ARN, VersionIdsToStages: { [SERVICE_TOKEN]: ['AWSPENDING'] } });
    smMock.on(UpdateSecretVersionStageCommand).resolves({});
  });

  it('checks the stored secret against IAM (Active, same user name) and makes it AWSCURRENT', async () => {
    mockListed(iamMock, [{ id: OLD_ID }, { id: NEW_ID, created: NEW_CREATED }]);

    // The hand-out (the fake clock's now) becomes the quiet-since instant.
    await expect(verifyNewKey(deps(), { ...serviceStateWithNewKey(), quietSince: null })).resolves.toBe(
      NOW.toISOString(),
    );

    expect(inputsOf(smMock.commandCalls(GetSecretValueCommand))).toEqual([
      { SecretId: SERVICE_SECRET_ARN, VersionId: SERVICE_TOKEN },
    ]);
    expect(inputsOf(iamMock.commandCalls(ListServiceSpecificCredentialsCommand))).toEqual([
      { UserName: USER, ServiceName: SERVICE },
    ]);
    expect(smMock).toHaveReceivedCommandWith(UpdateSecretVersionStageCommand, {
      SecretId: SERVICE_SECRET_ARN,
      VersionStage: 'AWSCURRENT',
      MoveToVersionId: SERVICE_TOKEN,
    });
  });

  it('a credential IAM lists as Inactive is discarded: NewKeyNotWorking, old one untouched', async () => {
    mockListed(iamMock, [{ id: OLD_ID }, { id: NEW_ID, status: 'Inactive' }]);
    iamMock.on(DeleteServiceSpecificCredentialCommand).resolves({});

    const error = await rejectionOf(verifyNewKey(deps(), serviceStateWithNewKey()));

    expect(error).toBeInstanceOf(NewKeyNotWorking);
    expect(error.message).toBe(
      `new service-specific credential for ${SERVICE} ${NEW_ID} of "${USER}" failed verification after 3 attempts ` +
        '(IAM lists it as Inactive); it was deleted and the old credential is unchanged',
    );
    expect(inputsOf(iamMock.commandCalls(DeleteServiceSpecificCredentialCommand))).toEqual([
      { UserName: USER, ServiceSpecificCredentialId: NEW_ID },
    ]);
    expect(smMock).not.toHaveReceivedCommand(UpdateSecretVersionStageCommand);
  });

  it('waits with backoff while IAM does not list the new credential yet', async () => {
    iamMock
      .on(ListServiceSpecificCredentialsCommand)
      .resolvesOnce({ ServiceSpecificCredentials: [] })
      .resolves({
        ServiceSpecificCredentials: [
          {
            UserName: USER,
            ServiceName: SERVICE,
            ServiceSpecificCredentialId: NEW_ID,
            Status: 'Active',
            CreateDate: NEW_CREATED,
            ServiceUserName: SERVICE_USER,
          },
        ],
      });
    const d = deps();

    await verifyNewKey(d, serviceStateWithNewKey());

    expect(d.clock.sleep).toHaveBeenCalledWith(10);
    expect(iamMock.commandCalls(ListServiceSpecificCredentialsCommand)).toHaveLength(2);
  });

  it('a secret of another user is refused before IAM is asked', async () => {
    smMock.on(GetSecretValueCommand).resolves({ SecretString: storedServiceValue({ UserName: 'mallory' }) });
    mockListed(iamMock, [{ id: OLD_ID }]);

    const error = await rejectionOf(verifyNewKey(deps(), serviceStateWithNewKey()));

    expect(error).toBeInstanceOf(NewKeyNotWorking);
    expect(error.message).toContain('the secret names the user "mallory"');
    expect(error.message).not.toContain(PASSWORD);
  });
});

describe('the call budget its Lambda timeout is derived from', () => {
  const attempts = 4;
  const verifyEnv = { REKEY_VERIFY_ATTEMPTS: attempts, REKEY_VERIFY_BASE_DELAY_MS: 1000 };
  const order = () => callOrder(smMock, stsMock, iamMock);

  it('verify-new-key: its longest path makes exactly its hub-path calls (STEPS[verify-new-key].calls less memberAccountCalls) plus one per attempt', async () => {
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
      { iam, secretsManager, stsFor: v.stsFor, clock: v.clock, env: verifyEnv },
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
    expect(order()).toHaveLength(hubPathCalls('verify-new-key') + attempts);
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
        { iam, secretsManager, stsFor: v.stsFor, clock: v.clock, env: verifyEnv },
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
    expect(order().length).toBeLessThanOrEqual(hubPathCalls('verify-new-key') + attempts);
  });
});
