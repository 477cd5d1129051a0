import {
  DeleteAccessKeyCommand,
  DeleteServiceSpecificCredentialCommand,
  GetAccessKeyLastUsedCommand,
  GetUserCommand,
  ListServiceSpecificCredentialsCommand,
} from '@aws-sdk/client-iam';
import { describe, expect, it } from 'vitest';
import { UnsafeToDelete } from '../../../../contract/errors.ts';
import { hubPathCalls } from '../../../../contract/functions.ts';
import { deleteKey } from '../../../../lambdas/rotation/delete-key/delete-key.ts';
import {
  statusDeps as deps,
  newKeyFixture as newKey,
  oldKeyFixture as old,
  statusIamMock,
} from '../../../support/key-status-fixtures.ts';
import {
  ACCOUNT,
  awsError,
  callOrder,
  daysAgo,
  EXTRA_KEY_ID,
  inputsOf,
  mockKeys,
  NOW,
  OLD_KEY_ID,
  QUIET_SINCE,
  rejectionOf,
  USER,
} from '../../../support/lambda-fixtures.ts';
import { mockListed, NEW_ID, OLD_ID } from '../../../support/service-credential-fixtures.ts';

const iamMock = statusIamMock();

describe('deleteKey', () => {
  const deactivatedAt = daysAgo(7);
  const input = (notUsedSince: Date | null, accessKeyId = OLD_KEY_ID) => ({
    userName: USER,
    accountId: ACCOUNT,
    accessKeyId,
    notUsedSince: notUsedSince ? notUsedSince.toISOString() : null,
  });

  it('deletes an inactive key not used since the given instant', async () => {
    // Prepare
    mockKeys(iamMock, [old('Inactive', daysAgo(9)), newKey]);

    // Act
    const result = await deleteKey(deps(), input(deactivatedAt));

    // Assess
    expect(result).toEqual({ deleted: true });
    expect(inputsOf(iamMock.commandCalls(GetAccessKeyLastUsedCommand))).toEqual([
      { AccessKeyId: OLD_KEY_ID },
    ]);
    expect(inputsOf(iamMock.commandCalls(DeleteAccessKeyCommand))).toEqual([
      { UserName: USER, AccessKeyId: OLD_KEY_ID },
    ]);
  });

  it('counts a key as deleted when the retry of a delete whose response was lost finds it gone', async () => {
    // Prepare: the first attempt was applied, its answer lost; the SDK's retry finds no key.
    mockKeys(iamMock, [old('Inactive', daysAgo(9)), newKey]);
    iamMock
      .on(DeleteAccessKeyCommand)
      .rejects(awsError('NoSuchEntityException', `The Access Key with id ${OLD_KEY_ID} cannot be found`));

    // Act
    const result = await deleteKey(deps(), input(deactivatedAt));

    // Assess
    expect(result).toEqual({ deleted: true });
  });

  it('rethrows any other failure of the delete', async () => {
    // Prepare
    mockKeys(iamMock, [old('Inactive', daysAgo(9)), newKey]);
    const failure = awsError('ServiceFailureException');
    iamMock.on(DeleteAccessKeyCommand).rejects(failure);

    // Act
    const error = await rejectionOf(deleteKey(deps(), input(deactivatedAt)));

    // Assess
    expect(error).toBe(failure);
  });

  it('refuses an Active key (UnsafeToDelete) and deletes nothing', async () => {
    // Prepare
    mockKeys(iamMock, [old('Active', daysAgo(9)), newKey]);

    // Act
    const error = await rejectionOf(deleteKey(deps(), input(deactivatedAt)));

    // Assess
    expect(error).toBeInstanceOf(UnsafeToDelete);
    expect(error).toMatchObject({
      name: 'UnsafeToDelete',
      message: `access key ${OLD_KEY_ID} of "${USER}" is active; it was not deleted`,
    });
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  });

  it('refuses a key used since the given instant, naming the use and the instant', async () => {
    // Prepare
    const usedAt = daysAgo(3);
    mockKeys(iamMock, [old('Inactive', usedAt), newKey]);

    // Act & Assess
    await expect(deleteKey(deps(), input(deactivatedAt))).rejects.toMatchObject({
      name: 'UnsafeToDelete',
      message:
        `access key ${OLD_KEY_ID} of "${USER}" was used at ${usedAt.toISOString()}, ` +
        `at or after ${deactivatedAt.toISOString()}, since when it had to be quiet; it was not deleted`,
    });
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  });

  it('refuses a key used within the grace period before the given instant', async () => {
    // Prepare
    mockKeys(iamMock, [old('Inactive', new Date(deactivatedAt.getTime() - 59_000)), newKey]);

    // Act & Assess
    await expect(deleteKey(deps(), input(deactivatedAt))).rejects.toBeInstanceOf(UnsafeToDelete);
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  });

  it('with notUsedSince null (an extra key), refuses a key that was ever used, however long ago', async () => {
    // Prepare
    const usedAt = daysAgo(800);
    mockKeys(iamMock, [{ id: EXTRA_KEY_ID, status: 'Inactive', created: daysAgo(900), lastUsed: usedAt }]);

    // Act & Assess
    await expect(deleteKey(deps(), input(null, EXTRA_KEY_ID))).rejects.toMatchObject({
      name: 'UnsafeToDelete',
      message: `access key ${EXTRA_KEY_ID} of "${USER}" was used at ${usedAt.toISOString()}; it was not deleted`,
    });
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  });

  it('with notUsedSince null, deletes an inactive key that was never used', async () => {
    // Prepare
    mockKeys(iamMock, [{ id: EXTRA_KEY_ID, status: 'Inactive', created: daysAgo(900) }]);

    // Act & Assess
    await expect(deleteKey(deps(), input(null, EXTRA_KEY_ID))).resolves.toEqual({ deleted: true });
    expect(inputsOf(iamMock.commandCalls(DeleteAccessKeyCommand))).toEqual([
      { UserName: USER, AccessKeyId: EXTRA_KEY_ID },
    ]);
  });

  it('deletes an Expired, never-used key (not Active)', async () => {
    // Prepare
    mockKeys(iamMock, [{ id: EXTRA_KEY_ID, status: 'Expired', created: daysAgo(900) }]);

    // Act & Assess
    await expect(deleteKey(deps(), input(null, EXTRA_KEY_ID))).resolves.toEqual({ deleted: true });
  });

  it('a retry after the key is gone returns deleted:false without calling DeleteAccessKey', async () => {
    // Prepare
    mockKeys(iamMock, [newKey]);

    // Act & Assess
    await expect(deleteKey(deps(), input(deactivatedAt))).resolves.toEqual({ deleted: false });
    expect(iamMock).not.toHaveReceivedCommand(GetAccessKeyLastUsedCommand);
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  });
});

