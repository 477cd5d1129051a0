import { ConditionalCheckFailedException, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import {
  CreateAccessKeyCommand,
  CreateServiceSpecificCredentialCommand,
  DeleteAccessKeyCommand,
  DeleteServiceSpecificCredentialCommand,
  GetAccessKeyLastUsedCommand,
  LimitExceededException,
  ListAccessKeysCommand,
  UpdateAccessKeyCommand,
} from '@aws-sdk/client-iam';
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  PutResourcePolicyCommand,
  PutSecretValueCommand,
  ResourceNotFoundException,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RotationInProgress, SecretNotStored, UnexpectedKeyState } from '../../../../contract/errors.ts';
import { hubPathCalls } from '../../../../contract/functions.ts';
import {
  type CreateKeyDeps,
  createSecondKey,
  secretSettings,
} from '../../../../lambdas/rotation/create-second-key/create-second-key.ts';
import { dynamodb, iam, secretsManager } from '../../../../lambdas/shared/clients.ts';
import { secretResourcePolicy, versionTokenFor } from '../../../../lambdas/shared/secret.ts';
import {
  ACCOUNT,
  awsError,
  callOrder,
  daysAgo,
  ELIGIBILITY,
  EXECUTION_ID,
  EXTRA_KEY_ID,
  FAKE_SECRET,
  fakeClock,
  inputsOf,
  type KeyFixture,
  KMS_KEY_ID,
  LOCK_TABLE,
  mockEligibleUser,
  mockKeys,
  mockLastUse,
  NEW_KEY_ID,
  NOW,
  OLD_KEY_CREATED,
  OLD_KEY_ID,
  OLD_KEY_LAST_USED,
  OTHER_EXECUTION_ID,
  plannedState,
  rejectionOf,
  SECRET_ARN,
  SECRET_NAME,
  silenceLogs,
  TOKEN,
  USER,
  USER_ARN,
} from '../../../support/lambda-fixtures.ts';
import {
  EXTRA_ID,
  mockListed,
  NEW_CREATED,
  NEW_ID,
  OLD_ID,
  PASSWORD,
  plannedServiceState,
  SERVICE,
  SERVICE_SECRET_ARN,
  SERVICE_SECRET_NAME,
  SERVICE_TOKEN,
  SERVICE_USER,
  serviceLockItem,
  storedServiceValue,
} from '../../../support/service-credential-fixtures.ts';

const iamMock = mockClient(iam);
const smMock = mockClient(secretsManager);
const ddbMock = mockClient(dynamodb);

const NEW_KEY_CREATED = new Date(NOW.getTime() + 1_000);
const nowEpoch = Math.floor(NOW.getTime() / 1000);
const old: KeyFixture = { id: OLD_KEY_ID, created: OLD_KEY_CREATED, lastUsed: OLD_KEY_LAST_USED };

const CONSUMER = 'arn:aws:iam::123456789012:role/ci/deployer';
const VERIFY_ROLE = 'arn:aws:iam::123456789012:role/RekeyStack-VerifyNewKeyRole-ABC';

const MARK =
  'UpdateItem(SET creatingSince = :since REMOVE createdKeyId, createdVersionId, createdBy, replacedKeyId, secretName)';
const RECORD =
  'UpdateItem(SET createdKeyId = :k, createdVersionId = :v, createdBy = :owner, replacedKeyId = :r, secretName = :s)';
const CLEAR = 'UpdateItem(REMOVE creatingSince)';

function deps(): CreateKeyDeps {
  return {
    iam,
    secretsManager,
    lock: { dynamodb, table: LOCK_TABLE },
    clock: fakeClock(),
    env: {
      ...ELIGIBILITY,
      REKEY_KMS_KEY_ID: KMS_KEY_ID,
      REKEY_CONSUMER_PRINCIPALS: [CONSUMER],
      REKEY_SECRET_READER_ROLES: [VERIFY_ROLE],
      REKEY_HUB_ACCOUNT_ID: ACCOUNT,
    },
  };
}

/** The user's lock item as GetItem returns it. */
function lockItem(
  journal: {
    owner?: string;
    creatingSince?: Date;
    createdKeyId?: string;
    createdVersionId?: string;
    createdBy?: string;
    replacedKeyId?: string;
  } = {},
) {
  const {
    owner = EXECUTION_ID,
    creatingSince,
    createdKeyId,
    createdVersionId,
    createdBy,
    replacedKeyId,
  } = journal;
  return {
    Item: {
      userName: { S: USER },
      owner: { S: owner },
      expiresAt: { N: String(nowEpoch + 3600) },
      ...(creatingSince ? { creatingSince: { S: creatingSince.toISOString() } } : {}),
      ...(createdKeyId ? { createdKeyId: { S: createdKeyId } } : {}),
      ...(createdVersionId ? { createdVersionId: { S: createdVersionId } } : {}),
      ...(createdBy ? { createdBy: { S: createdBy } } : {}),
      ...(replacedKeyId ? { replacedKeyId: { S: replacedKeyId }, secretName: { S: SECRET_NAME } } : {}),
    },
  };
}

function mockCreated(id = NEW_KEY_ID): void {
  iamMock.on(CreateAccessKeyCommand).resolves({
    AccessKey: {
      UserName: USER,
      AccessKeyId: id,
      SecretAccessKey: FAKE_SECRET,
      Status: 'Active',
      CreateDate: NEW_KEY_CREATED,
    },
  });
}

/** A first rotation: no secret yet; every write succeeds. */
function mockStorage(): void {
  ddbMock.on(UpdateItemCommand).resolves({});
  smMock
    .on(DescribeSecretCommand)
    .rejects(new ResourceNotFoundException({ message: 'no secret', $metadata: {} }));
  smMock.on(CreateSecretCommand).resolves({ ARN: SECRET_ARN, Name: SECRET_NAME });
  smMock.on(PutSecretValueCommand).resolves({ ARN: SECRET_ARN, VersionId: TOKEN });
  iamMock.on(DeleteAccessKeyCommand).resolves({});
}

/**
 * ListAccessKeys answers the old key alone first, then with `appeared` beside it (Active): a key
 * that showed up while the step ran, e.g. one its own lost CreateAccessKey made. Its last use too.
 */
function mockKeyAppearing(appeared: KeyFixture): void {
  const listed = (k: { id: string; created: Date }) => ({
    UserName: USER,
    AccessKeyId: k.id,
    Status: 'Active' as const,
    CreateDate: k.created,
  });
  const oldKey = { id: OLD_KEY_ID, created: OLD_KEY_CREATED };
  iamMock
    .on(ListAccessKeysCommand)
    .resolvesOnce({ AccessKeyMetadata: [listed(oldKey)] })
    .resolves({ AccessKeyMetadata: [listed(oldKey), listed(appeared)] });
  mockLastUse(iamMock, appeared);
}

