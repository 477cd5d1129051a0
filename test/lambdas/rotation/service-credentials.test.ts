/**
 * Service-specific credentials (Keyspaces, CodeCommit) through every step: the exact IAM,
 * Secrets Manager and DynamoDB inputs, the named errors, and the words the notifications use.
 */

import { LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import { GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { PutEventsCommand } from '@aws-sdk/client-eventbridge';
import {
  CreateServiceSpecificCredentialCommand,
  DeleteAccessKeyCommand,
  DeleteServiceSpecificCredentialCommand,
  GetAccessKeyLastUsedCommand,
  GetUserCommand,
  LimitExceededException,
  ListAccessKeysCommand,
  ListServiceSpecificCredentialsCommand,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  ResourceNotFoundException,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { PublishCommand } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  InvalidInput,
  NewKeyNotWorking,
  RotationVerificationFailed,
  SecretNotStored,
  UnexpectedKeyState,
  UnsafeToDelete,
} from '../../../contract/errors.ts';
import type { KeyRef, NewKey, RotationState } from '../../../contract/schemas.ts';
import { checkLastUsed } from '../../../lambdas/rotation/check-last-used/check-last-used.ts';
import { createSecondKey } from '../../../lambdas/rotation/create-second-key/create-second-key.ts';
import { deactivateOldKey } from '../../../lambdas/rotation/deactivate-old-key/deactivate-old-key.ts';
import { deleteKey } from '../../../lambdas/rotation/delete-key/delete-key.ts';
import { detailOf, notify } from '../../../lambdas/rotation/notify/notify.ts';
import { parseRotationInput, planRotation } from '../../../lambdas/rotation/plan/plan.ts';
import { reactivateOldKey } from '../../../lambdas/rotation/reactivate-old-key/reactivate-old-key.ts';
import { verifyNewKey } from '../../../lambdas/rotation/verify-new-key/verify-new-key.ts';
import { verifyRotation } from '../../../lambdas/rotation/verify-rotation/verify-rotation.ts';
import {
  cloudTrail,
  dynamodb,
  eventBridge,
  iam,
  secretsManager,
  sns,
} from '../../../lambdas/shared/clients.ts';
import { credentialKindOfId, serviceCredentials } from '../../../lambdas/shared/credentials.ts';
import { lockSubject } from '../../../lambdas/shared/lock.ts';
import { secretNameFor, versionTokenFor } from '../../../lambdas/shared/secret.ts';
import {
  awsError,
  daysAgo,
  ELIGIBILITY,
  EXECUTION_ID,
  fakeClock,
  inputsOf,
  KMS_KEY_ID,
  LOCK_TABLE,
  mockEligibleUser,
  NOW,
  plannedState as plannedAccessKeyState,
  rejectionOf,
  silenceLogs,
  TOPIC_ARN,
  USER,
  USER_ARN,
} from '../../support/lambda-fixtures.ts';

const iamMock = mockClient(iam);
const smMock = mockClient(secretsManager);
const ddbMock = mockClient(dynamodb);
const ctMock = mockClient(cloudTrail);
const snsMock = mockClient(sns);
const ebMock = mockClient(eventBridge);

const SERVICE = 'cassandra.amazonaws.com' as const;
const OLD_ID = 'ACCAOLDCREDENTIAL0001';
const NEW_ID = 'ACCANEWCREDENTIAL0002';
const EXTRA_ID = 'ACCAEXTRACREDENTIAL03';
const SERVICE_USER = `${USER}-at-123456789012`;
/** A made-up service password: it must never appear in results, messages or events. */
const PASSWORD = 'sErViCePaSsWoRd/DoNoTuSe+0123456789=';
const SECRET_NAME = `rekey/${USER}/${SERVICE}`;
const SECRET_ARN = `arn:aws:secretsmanager:us-east-1:123456789012:secret:${SECRET_NAME}-AbCdEf`;
const TOKEN = versionTokenFor(EXECUTION_ID, USER, OLD_ID, NEW_ID);
const OLD_CREATED = daysAgo(120);
const NEW_CREATED = daysAgo(9);
const nowEpoch = Math.floor(NOW.getTime() / 1000);

interface Listed {
  id: string;
  status?: 'Active' | 'Inactive';
  created?: Date;
  serviceUserName?: string;
}
function mockListed(list: Listed[]): void {
  iamMock.on(ListServiceSpecificCredentialsCommand).resolves({
    ServiceSpecificCredentials: list.map((c) => ({
      UserName: USER,
      ServiceName: SERVICE,
      ServiceSpecificCredentialId: c.id,
      ServiceUserName: c.serviceUserName ?? SERVICE_USER,
      Status: c.status ?? 'Active',
      CreateDate: c.created ?? OLD_CREATED,
    })),
  });
}

/** The access-key plan of helpers.ts, for this user's Keyspaces credential. */
function plannedState(): RotationState & { oldKey: KeyRef } {
  return {
    ...plannedAccessKeyState(),
    serviceName: SERVICE,
    secretName: SECRET_NAME,
    message: 'rotate',
    oldKey: { accessKeyId: OLD_ID, createDate: OLD_CREATED.toISOString(), lastUsedDate: null },
  };
}
function stateWithNewKey(): RotationState & { oldKey: KeyRef; newKey: NewKey; quietSince: string } {
  return {
    ...plannedState(),
    quietSince: NEW_CREATED.toISOString(),
    newKey: {
      accessKeyId: NEW_ID,
      createDate: NEW_CREATED.toISOString(),
      serviceUserName: SERVICE_USER,
      secretArn: SECRET_ARN,
      versionId: TOKEN,
    },
  };
}
const storedValue = (over: Record<string, string> = {}) =>
  JSON.stringify({
    ServiceUserName: SERVICE_USER,
    ServicePassword: PASSWORD,
    ServiceSpecificCredentialId: NEW_ID,
    ServiceName: SERVICE,
    UserName: USER,
    CreateDate: NEW_CREATED.toISOString(),
    ...over,
  });
const lockItem = (over: Record<string, { S: string }> = {}) => ({
  Item: {
    userName: { S: `${USER}/${SERVICE}` },
    owner: { S: EXECUTION_ID },
    expiresAt: { N: String(nowEpoch + 3600) },
    ...over,
  },
});

beforeAll(silenceLogs);
beforeEach(() => {
  for (const m of [iamMock, smMock, ddbMock, ctMock, snsMock, ebMock]) m.reset();
  mockEligibleUser(iamMock);
});

describe('the input and the names', () => {
  it('accepts each service and refuses any other, naming the allowed ones', () => {
    expect(parseRotationInput({ userName: USER, serviceName: 'codecommit.amazonaws.com' })).toEqual({
      userName: USER,
      serviceName: 'codecommit.amazonaws.com',
    });
    const error = (() => {
      try {
        parseRotationInput({ userName: USER, serviceName: 's3.amazonaws.com' });
      } catch (e) {
        return e as Error;
      }
      throw new Error('accepted');
    })();
    expect(error).toBeInstanceOf(InvalidInput);
    expect(error.message).toBe(
      'invalid rotation request: serviceName: serviceName must be one of cassandra.amazonaws.com, codecommit.amazonaws.com',
    );
  });

  it('names the secret <prefix><user>/<service> and the lock per user and service', () => {
    expect(secretNameFor('rekey/', USER, SERVICE)).toBe(SECRET_NAME);
    expect(secretNameFor('rekey/', USER)).toBe(`rekey/${USER}`);
    expect(lockSubject(USER, SERVICE)).toBe(`${USER}/${SERVICE}`);
    expect(lockSubject(USER)).toBe(USER);
  });
});

describe('the service-specific credential kind', () => {
  it('lists through the paginator, following Marker, filtered by user and service', async () => {
    // The paginator reuses one input object across pages: each request is copied as it is sent.
    const sent: object[] = [];
    const page = (id: string, status: 'Active' | 'Inactive', created: Date, marker?: string) => ({
      ...(marker ? { IsTruncated: true, Marker: marker } : {}),
      ServiceSpecificCredentials: [
        {
          UserName: USER,
          ServiceName: SERVICE,
          ServiceSpecificCredentialId: id,
          Status: status,
          CreateDate: created,
          ServiceUserName: `u-${id}`,
        },
      ],
    });
    iamMock.on(ListServiceSpecificCredentialsCommand).callsFake((input: { Marker?: string }) => {
      sent.push({ ...input });
      return input.Marker === 'page-2'
        ? page(NEW_ID, 'Inactive', NEW_CREATED)
        : page(OLD_ID, 'Active', OLD_CREATED, 'page-2');
    });

    const listed = await serviceCredentials(iam, SERVICE).list(USER);

    expect(listed).toEqual([
      { accessKeyId: OLD_ID, status: 'Active', createDate: OLD_CREATED, serviceUserName: `u-${OLD_ID}` },
      { accessKeyId: NEW_ID, status: 'Inactive', createDate: NEW_CREATED, serviceUserName: `u-${NEW_ID}` },
    ]);
    expect(sent).toEqual([
      { UserName: USER, ServiceName: SERVICE },
      { UserName: USER, ServiceName: SERVICE, Marker: 'page-2' },
    ]);
  });

  it('reports no last-used data (never "unused") without calling IAM', async () => {
    const kind = serviceCredentials(iam, SERVICE);
    expect(await kind.lastUse(OLD_ID)).toEqual({ date: null, service: null, region: null, untracked: true });
    expect(kind.tracksLastUse).toBe(false);
    expect(iamMock.calls()).toHaveLength(0);
  });

  it('tells the kind of a bare id by its prefix: ACCA is a service-specific credential', () => {
    expect(credentialKindOfId(iam, OLD_ID).noun).toBe('service-specific credential');
    expect(credentialKindOfId(iam, 'AKIAOLDKEY0000000001').noun).toBe('access key');
  });
});

describe('planRotation', () => {
  const env = {
    REKEY_SECRET_PREFIX: 'rekey/',
    REKEY_LOCK_TTL_SECONDS: 3600,
    REKEY_EXEMPT_TAG: 'rekey:exempt',
    REKEY_PROTECTED_USERS: [],
    REKEY_USER_PATH_PREFIX: '/',
    REKEY_OPT_IN_TAG: undefined,
  };
  const deps = () => ({
    iam,
    secretsManager,
    lock: { dynamodb, table: LOCK_TABLE },
    clock: fakeClock(),
    env,
  });
  const request = (dryRun = false) => ({
    input: { userName: USER, serviceName: SERVICE, ...(dryRun ? { dryRun } : {}) },
    executionId: EXECUTION_ID,
  });

  beforeEach(() => {
    iamMock.on(GetUserCommand).resolves({ User: { UserName: USER, Arn: USER_ARN, Path: '/' } as never });
    ddbMock.on(GetItemCommand).resolves({});
    ddbMock.on(UpdateItemCommand).resolves({ Attributes: lockItem().Item });
  });

  it('plans the rotation of the one active credential, locking the user and service only', async () => {
    mockListed([{ id: OLD_ID }]);

    const plan = await planRotation(deps(), request());

    expect(plan).toMatchObject({
      userName: USER,
      serviceName: SERVICE,
      secretName: SECRET_NAME,
      action: 'ROTATE',
      oldKey: { accessKeyId: OLD_ID, createDate: OLD_CREATED.toISOString(), lastUsedDate: null },
      extraKey: null,
      orphanKey: null,
    });
    expect(plan.steps.join('\n')).toMatch(/create a second service-specific credential for cassandra/);
    expect(plan.steps.join('\n')).toMatch(/no last-used data/);
    expect(inputsOf(iamMock.commandCalls(ListServiceSpecificCredentialsCommand))).toEqual([
      { UserName: USER, ServiceName: SERVICE },
    ]);
    expect(iamMock).not.toHaveReceivedCommand(ListAccessKeysCommand);
    expect(iamMock).not.toHaveReceivedCommand(GetAccessKeyLastUsedCommand);
    expect(inputsOf(ddbMock.commandCalls(GetItemCommand))[0]?.Key).toEqual({
      userName: { S: `${USER}/${SERVICE}` },
    });
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))[0]?.Key).toEqual({
      userName: { S: `${USER}/${SERVICE}` },
    });
  });

  it('stops with TwoActiveKeys and an alert when both credentials are active, taking no lock', async () => {
    mockListed([{ id: OLD_ID }, { id: NEW_ID, created: NEW_CREATED }]);

    const plan = await planRotation(deps(), request());

    expect(plan).toMatchObject({ action: 'STOP', stopReason: 'TwoActiveKeys', alert: true });
    expect(plan.message).toMatch(
      /has two active service-specific credentials for cassandra\.amazonaws\.com, ACCAOLD.*no last-used data/,
    );
    expect(ddbMock).not.toHaveReceivedCommand(UpdateItemCommand);
  });

  it('stops with an alert on an extra Inactive credential instead of deleting it (nobody can show it was never used)', async () => {
    mockListed([{ id: OLD_ID }, { id: EXTRA_ID, status: 'Inactive', created: daysAgo(200) }]);

    const plan = await planRotation(deps(), request());

    expect(plan).toMatchObject({
      action: 'STOP',
      stopReason: 'InactiveUsageUnknown',
      alert: true,
      extraKey: null,
    });
    expect(plan.message).toMatch(
      /has an inactive service-specific credential for cassandra\.amazonaws\.com, ACCAEXTRA.*no last-used data.*does not delete it/,
    );
    expect(ddbMock).not.toHaveReceivedCommand(UpdateItemCommand);
  });

  it('says "no service-specific credentials" when there is none', async () => {
    mockListed([]);
    const plan = await planRotation(deps(), request());
    expect(plan).toMatchObject({ action: 'STOP', stopReason: 'NoAccessKeys' });
    expect(plan.message).toBe(
      `"${USER}" has no service-specific credentials for cassandra.amazonaws.com: nothing to rotate`,
    );
  });
});