describe('the eligibility re-check right before a key change', () => {
  it('a user moved out of scope before the delete stops it: UserOutOfScope, the old key is kept', async () => {
    // Prepare
    mockKeys(iamMock, [old('Inactive', daysAgo(30)), newKey]);
    iamMock.on(GetUserCommand).resolves({ User: { UserName: USER, Path: '/humans/' } as never });

    // Act
    const error = await rejectionOf(
      deleteKey(
        { ...deps(), env: { ...deps().env, REKEY_USER_PATH_PREFIX: '/ci/' } },
        {
          userName: USER,
          accountId: ACCOUNT,
          accessKeyId: OLD_KEY_ID,
          notUsedSince: daysAgo(7).toISOString(),
        },
      ),
    );

    // Assess
    expect(error.name).toBe('UserOutOfScope');
    expect(error.message).toContain(`stopped before deleting ${OLD_KEY_ID}, which is kept`);
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  });
});

describe('deleteKey: a service-specific credential', () => {
  it('deletes an inactive credential known only by its id, listing every service of the user', async () => {
    mockListed(iamMock, [{ id: OLD_ID, status: 'Inactive' }, { id: NEW_ID }]);
    iamMock.on(DeleteServiceSpecificCredentialCommand).resolves({});

    await expect(
      deleteKey(deps(), {
        userName: USER,
        accountId: ACCOUNT,
        accessKeyId: OLD_ID,
        notUsedSince: NOW.toISOString(),
      }),
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
    mockListed(iamMock, [{ id: OLD_ID }]);

    const error = await rejectionOf(
      deleteKey(deps(), {
        userName: USER,
        accountId: ACCOUNT,
        accessKeyId: OLD_ID,
        notUsedSince: null,
      }),
    );

    expect(error).toBeInstanceOf(UnsafeToDelete);
    expect(error.message).toBe(
      `service-specific credential ${OLD_ID} of "${USER}" is active; it was not deleted`,
    );
    expect(iamMock).not.toHaveReceivedCommand(DeleteServiceSpecificCredentialCommand);
  });
});

describe('the call budget its Lambda timeout is derived from', () => {
  it('delete-key: its longest path makes exactly its hub-path calls (STEPS[delete-key].calls less memberAccountCalls)', async () => {
    // Prepare: inactive, unused since Q, the user still eligible.
    mockKeys(iamMock, [old('Inactive', daysAgo(9.5)), newKey]);

    // Act
    await deleteKey(deps(), {
      userName: USER,
      accountId: ACCOUNT,
      accessKeyId: OLD_KEY_ID,
      notUsedSince: QUIET_SINCE.toISOString(),
    });

    // Assess
    expect(callOrder(iamMock)).toEqual([
      'ListAccessKeys',
      'GetAccessKeyLastUsed',
      'GetUser',
      'DeleteAccessKey',
    ]);
    expect(callOrder(iamMock)).toHaveLength(hubPathCalls('delete-key'));
  });
});