function expectNoMutation(): void {
  expect(iamMock).not.toHaveReceivedCommand(CreateAccessKeyCommand);
  expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  expect(iamMock).not.toHaveReceivedCommand(UpdateAccessKeyCommand);
  expect(ddbMock).not.toHaveReceivedCommand(UpdateItemCommand);
  expect(smMock).not.toHaveReceivedCommand(CreateSecretCommand);
  expect(smMock).not.toHaveReceivedCommand(PutSecretValueCommand);
}

beforeAll(silenceLogs);
beforeEach(() => {
  iamMock.reset();
  mockEligibleUser(iamMock);
  smMock.reset();
  ddbMock.reset();
});

describe('createSecondKey', () => {
  it('an exemption added since the plan stops it right before CreateAccessKey: UserExempt, nothing made', async () => {
    // Prepare
    ddbMock.on(GetItemCommand).resolves(lockItem());
    mockKeys(iamMock, [old]);
    mockStorage();
    mockCreated();
    mockEligibleUser(iamMock, { 'rekey:exempt': 'until=2099-01-01 audit freeze' });

    // Act
    const error = await rejectionOf(createSecondKey(deps(), plannedState()));

    // Assess
    expect(error).toMatchObject({
      name: 'UserExempt',
      message: `"${USER}" is exempt until 2099-01-01: audit freeze; stopped before creating a new access key`,
    });
    expect(iamMock).not.toHaveReceivedCommand(CreateAccessKeyCommand);
    expect(ddbMock).not.toHaveReceivedCommand(UpdateItemCommand);
    expect(smMock).not.toHaveReceivedCommand(PutSecretValueCommand);
  });

  it('marks the intent, creates the key, records it, stores it as AWSPENDING, clears the intent', async () => {
    // Prepare
    ddbMock.on(GetItemCommand).resolves(lockItem());
    mockKeys(iamMock, [old]);
    mockStorage();
    mockCreated();

    // Act
    const newKey = await createSecondKey(deps(), plannedState());

    // Assess
    expect(newKey).toEqual({
      accessKeyId: NEW_KEY_ID,
      createDate: NEW_KEY_CREATED.toISOString(),
      secretArn: SECRET_ARN,
      versionId: TOKEN,
    });
    // No GetItem: the mark's conditional write is the ownership check. No DescribeSecret: only a
    // sweep (an extra key) or a failed store needs the secret's versions.
    expect(callOrder(ddbMock, iamMock, smMock)).toEqual([
      'ListAccessKeys',
      // The eligibility re-check, right before the key is made.
      'GetUser',
      MARK,
      'CreateAccessKey',
      RECORD,
      'CreateSecret',
      'PutResourcePolicy',
      'PutSecretValue',
      CLEAR,
    ]);
    // The secret's policy names its own user, the consumers and the verify roles.
    expect(inputsOf(smMock.commandCalls(PutResourcePolicyCommand))).toEqual([
      {
        SecretId: SECRET_NAME,
        ResourcePolicy: secretResourcePolicy({
          userArn: USER_ARN,
          consumers: [CONSUMER],
          rekeyReaders: [VERIFY_ROLE],
        }),
        BlockPublicPolicy: true,
      },
    ]);
    expect(inputsOf(iamMock.commandCalls(CreateAccessKeyCommand))).toEqual([{ UserName: USER }]);
    expect(inputsOf(smMock.commandCalls(PutSecretValueCommand))).toEqual([
      {
        SecretId: SECRET_NAME,
        ClientRequestToken: TOKEN,
        SecretString: JSON.stringify({
          Version: 1,
          AccessKeyId: NEW_KEY_ID,
          SecretAccessKey: FAKE_SECRET,
          UserName: USER,
          CreateDate: NEW_KEY_CREATED.toISOString(),
        }),
        VersionStages: ['AWSPENDING'],
      },
    ]);
    expect(smMock).toHaveReceivedCommandWith(CreateSecretCommand, {
      Name: SECRET_NAME,
      KmsKeyId: KMS_KEY_ID,
    });
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand)).map((i) => i.ExpressionAttributeValues)).toEqual(
      [
        { ':owner': { S: EXECUTION_ID }, ':since': { S: NOW.toISOString() } },
        // The journal: this execution made NEW_KEY_ID, held by that version of that secret, to replace OLD_KEY_ID.
        {
          ':owner': { S: EXECUTION_ID },
          ':k': { S: NEW_KEY_ID },
          ':v': { S: TOKEN },
          ':r': { S: OLD_KEY_ID },
          ':s': { S: SECRET_NAME },
        },
        { ':owner': { S: EXECUTION_ID } },
      ],
    );
    // Every journal write, the mark first of all, is made only by the lock's owner.
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand)).map((i) => i.ConditionExpression)).toEqual([
      '#owner = :owner',
      '#owner = :owner',
      '#owner = :owner',
    ]);
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  });

  it('the returned new key carries ids only, never the secret', async () => {
    // Prepare
    ddbMock.on(GetItemCommand).resolves(lockItem());
    mockKeys(iamMock, [old]);
    mockStorage();
    mockCreated();

    // Act
    const newKey = await createSecondKey(deps(), plannedState());

    // Assess
    expect(JSON.stringify(newKey)).not.toContain(FAKE_SECRET);
  });

  it('when storing fails, deletes the new key and throws SecretNotStored without the secret in it', async () => {
    // Prepare: a service error whose message quotes the request (and so the secret).
    ddbMock.on(GetItemCommand).resolves(lockItem());
    mockKeys(iamMock, [old]);
    mockStorage();
    mockCreated();
    smMock
      .on(PutSecretValueCommand)
      .rejects(awsError('InternalServiceError', `could not store ${FAKE_SECRET}`));

    // Act
    const error = await rejectionOf(createSecondKey(deps(), plannedState()));

    // Assess
    expect(error).toBeInstanceOf(SecretNotStored);
    expect(error.name).toBe('SecretNotStored');
    expect(error.message).toBe(
      `the new access key of "${USER}" could not be stored and was deleted: InternalServiceError`,
    );
    expect(error.message).not.toContain(FAKE_SECRET);
    expect(inputsOf(iamMock.commandCalls(DeleteAccessKeyCommand))).toEqual([
      { UserName: USER, AccessKeyId: NEW_KEY_ID },
    ]);
    expect(callOrder(ddbMock, iamMock, smMock).slice(-5)).toEqual([
      'PutResourcePolicy',
      'PutSecretValue',
      'DescribeSecret',
      'DeleteAccessKey',
      'UpdateItem(REMOVE creatingSince)',
    ]);
  });

  it('when storing is denied, SecretNotStored says which permission is missing', async () => {
    // Prepare: the role may not PutSecretValue (AWS's denial names principal, action and resource).
    const denial =
      'User: arn:aws:sts::123456789012:assumed-role/create/fn is not authorized to perform: ' +
      `secretsmanager:PutSecretValue on resource: ${SECRET_NAME} because no identity-based policy allows it`;
    ddbMock.on(GetItemCommand).resolves(lockItem());
    mockKeys(iamMock, [old]);
    mockStorage();
    mockCreated();
    smMock.on(PutSecretValueCommand).rejects(awsError('AccessDeniedException', denial));

    // Act
    const error = await rejectionOf(createSecondKey(deps(), plannedState()));

    // Assess
    expect(error).toBeInstanceOf(SecretNotStored);
    expect(error.message).toBe(
      `the new access key of "${USER}" could not be stored and was deleted: AccessDeniedException: ${denial}`,
    );
    expect(inputsOf(iamMock.commandCalls(DeleteAccessKeyCommand))).toEqual([
      { UserName: USER, AccessKeyId: NEW_KEY_ID },
    ]);
  });

  it('a store whose answer was lost but which landed (its version is there) keeps the key: it is stored', async () => {
    // Prepare: PutSecretValue applied, the client saw a timeout; the secret now has the version.
    ddbMock.on(GetItemCommand).resolves(lockItem());
    mockKeys(iamMock, [old]);
    mockStorage();
    mockCreated();
    smMock.on(PutSecretValueCommand).rejects(awsError('TimeoutError'));
    smMock
      .on(DescribeSecretCommand)
      .resolves({ ARN: SECRET_ARN, VersionIdsToStages: { [TOKEN]: ['AWSCURRENT', 'AWSPENDING'] } });

    // Act
    const newKey = await createSecondKey(deps(), plannedState());

    // Assess: no compensation, the journal's intent cleared as after any stored key.
    expect(newKey).toMatchObject({ accessKeyId: NEW_KEY_ID, secretArn: SECRET_ARN, versionId: TOKEN });
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
    expect(callOrder(ddbMock, iamMock, smMock).slice(-3)).toEqual([
      'PutSecretValue',
      'DescribeSecret',
      'UpdateItem(REMOVE creatingSince)',
    ]);
  });

  it('when it cannot tell whether a failed store landed, it deletes nothing and keeps the journal for the retry', async () => {
    // Prepare
    ddbMock.on(GetItemCommand).resolves(lockItem());
    mockKeys(iamMock, [old]);
    mockStorage();
    mockCreated();
    smMock.on(PutSecretValueCommand).rejects(awsError('TimeoutError'));
    smMock.on(DescribeSecretCommand).rejects(awsError('InternalServiceError'));

    // Act
    const error = await rejectionOf(createSecondKey(deps(), plannedState()));

    // Assess: a transient error the state machine retries; the retry's sweep decides from the journal.
    expect(error.name).toBe('InternalServiceError');
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
    expect(callOrder(ddbMock, iamMock, smMock)).not.toContain('UpdateItem(REMOVE creatingSince)');
  });

  it('when recording the key in the journal fails, deletes the new key and stores nothing', async () => {
    // Prepare
    ddbMock.on(GetItemCommand).resolves(lockItem());
    mockKeys(iamMock, [old]);
    mockStorage();
    mockCreated();
    ddbMock
      .on(UpdateItemCommand, { UpdateExpression: RECORD.slice('UpdateItem('.length, -1) })
      .rejects(awsError('InternalServerError'));

    // Act & Assess
    await expect(createSecondKey(deps(), plannedState())).rejects.toMatchObject({
      name: 'SecretNotStored',
      message: expect.stringContaining('InternalServerError'),
    });
    expect(iamMock).toHaveReceivedCommandWith(DeleteAccessKeyCommand, {
      UserName: USER,
      AccessKeyId: NEW_KEY_ID,
    });
    expect(smMock).not.toHaveReceivedCommand(PutSecretValueCommand);
  });

  it('refuses a state without the user ARN (the secret policy names the user) before any call', async () => {
    // Prepare
    const state = { ...plannedState(), userArn: null };

    // Act
    const error = await rejectionOf(createSecondKey(deps(), state));

    // Assess
    expect(error).toBeInstanceOf(UnexpectedKeyState);
    expect(error.message).toBe(`the plan carries no ARN for "${USER}"; nothing was changed`);
    expect(iamMock.calls()).toHaveLength(0);
    expect(smMock.calls()).toHaveLength(0);
    expect(ddbMock.calls()).toHaveLength(0);
  });

  it("writes the consumers the user's tag names (carried by the plan) into the secret's policy, after the configured ones", async () => {
    // Prepare
    const tagged = 'arn:aws:iam::123456789012:user/apps/mailer';
    ddbMock.on(GetItemCommand).resolves(lockItem());
    mockKeys(iamMock, [old]);
    mockStorage();
    mockCreated();

    // Act
    await createSecondKey(deps(), { ...plannedState(), consumers: [tagged] });

    // Assess
    const [put] = inputsOf(smMock.commandCalls(PutResourcePolicyCommand));
    expect(JSON.parse(put?.ResourcePolicy ?? '{}').Statement[0].Principal).toEqual({
      AWS: [USER_ARN, CONSUMER, tagged],
    });
    expect(put?.ResourcePolicy).toBe(
      secretResourcePolicy({ userArn: USER_ARN, consumers: [CONSUMER, tagged], rekeyReaders: [VERIFY_ROLE] }),
    );
  });

  it('refuses a consumer the policy cannot name (an account root) before any call', async () => {
    // Prepare: a state document that did not come from the plan.
    const state = { ...plannedState(), consumers: ['arn:aws:iam::123456789012:root'] };

    // Act
    const error = await rejectionOf(createSecondKey(deps(), state));

    // Assess
    expect(error.name).toBe('ConfigurationError');
    expect(error.message).toMatch(
      /^consumer principal refused: arn:aws:iam::123456789012:root is an account root/,
    );
    expect(iamMock.calls()).toHaveLength(0);
    expect(smMock.calls()).toHaveLength(0);
    expect(ddbMock.calls()).toHaveLength(0);
  });

  /** The lock held by someone else: the mark's condition (#owner = :owner) fails. */
  function mockRivalLock(item: ReturnType<typeof lockItem> | Record<string, never>): void {
    ddbMock
      .on(UpdateItemCommand)
      .rejects(
        new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }),
      );
    ddbMock.on(GetItemCommand).resolves(item);
  }

  it('a rival holding the lock makes it refuse (RotationInProgress naming the holder) at the conditional mark, before any key exists, with reads only', async () => {
    // Prepare: no read of the lock up front; the mark, the first write, is conditional on the owner.
    mockKeys(iamMock, [old]);
    mockStorage();
    mockCreated();
    mockRivalLock(lockItem({ owner: OTHER_EXECUTION_ID }));

    // Act
    const error = await rejectionOf(createSecondKey(deps(), plannedState()));

    // Assess
    expect(error).toBeInstanceOf(RotationInProgress);
    expect(error).toMatchObject({
      message: `another rotation of "${USER}" is in progress (${OTHER_EXECUTION_ID})`,
    });
    expect(callOrder(ddbMock, iamMock, smMock)).toEqual(['ListAccessKeys', 'GetUser', MARK, 'GetItem']);
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))[0]).toMatchObject({
      ConditionExpression: '#owner = :owner',
      ExpressionAttributeValues: { ':owner': { S: EXECUTION_ID } },
    });
    expect(iamMock).not.toHaveReceivedCommand(CreateAccessKeyCommand);
    expect(smMock.calls()).toHaveLength(0);
  });

  it('throws RotationInProgress ("lock lost") when there is no lock at all, and makes no key', async () => {
    // Prepare
    mockKeys(iamMock, [old]);
    mockStorage();
    mockCreated();
    mockRivalLock({});

    // Act & Assess
    await expect(createSecondKey(deps(), plannedState())).rejects.toMatchObject({
      name: 'RotationInProgress',
      message: expect.stringContaining('(lock lost)'),
    });
    expect(iamMock).not.toHaveReceivedCommand(CreateAccessKeyCommand);
    expect(smMock.calls()).toHaveLength(0);
  });

  it('a rival holding the lock makes the sweep refuse before it deletes an extra key', async () => {
    // Prepare: an orphan-looking extra key; the journal it would trust is the rival's.
    ddbMock.on(GetItemCommand).resolves(lockItem({ owner: OTHER_EXECUTION_ID, creatingSince: NOW }));
    mockKeys(iamMock, [old, { id: EXTRA_KEY_ID, created: new Date(NOW.getTime() + 300) }]);
    mockStorage();
    mockCreated();

    // Act
    const error = await rejectionOf(createSecondKey(deps(), plannedState()));

    // Assess
    expect(error).toBeInstanceOf(RotationInProgress);
    expect(callOrder(ddbMock, iamMock, smMock)).toEqual(['ListAccessKeys', 'GetItem']);
    expectNoMutation();
  });

  it('throws UnexpectedKeyState without changing anything when the old key is gone', async () => {
    // Prepare
    ddbMock.on(GetItemCommand).resolves(lockItem());
    mockKeys(iamMock, [{ id: EXTRA_KEY_ID, created: daysAgo(3), lastUsed: daysAgo(1) }]);
    mockStorage();

    // Act & Assess
    await expect(createSecondKey(deps(), plannedState())).rejects.toMatchObject({
      name: 'UnexpectedKeyState',
      message: `access key ${OLD_KEY_ID} of "${USER}" no longer exists`,
    });
    expectNoMutation();
  });

  it('deletes an orphan (never used, created after creatingSince) before creating the new key', async () => {
    // Prepare
    const creatingSince = new Date(NOW.getTime() - 5 * 60_000);
    const orphan: KeyFixture = { id: EXTRA_KEY_ID, created: new Date(creatingSince.getTime() + 2_000) };
    ddbMock.on(GetItemCommand).resolves(lockItem({ creatingSince }));
    mockKeys(iamMock, [old, orphan]);
    mockStorage();
    mockCreated();

    // Act
    const newKey = await createSecondKey(deps(), plannedState());

    // Assess
    expect(newKey.accessKeyId).toBe(NEW_KEY_ID);
    expect(inputsOf(iamMock.commandCalls(DeleteAccessKeyCommand))).toEqual([
      { UserName: USER, AccessKeyId: EXTRA_KEY_ID },
    ]);
    expect(inputsOf(iamMock.commandCalls(GetAccessKeyLastUsedCommand))).toEqual([
      { AccessKeyId: EXTRA_KEY_ID },
    ]);
    const order = callOrder(iamMock, ddbMock);
    expect(order.indexOf('DeleteAccessKey')).toBeLessThan(order.indexOf(MARK));
    expect(order.indexOf(MARK)).toBeLessThan(order.indexOf('CreateAccessKey'));
  });

  describe('a key an earlier rotation made and never handed out (marked by the plan)', () => {
    const EARLIER_TOKEN = versionTokenFor(OTHER_EXECUTION_ID, USER, OLD_KEY_ID, EXTRA_KEY_ID);
    const earlier: KeyFixture = { id: EXTRA_KEY_ID, created: daysAgo(2), lastUsed: daysAgo(2) };
    const journal = lockItem({
      createdKeyId: EXTRA_KEY_ID,
      createdVersionId: EARLIER_TOKEN,
      createdBy: OTHER_EXECUTION_ID,
      replacedKeyId: OLD_KEY_ID,
    });
    const state = () => ({
      ...plannedState(),
      orphanKey: { accessKeyId: EXTRA_KEY_ID, createDate: daysAgo(2).toISOString() },
    });
    const secretWith = (stages: string[]) =>
      smMock.on(DescribeSecretCommand).resolves({
        ARN: SECRET_ARN,
        VersionIdsToStages: { PREVIOUS: ['AWSCURRENT'], [EARLIER_TOKEN]: stages },
      });

    it('is deleted with its AWSPENDING label before the new key is made', async () => {
      // Prepare
      ddbMock.on(GetItemCommand).resolves(journal);
      mockKeys(iamMock, [old, earlier]);
      mockStorage();
      secretWith(['AWSPENDING']);
      smMock.on(UpdateSecretVersionStageCommand).resolves({});
      mockCreated();

      // Act
      const newKey = await createSecondKey(deps(), state());

      // Assess
      expect(newKey.accessKeyId).toBe(NEW_KEY_ID);
      expect(inputsOf(iamMock.commandCalls(DeleteAccessKeyCommand))).toEqual([
        { UserName: USER, AccessKeyId: EXTRA_KEY_ID },
      ]);
      expect(inputsOf(smMock.commandCalls(UpdateSecretVersionStageCommand))).toEqual([
        { SecretId: SECRET_NAME, VersionStage: 'AWSPENDING', RemoveFromVersionId: EARLIER_TOKEN },
      ]);
      const order = callOrder(iamMock, ddbMock, smMock);
      expect(order.indexOf('DeleteAccessKey')).toBeLessThan(order.indexOf('UpdateSecretVersionStage'));
      expect(order.indexOf('UpdateSecretVersionStage')).toBeLessThan(order.indexOf('CreateAccessKey'));
    });

    it('is kept (UnexpectedKeyState, nothing changed) if its version became AWSCURRENT since the plan', async () => {
      // Prepare
      ddbMock.on(GetItemCommand).resolves(journal);
      mockKeys(iamMock, [old, earlier]);
      mockStorage();
      secretWith(['AWSCURRENT']);
      mockCreated();

      // Act
      const error = await rejectionOf(createSecondKey(deps(), state()));

      // Assess
      expect(error).toBeInstanceOf(UnexpectedKeyState);
      expectNoMutation();
      expect(smMock).not.toHaveReceivedCommand(UpdateSecretVersionStageCommand);
    });

    it('is kept if the journal no longer names it (another rotation recorded a key since)', async () => {
      // Prepare
      ddbMock.on(GetItemCommand).resolves(lockItem());
      mockKeys(iamMock, [old, earlier]);
      mockStorage();
      secretWith(['AWSPENDING']);

      // Act & Assess
      expect(await rejectionOf(createSecondKey(deps(), state()))).toBeInstanceOf(UnexpectedKeyState);
      expectNoMutation();
    });
  });

  it('counts an orphan as deleted when the retry of its delete, whose response was lost, finds it gone', async () => {
    // Prepare
    const creatingSince = new Date(NOW.getTime() - 5 * 60_000);
    const orphan: KeyFixture = { id: EXTRA_KEY_ID, created: new Date(creatingSince.getTime() + 2_000) };
    ddbMock.on(GetItemCommand).resolves(lockItem({ creatingSince }));
    mockKeys(iamMock, [old, orphan]);
    iamMock
      .on(DeleteAccessKeyCommand)
      .rejects(awsError('NoSuchEntityException', `The Access Key with id ${EXTRA_KEY_ID} cannot be found`));
    mockStorage();
    mockCreated();

    // Act
    const newKey = await createSecondKey(deps(), plannedState());

    // Assess
    expect(newKey.accessKeyId).toBe(NEW_KEY_ID);
    expect(iamMock).toHaveReceivedCommandTimes(CreateAccessKeyCommand, 1);
  });

  it('refuses (UnexpectedKeyState, zero mutating calls) when the extra key was used', async () => {
    // Prepare
    const creatingSince = new Date(NOW.getTime() - 5 * 60_000);
    ddbMock.on(GetItemCommand).resolves(lockItem({ creatingSince }));
    mockKeys(iamMock, [
      old,
      { id: EXTRA_KEY_ID, created: new Date(creatingSince.getTime() + 2_000), lastUsed: NOW },
    ]);
    mockStorage();
    mockCreated();

    // Act
    const error = await rejectionOf(createSecondKey(deps(), plannedState()));

    // Assess
    expect(error).toBeInstanceOf(UnexpectedKeyState);
    expect(error).toMatchObject({
      message: `"${USER}" has another access key, ${EXTRA_KEY_ID} (Active), that this rotation did not create; nothing was changed`,
    });
    expectNoMutation();
  });

  it('refuses (UnexpectedKeyState, zero mutating calls) a never-used extra key when no create was in progress', async () => {
    // Prepare
    ddbMock.on(GetItemCommand).resolves(lockItem());
    mockKeys(iamMock, [old, { id: EXTRA_KEY_ID, created: daysAgo(0.01) }]);
    mockStorage();

    // Act & Assess
    await expect(createSecondKey(deps(), plannedState())).rejects.toBeInstanceOf(UnexpectedKeyState);
    expectNoMutation();
  });

  it('refuses (UnexpectedKeyState) an inactive extra key: the plan deletes those before this step', async () => {
    // Prepare
    const creatingSince = new Date(NOW.getTime() - 5 * 60_000);
    ddbMock.on(GetItemCommand).resolves(lockItem({ creatingSince }));
    mockKeys(iamMock, [old, { id: EXTRA_KEY_ID, status: 'Inactive', created: NOW }]);
    mockStorage();

    // Act & Assess
    await expect(createSecondKey(deps(), plannedState())).rejects.toMatchObject({
      name: 'UnexpectedKeyState',
      message: expect.stringContaining(`${EXTRA_KEY_ID} (Inactive)`),
    });
    expectNoMutation();
  });

  it('a retry after the key was stored returns the same key, with zero CreateAccessKey calls', async () => {
    // Prepare
    ddbMock
      .on(GetItemCommand)
      .resolves(lockItem({ creatingSince: NOW, createdKeyId: NEW_KEY_ID, createdVersionId: TOKEN }));
    mockKeys(iamMock, [old, { id: NEW_KEY_ID, created: NEW_KEY_CREATED }]);
    ddbMock.on(UpdateItemCommand).resolves({});
    smMock.on(DescribeSecretCommand).resolves({
      ARN: SECRET_ARN,
      VersionIdsToStages: { 'previous-version-0000000000000000': ['AWSCURRENT'], [TOKEN]: ['AWSPENDING'] },
    });

    // Act
    const newKey = await createSecondKey(deps(), plannedState());

    // Assess
    expect(newKey).toEqual({
      accessKeyId: NEW_KEY_ID,
      createDate: NEW_KEY_CREATED.toISOString(),
      secretArn: SECRET_ARN,
      versionId: TOKEN,
    });
    expect(iamMock).not.toHaveReceivedCommand(CreateAccessKeyCommand);
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
    expect(smMock).not.toHaveReceivedCommand(PutSecretValueCommand);
    expect(callOrder(ddbMock).filter((c) => c.startsWith('UpdateItem'))).toEqual([CLEAR]);
  });

  it('a retry after a crash between recording the key and storing it deletes that key and starts over', async () => {
    // Prepare: the journal names the key, but no secret version exists under the token.
    const creatingSince = new Date(NOW.getTime() - 60_000);
    const unstored: KeyFixture = { id: EXTRA_KEY_ID, created: new Date(creatingSince.getTime() + 500) };
    ddbMock
      .on(GetItemCommand)
      .resolves(lockItem({ creatingSince, createdKeyId: EXTRA_KEY_ID, createdVersionId: TOKEN }));
    mockKeys(iamMock, [old, unstored]);
    mockStorage();
    mockCreated();

    // Act
    const newKey = await createSecondKey(deps(), plannedState());

    // Assess
    expect(newKey.accessKeyId).toBe(NEW_KEY_ID);
    expect(inputsOf(iamMock.commandCalls(DeleteAccessKeyCommand))).toEqual([
      { UserName: USER, AccessKeyId: EXTRA_KEY_ID },
    ]);
    expect(iamMock).toHaveReceivedCommandTimes(CreateAccessKeyCommand, 1);
  });

  it('when CreateAccessKey fails (response lost), sweeps the key it may have created and rethrows', async () => {
    // Prepare
    const lost = awsError('ServiceFailure', 'We encountered an internal error');
    const ghost: KeyFixture = { id: EXTRA_KEY_ID, created: new Date(NOW.getTime() + 300) };
    // The sweep after the failure reads the journal as the mark left it.
    ddbMock.on(GetItemCommand).resolves(lockItem({ creatingSince: NOW }));
    mockKeys(iamMock, [old]);
    mockKeyAppearing(ghost);
    mockStorage();
    iamMock.on(CreateAccessKeyCommand).rejects(lost);

    // Act
    const error = await rejectionOf(createSecondKey(deps(), plannedState()));

    // Assess
    expect(error).toBe(lost);
    expect(inputsOf(iamMock.commandCalls(DeleteAccessKeyCommand))).toEqual([
      { UserName: USER, AccessKeyId: EXTRA_KEY_ID },
    ]);
    expect(iamMock).toHaveReceivedCommandTimes(CreateAccessKeyCommand, 1);
    expect(smMock).not.toHaveReceivedCommand(PutSecretValueCommand);
  });

  it('LimitExceeded with nothing to sweep -> UnexpectedKeyState, nothing deleted', async () => {
    // Prepare
    ddbMock.on(GetItemCommand).resolves(lockItem({ creatingSince: NOW }));
    mockKeys(iamMock, [old]);
    mockStorage();
    iamMock.on(CreateAccessKeyCommand).rejects(
      new LimitExceededException({
        message: 'Cannot exceed quota for AccessKeysPerUser: 2',
        $metadata: {},
      }),
    );

    // Act
    const error = await rejectionOf(createSecondKey(deps(), plannedState()));

    // Assess
    expect(error).toBeInstanceOf(UnexpectedKeyState);
    expect(error).toMatchObject({ message: `"${USER}" already has two access keys; nothing was changed` });
    expect(iamMock).toHaveReceivedCommandTimes(CreateAccessKeyCommand, 1);
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  });

  it('LimitExceeded because a used key appeared -> UnexpectedKeyState naming it, nothing deleted', async () => {
    // Prepare
    const rival: KeyFixture = { id: EXTRA_KEY_ID, created: NOW, lastUsed: NOW };
    ddbMock.on(GetItemCommand).resolves(lockItem({ creatingSince: NOW }));
    mockKeyAppearing(rival);
    mockStorage();
    iamMock
      .on(CreateAccessKeyCommand)
      .rejects(new LimitExceededException({ message: 'quota', $metadata: {} }));

    // Act & Assess
    await expect(createSecondKey(deps(), plannedState())).rejects.toMatchObject({
      name: 'UnexpectedKeyState',
      message: expect.stringContaining(EXTRA_KEY_ID),
    });
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
    expect(iamMock).toHaveReceivedCommandTimes(CreateAccessKeyCommand, 1);
  });

  it('LimitExceeded caused by its own lost first attempt: sweeps that orphan and creates once more', async () => {
    // Prepare
    const ghost: KeyFixture = { id: EXTRA_KEY_ID, created: new Date(NOW.getTime() + 300) };
    ddbMock.on(GetItemCommand).resolves(lockItem({ creatingSince: NOW }));
    mockKeyAppearing(ghost);
    mockStorage();
    iamMock
      .on(CreateAccessKeyCommand)
      .rejectsOnce(new LimitExceededException({ message: 'quota', $metadata: {} }))
      .resolves({
        AccessKey: {
          UserName: USER,
          AccessKeyId: NEW_KEY_ID,
          SecretAccessKey: FAKE_SECRET,
          Status: 'Active',
          CreateDate: NEW_KEY_CREATED,
        },
      });

    // Act
    const newKey = await createSecondKey(deps(), plannedState());

    // Assess
    expect(newKey.accessKeyId).toBe(NEW_KEY_ID);
    expect(iamMock).toHaveReceivedCommandTimes(CreateAccessKeyCommand, 2);
    expect(inputsOf(iamMock.commandCalls(DeleteAccessKeyCommand))).toEqual([
      { UserName: USER, AccessKeyId: EXTRA_KEY_ID },
    ]);
    const order = callOrder(iamMock);
    expect(order.indexOf('DeleteAccessKey')).toBeGreaterThan(order.indexOf('CreateAccessKey'));
    expect(order.lastIndexOf('CreateAccessKey')).toBeGreaterThan(order.indexOf('DeleteAccessKey'));
  });

  it('LimitExceeded twice does not loop: one extra attempt only, then UnexpectedKeyState', async () => {
    // Prepare
    const ghost: KeyFixture = { id: EXTRA_KEY_ID, created: new Date(NOW.getTime() + 300) };
    ddbMock.on(GetItemCommand).resolves(lockItem({ creatingSince: NOW }));
    mockKeyAppearing(ghost);
    mockStorage();
    // A third attempt would succeed: an unbounded retry fails this test instead of hanging it.
    const limit = () => new LimitExceededException({ message: 'quota', $metadata: {} });
    iamMock
      .on(CreateAccessKeyCommand)
      .rejectsOnce(limit())
      .rejectsOnce(limit())
      .resolves({
        AccessKey: {
          UserName: USER,
          AccessKeyId: NEW_KEY_ID,
          SecretAccessKey: FAKE_SECRET,
          Status: 'Active',
          CreateDate: NEW_KEY_CREATED,
        },
      });

    // Act & Assess
    await expect(createSecondKey(deps(), plannedState())).rejects.toBeInstanceOf(UnexpectedKeyState);
    expect(iamMock).toHaveReceivedCommandTimes(CreateAccessKeyCommand, 2);
  });

  it('its longest path makes exactly its hub-path calls (STEPS[create-second-key].calls less memberAccountCalls), compensation included', async () => {
    // Prepare: the plan marked a key an earlier rotation made and never handed out; the first
    // sweep asks its version again, deletes it and drops its AWSPENDING label, a move the SDK
    // retried after a lost answer (refused, so the labels are read again). The first create is
    // lost to LimitExceeded (its own ghost key); the second sweep reads the journal as the mark
    // left it, so the earlier key's record is gone and the ghost is swept as a crash orphan. The
    // second create is stored but refused; the compensation's journal write is lost to a rival.
    const earlierToken = versionTokenFor(OTHER_EXECUTION_ID, USER, OLD_KEY_ID, EXTRA_KEY_ID);
    const creatingSince = NOW;
    const earlier = { id: EXTRA_KEY_ID, created: daysAgo(2) };
    const ghost = { id: 'AKIAGHOSTKEY00000004', created: new Date(NOW.getTime() + 300) };
    const listed = (k: { id: string; created: Date }) => ({
      UserName: USER,
      AccessKeyId: k.id,
      Status: 'Active' as const,
      CreateDate: k.created,
    });
    ddbMock
      .on(GetItemCommand)
      .resolvesOnce(
        lockItem({
          createdKeyId: EXTRA_KEY_ID,
          createdVersionId: earlierToken,
          createdBy: OTHER_EXECUTION_ID,
          replacedKeyId: OLD_KEY_ID,
        }),
      )
      .resolvesOnce(lockItem({ creatingSince }))
      .resolves(lockItem({ owner: OTHER_EXECUTION_ID }));
    iamMock
      .on(ListAccessKeysCommand)
      .resolvesOnce({
        AccessKeyMetadata: [listed({ id: OLD_KEY_ID, created: OLD_KEY_CREATED }), listed(earlier)],
      })
      .resolves({ AccessKeyMetadata: [listed({ id: OLD_KEY_ID, created: OLD_KEY_CREATED }), listed(ghost)] });
    mockLastUse(iamMock, ghost);
    mockStorage();
    const pending = { PREVIOUS: ['AWSCURRENT'], [earlierToken]: ['AWSPENDING'] };
    smMock
      .on(DescribeSecretCommand)
      .resolvesOnce({ ARN: SECRET_ARN, VersionIdsToStages: pending })
      .resolvesOnce({ ARN: SECRET_ARN, VersionIdsToStages: pending })
      .resolvesOnce({ ARN: SECRET_ARN, VersionIdsToStages: { PREVIOUS: ['AWSCURRENT'], [earlierToken]: [] } })
      .resolves({ ARN: SECRET_ARN, VersionIdsToStages: { PREVIOUS: ['AWSCURRENT'] } });
    smMock.on(UpdateSecretVersionStageCommand).rejects(awsError('InvalidParameterException'));
    smMock.on(CreateSecretCommand).rejects(awsError('ResourceExistsException'));
    ddbMock
      .on(UpdateItemCommand)
      .resolvesOnce({})
      .resolvesOnce({})
      .resolvesOnce({})
      .resolvesOnce({})
      .rejects(
        new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }),
      );
    iamMock
      .on(CreateAccessKeyCommand)
      .rejectsOnce(new LimitExceededException({ message: 'quota', $metadata: {} }))
      .resolves({
        AccessKey: {
          UserName: USER,
          AccessKeyId: NEW_KEY_ID,
          SecretAccessKey: FAKE_SECRET,
          Status: 'Active',
          CreateDate: NEW_KEY_CREATED,
        },
      });
    smMock.on(PutSecretValueCommand).rejects(awsError('InternalServiceError'));

    // Act
    const error = await rejectionOf(
      createSecondKey(deps(), {
        ...plannedState(),
        orphanKey: { accessKeyId: EXTRA_KEY_ID, createDate: earlier.created.toISOString() },
      }),
    );

    // Assess
    expect(error).toBeInstanceOf(RotationInProgress);
    expect(callOrder(ddbMock, iamMock, smMock)).toEqual([
      'ListAccessKeys',
      'GetItem',
      'DescribeSecret',
      'DescribeSecret',
      'DeleteAccessKey',
      'UpdateSecretVersionStage',
      'DescribeSecret',
      'GetUser',
      MARK,
      'CreateAccessKey',
      'ListAccessKeys',
      'GetItem',
      'GetAccessKeyLastUsed',
      'DeleteAccessKey',
      CLEAR,
      'GetUser',
      MARK,
      'CreateAccessKey',
      RECORD,
      'CreateSecret',
      'PutResourcePolicy',
      'PutSecretValue',
      'DescribeSecret',
      'DeleteAccessKey',
      CLEAR,
      'GetItem',
    ]);
    expect(inputsOf(iamMock.commandCalls(DeleteAccessKeyCommand)).map((i) => i.AccessKeyId)).toEqual([
      EXTRA_KEY_ID,
      ghost.id,
      NEW_KEY_ID,
    ]);
    expect(callOrder(ddbMock, iamMock, smMock)).toHaveLength(hubPathCalls('create-second-key'));
  });

  it('CreateAccessKey returning no secret -> UnexpectedKeyState and nothing stored', async () => {
    // Prepare
    ddbMock.on(GetItemCommand).resolves(lockItem());
    mockKeys(iamMock, [old]);
    mockStorage();
    iamMock.on(CreateAccessKeyCommand).resolves({
      AccessKey: { UserName: USER, AccessKeyId: NEW_KEY_ID, SecretAccessKey: '', Status: 'Active' },
    });

    // Act & Assess
    await expect(createSecondKey(deps(), plannedState())).rejects.toMatchObject({
      name: 'UnexpectedKeyState',
      message: 'CreateAccessKey returned no key',
    });
    expect(smMock).not.toHaveReceivedCommand(PutSecretValueCommand);
  });

  it('does not delete an active key made by hand days after a failed attempt left creatingSince', async () => {
    // Prepare
    const staleSince = daysAgo(10);
    const handMade: KeyFixture = { id: EXTRA_KEY_ID, created: daysAgo(1) };
    ddbMock.on(GetItemCommand).resolves(lockItem({ creatingSince: staleSince }));
    mockKeys(iamMock, [old, handMade]);
    mockStorage();
    mockCreated();

    // Act
    const outcome = await rejectionOf(createSecondKey(deps(), plannedState()));

    // Assess
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
    expect(outcome).toBeInstanceOf(UnexpectedKeyState);
  });
});