describe('createSecondKey', () => {
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
    ddbMock.on(GetItemCommand).resolves(lockItem());
    ddbMock.on(UpdateItemCommand).resolves({});
    smMock
      .on(DescribeSecretCommand)
      .rejects(new ResourceNotFoundException({ message: 'none', $metadata: {} }));
    smMock.on(CreateSecretCommand).resolves({ ARN: SECRET_ARN });
    smMock.on(PutSecretValueCommand).resolves({ ARN: SECRET_ARN, VersionId: TOKEN });
    mockListed([{ id: OLD_ID }]);
  });

  it('creates the credential and stores the four fields (plus user and date) as AWSPENDING', async () => {
    iamMock.on(CreateServiceSpecificCredentialCommand).resolves(created);

    const newKey = await createSecondKey(deps(), plannedState());

    expect(newKey).toEqual({
      accessKeyId: NEW_ID,
      createDate: NEW_CREATED.toISOString(),
      serviceUserName: SERVICE_USER,
      secretArn: SECRET_ARN,
      versionId: TOKEN,
    });
    expect(JSON.stringify(newKey)).not.toContain(PASSWORD);
    expect(inputsOf(iamMock.commandCalls(CreateServiceSpecificCredentialCommand))).toEqual([
      { UserName: USER, ServiceName: SERVICE },
    ]);
    expect(inputsOf(smMock.commandCalls(CreateSecretCommand))).toEqual([
      {
        Name: SECRET_NAME,
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
        SecretId: SECRET_NAME,
        ClientRequestToken: TOKEN,
        SecretString: storedValue(),
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

    const error = await rejectionOf(createSecondKey(deps(), plannedState()));

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

    const error = await rejectionOf(createSecondKey(deps(), plannedState()));

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

    const error = await rejectionOf(createSecondKey(deps(), plannedState()));

    expect(error).toBeInstanceOf(SecretNotStored);
    expect(error.message).toMatch(/could not be stored and was deleted/);
  });

  it('deletes an orphan of a crashed attempt (journal) before creating, never a third credential', async () => {
    const since = new Date(NOW.getTime() - 60_000);
    ddbMock.on(GetItemCommand).resolves(lockItem({ creatingSince: { S: since.toISOString() } }));
    mockListed([{ id: OLD_ID }, { id: EXTRA_ID, created: new Date(since.getTime() + 1000) }]);
    iamMock.on(DeleteServiceSpecificCredentialCommand).resolves({});
    iamMock.on(CreateServiceSpecificCredentialCommand).resolves(created);

    await createSecondKey(deps(), plannedState());

    expect(inputsOf(iamMock.commandCalls(DeleteServiceSpecificCredentialCommand))).toEqual([
      { UserName: USER, ServiceSpecificCredentialId: EXTRA_ID },
    ]);
    expect(iamMock.commandCalls(CreateServiceSpecificCredentialCommand)).toHaveLength(1);
  });
});

describe('verifyNewKey', () => {
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
    smMock.on(GetSecretValueCommand).resolves({ SecretString: storedValue() });
    smMock
      .on(DescribeSecretCommand)
      .resolves({ ARN: SECRET_ARN, VersionIdsToStages: { [TOKEN]: ['AWSPENDING'] } });
    smMock.on(UpdateSecretVersionStageCommand).resolves({});
  });

  it('checks the stored secret against IAM (Active, same user name) and makes it AWSCURRENT', async () => {
    mockListed([{ id: OLD_ID }, { id: NEW_ID, created: NEW_CREATED }]);

    // The hand-out (the fake clock's now) becomes the quiet-since instant.
    await expect(verifyNewKey(deps(), { ...stateWithNewKey(), quietSince: null })).resolves.toBe(
      NOW.toISOString(),
    );

    expect(inputsOf(smMock.commandCalls(GetSecretValueCommand))).toEqual([
      { SecretId: SECRET_ARN, VersionId: TOKEN },
    ]);
    expect(inputsOf(iamMock.commandCalls(ListServiceSpecificCredentialsCommand))).toEqual([
      { UserName: USER, ServiceName: SERVICE },
    ]);
    expect(smMock).toHaveReceivedCommandWith(UpdateSecretVersionStageCommand, {
      SecretId: SECRET_ARN,
      VersionStage: 'AWSCURRENT',
      MoveToVersionId: TOKEN,
    });
  });

  it('a credential IAM lists as Inactive is discarded: NewKeyNotWorking, old one untouched', async () => {
    mockListed([{ id: OLD_ID }, { id: NEW_ID, status: 'Inactive' }]);
    iamMock.on(DeleteServiceSpecificCredentialCommand).resolves({});

    const error = await rejectionOf(verifyNewKey(deps(), stateWithNewKey()));

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

    await verifyNewKey(d, stateWithNewKey());

    expect(d.clock.sleep).toHaveBeenCalledWith(10);
    expect(iamMock.commandCalls(ListServiceSpecificCredentialsCommand)).toHaveLength(2);
  });

  it('a secret of another user is refused before IAM is asked', async () => {
    smMock.on(GetSecretValueCommand).resolves({ SecretString: storedValue({ UserName: 'mallory' }) });
    mockListed([{ id: OLD_ID }]);

    const error = await rejectionOf(verifyNewKey(deps(), stateWithNewKey()));

    expect(error).toBeInstanceOf(NewKeyNotWorking);
    expect(error.message).toContain('the secret names the user "mallory"');
    expect(error.message).not.toContain(PASSWORD);
  });
});

describe('the status changes', () => {
  const deps = () => ({
    iam,
    clock: fakeClock(),
    env: { ...ELIGIBILITY, REKEY_LAST_USED_GRACE_SECONDS: 60 },
  });

  it('deactivates the old credential (no last-use data to wait on beyond the adoption wait)', async () => {
    mockListed([{ id: OLD_ID }, { id: NEW_ID }]);
    iamMock.on(UpdateServiceSpecificCredentialCommand).resolves({});

    await expect(deactivateOldKey(deps(), stateWithNewKey())).resolves.toEqual({
      deactivatedAt: NOW.toISOString(),
    });
    expect(inputsOf(iamMock.commandCalls(UpdateServiceSpecificCredentialCommand))).toEqual([
      { UserName: USER, ServiceSpecificCredentialId: OLD_ID, Status: 'Inactive' },
    ]);
  });

  it('reactivates it on rollback', async () => {
    mockListed([{ id: OLD_ID, status: 'Inactive' }]);
    iamMock.on(UpdateServiceSpecificCredentialCommand).resolves({});

    await expect(reactivateOldKey({ iam }, plannedState())).resolves.toEqual({ reactivated: true });
    expect(inputsOf(iamMock.commandCalls(UpdateServiceSpecificCredentialCommand))).toEqual([
      { UserName: USER, ServiceSpecificCredentialId: OLD_ID, Status: 'Active' },
    ]);
  });

  it('deletes an inactive credential known only by its id, listing every service of the user', async () => {
    mockListed([{ id: OLD_ID, status: 'Inactive' }, { id: NEW_ID }]);
    iamMock.on(DeleteServiceSpecificCredentialCommand).resolves({});

    await expect(
      deleteKey(deps(), { userName: USER, accessKeyId: OLD_ID, notUsedSince: NOW.toISOString() }),
    ).resolves.toEqual({ deleted: true });
    expect(inputsOf(iamMock.commandCalls(ListServiceSpecificCredentialsCommand))).toEqual([
      { UserName: USER },
    ]);
    expect(inputsOf(iamMock.commandCalls(DeleteServiceSpecificCredentialCommand))).toEqual([
      { UserName: USER, ServiceSpecificCredentialId: OLD_ID },
    ]);
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  });

  it('never deletes an Active credential (UnsafeToDelete)', async () => {
    mockListed([{ id: OLD_ID }]);

    const error = await rejectionOf(
      deleteKey(deps(), { userName: USER, accessKeyId: OLD_ID, notUsedSince: null }),
    );

    expect(error).toBeInstanceOf(UnsafeToDelete);
    expect(error.message).toBe(
      `service-specific credential ${OLD_ID} of "${USER}" is active; it was not deleted`,
    );
    expect(iamMock).not.toHaveReceivedCommand(DeleteServiceSpecificCredentialCommand);
  });

  it('verifyRotation fails when the old credential is active again or the new one is not', async () => {
    smMock.on(GetSecretValueCommand).resolves({ SecretString: storedValue() });
    const state = { ...stateWithNewKey(), deactivation: { deactivatedAt: daysAgo(1).toISOString() } };
    const verifyDeps = {
      ...deps(),
      secretsManager,
      stsFor: () => {
        throw new Error('no STS');
      },
    };

    mockListed([{ id: OLD_ID, status: 'Inactive' }, { id: NEW_ID }]);
    await expect(verifyRotation(verifyDeps, state)).resolves.toEqual({ verified: true });
    expect(smMock).toHaveReceivedCommandWith(GetSecretValueCommand, {
      SecretId: SECRET_ARN,
      VersionStage: 'AWSCURRENT',
    });

    mockListed([{ id: OLD_ID }, { id: NEW_ID }]);
    expect(await rejectionOf(verifyRotation(verifyDeps, state))).toBeInstanceOf(RotationVerificationFailed);
    mockListed([
      { id: OLD_ID, status: 'Inactive' },
      { id: NEW_ID, status: 'Inactive' },
    ]);
    const error = await rejectionOf(verifyRotation(verifyDeps, state));
    expect(error.message).toContain(`the new key ${NEW_ID} is Inactive`);
  });
});