describe('createSecondKey: a service-specific credential', () => {
  const deps = () => ({
    iam,
    secretsManager,
    lock: { dynamodb, table: LOCK_TABLE },
    clock: fakeClock(),
    env: {
      ...ELIGIBILITY,
      REKEY_KMS_KEY_ID: KMS_KEY_ID,
      REKEY_CONSUMER_PRINCIPALS: [],
      REKEY_SECRET_READER_ROLES: undefined,
      REKEY_HUB_ACCOUNT_ID: ACCOUNT,
    },
  });
  const created = {
    ServiceSpecificCredential: {
      UserName: USER,
      ServiceName: SERVICE,
      ServiceUserName: SERVICE_USER,
      ServicePassword: PASSWORD,
      ServiceSpecificCredentialId: NEW_ID,
      Status: 'Active' as const,
      CreateDate: NEW_CREATED,
    },
  };

  beforeEach(() => {
    ddbMock.on(GetItemCommand).resolves(serviceLockItem());
    ddbMock.on(UpdateItemCommand).resolves({});
    smMock
      .on(DescribeSecretCommand)
      .rejects(new ResourceNotFoundException({ message: 'none', $metadata: {} }));
    smMock.on(CreateSecretCommand).resolves({ ARN: SERVICE_SECRET_ARN });
    smMock.on(PutSecretValueCommand).resolves({ ARN: SERVICE_SECRET_ARN, VersionId: SERVICE_TOKEN });
    mockListed(iamMock, [{ id: OLD_ID }]);
  });

  it('creates the credential and stores the four fields (plus user and date) as AWSPENDING', async () => {
    iamMock.on(CreateServiceSpecificCredentialCommand).resolves(created);

    const newKey = await createSecondKey(deps(), plannedServiceState());

    expect(newKey).toEqual({
      accessKeyId: NEW_ID,
      createDate: NEW_CREATED.toISOString(),
      serviceUserName: SERVICE_USER,
      secretArn: SERVICE_SECRET_ARN,
      versionId: SERVICE_TOKEN,
    });
    expect(JSON.stringify(newKey)).not.toContain(PASSWORD);
    expect(inputsOf(iamMock.commandCalls(CreateServiceSpecificCredentialCommand))).toEqual([
      { UserName: USER, ServiceName: SERVICE },
    ]);
    expect(inputsOf(smMock.commandCalls(CreateSecretCommand))).toEqual([
      {
        Name: SERVICE_SECRET_NAME,
        KmsKeyId: KMS_KEY_ID,
        Description: `Service-specific credential for ${SERVICE} of IAM user ${USER}, rotated by rekey`,
        Tags: [
          { Key: 'rekey:user', Value: USER },
          { Key: 'rekey:service', Value: SERVICE },
          { Key: 'rekey:managed', Value: 'true' },
        ],
      },
    ]);
    expect(inputsOf(smMock.commandCalls(PutSecretValueCommand))).toEqual([
      {
        SecretId: SERVICE_SECRET_NAME,
        ClientRequestToken: SERVICE_TOKEN,
        SecretString: storedServiceValue(),
        VersionStages: ['AWSPENDING'],
      },
    ]);
    // The journal is kept on the user-and-service lock item.
    for (const input of inputsOf(ddbMock.commandCalls(UpdateItemCommand))) {
      expect(input.Key).toEqual({ userName: { S: `${USER}/${SERVICE}` } });
    }
    expect(iamMock).not.toHaveReceivedCommand(ListAccessKeysCommand);
  });

  it('at the two-per-service limit: UnexpectedKeyState, nothing created or deleted', async () => {
    iamMock.on(CreateServiceSpecificCredentialCommand).rejects(
      new LimitExceededException({
        message: 'Cannot exceed quota for ServiceSpecificCredentialsPerUserPerService: 2',
        $metadata: {},
      }),
    );

    const error = await rejectionOf(createSecondKey(deps(), plannedServiceState()));

    expect(error).toBeInstanceOf(UnexpectedKeyState);
    expect(error.message).toBe(
      `"${USER}" already has two service-specific credentials for ${SERVICE}; nothing was changed`,
    );
    expect(iamMock).not.toHaveReceivedCommand(DeleteServiceSpecificCredentialCommand);
    expect(smMock).not.toHaveReceivedCommand(PutSecretValueCommand);
  });

  it('a failed store deletes the new credential again (SecretNotStored, no password in the message)', async () => {
    iamMock.on(CreateServiceSpecificCredentialCommand).resolves(created);
    iamMock.on(DeleteServiceSpecificCredentialCommand).resolves({});
    smMock.on(PutSecretValueCommand).rejects(awsError('InternalServiceError', `value ${PASSWORD}`));

    const error = await rejectionOf(createSecondKey(deps(), plannedServiceState()));

    expect(error).toBeInstanceOf(SecretNotStored);
    expect(error.message).toBe(
      `the new service-specific credential for ${SERVICE} of "${USER}" could not be stored and was deleted: InternalServiceError`,
    );
    expect(inputsOf(iamMock.commandCalls(DeleteServiceSpecificCredentialCommand))).toEqual([
      { UserName: USER, ServiceSpecificCredentialId: NEW_ID },
    ]);
  });

  it('a failed store whose delete response was lost (the retry finds the credential gone) is still SecretNotStored', async () => {
    iamMock.on(CreateServiceSpecificCredentialCommand).resolves(created);
    iamMock
      .on(DeleteServiceSpecificCredentialCommand)
      .rejects(
        awsError(
          'NoSuchEntityException',
          `The Service Specific Credential with id ${NEW_ID} cannot be found`,
        ),
      );
    smMock.on(PutSecretValueCommand).rejects(awsError('InternalServiceError'));

    const error = await rejectionOf(createSecondKey(deps(), plannedServiceState()));

    expect(error).toBeInstanceOf(SecretNotStored);
    expect(error.message).toMatch(/could not be stored and was deleted/);
  });

  it('deletes an orphan of a crashed attempt (journal) before creating, never a third credential', async () => {
    const since = new Date(NOW.getTime() - 60_000);
    ddbMock.on(GetItemCommand).resolves(serviceLockItem({ creatingSince: { S: since.toISOString() } }));
    mockListed(iamMock, [{ id: OLD_ID }, { id: EXTRA_ID, created: new Date(since.getTime() + 1000) }]);
    iamMock.on(DeleteServiceSpecificCredentialCommand).resolves({});
    iamMock.on(CreateServiceSpecificCredentialCommand).resolves(created);

    await createSecondKey(deps(), plannedServiceState());

    expect(inputsOf(iamMock.commandCalls(DeleteServiceSpecificCredentialCommand))).toEqual([
      { UserName: USER, ServiceSpecificCredentialId: EXTRA_ID },
    ]);
    expect(iamMock.commandCalls(CreateServiceSpecificCredentialCommand)).toHaveLength(1);
  });
});