describe('checkLastUsed', () => {
  const deps = (lookup: boolean) => ({
    iam,
    cloudTrail,
    clock: fakeClock(),
    env: { REKEY_MAX_ADOPTION_CHECKS: 3, REKEY_LAST_USED_GRACE_SECONDS: 60, REKEY_CLOUDTRAIL_LOOKUP: lookup },
  });
  const event = (accessKeyId: string | undefined, source: string = SERVICE) => ({
    EventName: 'GitPull',
    EventSource: source,
    EventTime: daysAgo(2),
    CloudTrailEvent: JSON.stringify({
      sourceIPAddress: '203.0.113.7',
      userAgent: 'git/2.45',
      userIdentity: { type: 'IAMUser', userName: USER, ...(accessKeyId ? { accessKeyId } : {}) },
    }),
  });

  it('reports no last-used data, not "unused", and calls neither IAM nor CloudTrail by default', async () => {
    const adoption = await checkLastUsed(deps(false), stateWithNewKey());

    expect(adoption).toEqual({
      checks: 1,
      inUse: false,
      lastUsedDate: null,
      lastUsedService: null,
      lastUsedRegion: null,
      mayWaitAgain: true,
      quietSince: NEW_CREATED.toISOString(),
      lastUseTracked: false,
    });
    expect(iamMock.calls()).toHaveLength(0);
    expect(ctMock.calls()).toHaveLength(0);
  });

  it('with CloudTrail: an event of the service naming the OLD credential after the hand-out is use', async () => {
    ctMock
      .on(LookupEventsCommand)
      .resolves({ Events: [event(OLD_ID), event(undefined, 's3.amazonaws.com')] });

    const adoption = await checkLastUsed(deps(true), stateWithNewKey());

    expect(adoption).toMatchObject({
      inUse: true,
      lastUsedDate: daysAgo(2).toISOString(),
      lastUsedService: SERVICE,
      recentCallers: ['GitPull from 203.0.113.7 (git/2.45; the OLD credential)'],
      lastUseTracked: false,
    });
    expect(inputsOf(ctMock.commandCalls(LookupEventsCommand))).toEqual([
      {
        LookupAttributes: [{ AttributeKey: 'Username', AttributeValue: USER }],
        // From Q less the grace.
        StartTime: new Date(NEW_CREATED.getTime() - 60_000),
        EndTime: NOW,
        MaxResults: 20,
      },
    ]);
  });

  it('with CloudTrail: events it cannot pin to the old credential are listed, not counted as its use', async () => {
    ctMock.on(LookupEventsCommand).resolves({ Events: [event(undefined), event(NEW_ID)] });

    const adoption = await checkLastUsed(deps(true), stateWithNewKey());

    expect(adoption.inUse).toBe(false);
    expect(adoption.recentCallers).toEqual([
      'GitPull from 203.0.113.7 (git/2.45; credential not recorded)',
      `GitPull from 203.0.113.7 (git/2.45; ${NEW_ID})`,
    ]);
  });
});