describe("secretSettings: where a member account user's secret is kept", () => {
  const env = {
    ...ELIGIBILITY,
    REKEY_KMS_KEY_ID: KMS_KEY_ID,
    REKEY_CONSUMER_PRINCIPALS: [],
    REKEY_SECRET_READER_ROLES: [VERIFY_ROLE],
    REKEY_HUB_ACCOUNT_ID: ACCOUNT,
    REKEY_MEMBER_ROLE_PREFIX: 'rekey-member-',
  };
  const MEMBER = '210987654321';

  it("the hub's own account, or secrets in the hub: the hub's key and reader roles", () => {
    const hub = { kmsKeyId: KMS_KEY_ID, rekeyReaders: [VERIFY_ROLE] };
    expect(secretSettings({ ...env, REKEY_SECRETS_LOCATION: 'member' }, ACCOUNT)).toEqual(hub);
    expect(secretSettings({ ...env, REKEY_SECRETS_LOCATION: 'hub' }, MEMBER)).toEqual(hub);
  });

  it("secrets in the member account: the member stack's key, the verify steps' member roles", () => {
    expect(secretSettings({ ...env, REKEY_SECRETS_LOCATION: 'member' }, MEMBER)).toEqual({
      kmsKeyId: 'alias/rekey-member-secrets',
      rekeyReaders: [
        `arn:aws:iam::${MEMBER}:role/rekey-member-verify-new-key`,
        `arn:aws:iam::${MEMBER}:role/rekey-member-verify-rotation`,
      ],
    });
  });
});