describe('notifications', () => {
  const deps = () => ({
    sns,
    eventBridge,
    lock: { dynamodb, table: LOCK_TABLE },
    clock: fakeClock(),
    env: { REKEY_TOPIC_ARN: TOPIC_ARN, REKEY_EVENT_BUS_NAME: 'default' },
  });

  it('the "ready" event keeps its detail-type, names the service and the credential ids, and says what was not verified', async () => {
    snsMock.on(PublishCommand).resolves({});
    ebMock.on(PutEventsCommand).resolves({ FailedEntryCount: 0 });

    await notify(deps(), { event: 'NEW_KEY_READY', state: stateWithNewKey() });

    const put = inputsOf(ebMock.commandCalls(PutEventsCommand))[0]?.Entries?.[0];
    expect(put?.DetailType).toBe('New Access Key Ready');
    const detail = JSON.parse(put?.Detail ?? '{}');
    expect(detail).toMatchObject({
      userName: USER,
      serviceName: SERVICE,
      oldAccessKeyId: null,
      newAccessKeyId: null,
      oldServiceSpecificCredentialId: OLD_ID,
      newServiceSpecificCredentialId: NEW_ID,
      serviceUserName: SERVICE_USER,
      lastUseData: 'none',
    });
    expect(detail.lastUseNote).toMatch(/no last-used data.*adoption wait/);
    const published = inputsOf(snsMock.commandCalls(PublishCommand))[0];
    expect(published?.Subject).toBe(`[rekey] New Access Key Ready: ${USER} (${SERVICE})`);
    expect(published?.Message).toContain(`A new service-specific credential for ${SERVICE}, ${NEW_ID}`);
    expect(published?.Message).toContain("the password itself is proven by the consumer's first connection");
    expect(published?.Message).not.toMatch(/access key/);
    expect(JSON.stringify([put, published])).not.toContain(PASSWORD);
  });

  it('releases the user-and-service lock on a terminal event', async () => {
    snsMock.on(PublishCommand).resolves({});
    ebMock.on(PutEventsCommand).resolves({ FailedEntryCount: 0 });
    ddbMock.on(UpdateItemCommand).resolves({});

    const outcome = await notify(deps(), { event: 'ROTATION_COMPLETED', state: stateWithNewKey() });

    expect(outcome).toEqual({
      status: 'ROTATED',
      message: `rotated the service-specific credential for ${SERVICE} of "${USER}": ${OLD_ID} was replaced by ${NEW_ID}`,
    });
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))[0]?.Key).toEqual({
      userName: { S: `${USER}/${SERVICE}` },
    });
  });

  it('an access-key detail carries none of the service fields', () => {
    const { serviceName: _s, ...keyState } = stateWithNewKey();
    expect(Object.keys(detailOf('NEW_KEY_READY', keyState))).not.toContain('serviceName');
    expect(detailOf('NEW_KEY_READY', keyState).newAccessKeyId).toBe(NEW_ID);
  });
});
