import {
  DeleteAccessKeyCommand,
  GetAccessKeyLastUsedCommand,
  GetUserCommand,
  ListAccessKeysCommand,
  UpdateAccessKeyCommand,
} from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OldKeyStillInUse, STILL_IN_USE_ADVICE, UnsafeToDelete } from '../../../../contract/errors.ts';
import { STEPS } from '../../../../contract/functions.ts';
import {
  type DeactivateDeps,
  deactivateOldKey,
} from '../../../../lambdas/rotation/deactivate-old-key/deactivate-old-key.ts';
import { deleteKey } from '../../../../lambdas/rotation/delete-key/delete-key.ts';
import { reactivateOldKey } from '../../../../lambdas/rotation/reactivate-old-key/reactivate-old-key.ts';
import { iam } from '../../../../lambdas/shared/clients.ts';
import {
  awsError,
  callOrder,
  daysAgo,
  ELIGIBILITY,
  EXTRA_KEY_ID,
  fakeClock,
  inputsOf,
  type KeyFixture,
  mockEligibleUser,
  mockKeys,
  NEW_KEY_CREATED,
  NEW_KEY_ID,
  NOW,
  OLD_KEY_CREATED,
  OLD_KEY_ID,
  plannedState,
  QUIET_SINCE,
  rejectionOf,
  silenceLogs,
  stateWithNewKey,
  USER,
} from '../../../support/lambda-fixtures.ts';

const iamMock = mockClient(iam);

const deps = (): DeactivateDeps => ({
  iam,
  clock: fakeClock(),
  env: { ...ELIGIBILITY, REKEY_LAST_USED_GRACE_SECONDS: 60 },
});
const newKey: KeyFixture = { id: NEW_KEY_ID, created: NEW_KEY_CREATED, lastUsed: daysAgo(0.5) };
const old = (status: KeyFixture['status'], lastUsed: Date | null): KeyFixture => ({
  id: OLD_KEY_ID,
  status,
  created: OLD_KEY_CREATED,
  lastUsed,
});

beforeAll(silenceLogs);
beforeEach(() => {
  iamMock.reset();
  mockEligibleUser(iamMock);
  iamMock.on(UpdateAccessKeyCommand).resolves({});
  iamMock.on(DeleteAccessKeyCommand).resolves({});
});

describe('deactivateOldKey', () => {
  it('re-checks the last use, then deactivates the quiet old key and returns when', async () => {
    // Prepare
    mockKeys(iamMock, [old('Active', new Date(NEW_KEY_CREATED.getTime() - 61_000)), newKey]);

    // Act
    const result = await deactivateOldKey(deps(), stateWithNewKey());

    // Assess
    expect(result).toEqual({ deactivatedAt: NOW.toISOString() });
    expect(inputsOf(iamMock.commandCalls(ListAccessKeysCommand))).toEqual([{ UserName: USER }]);
    expect(inputsOf(iamMock.commandCalls(GetAccessKeyLastUsedCommand))).toEqual([
      { AccessKeyId: OLD_KEY_ID },
    ]);
    expect(inputsOf(iamMock.commandCalls(UpdateAccessKeyCommand))).toEqual([
      { UserName: USER, AccessKeyId: OLD_KEY_ID, Status: 'Inactive' },
    ]);
  });

  it('refuses (OldKeyStillInUse) with no UpdateAccessKey when the old key was used after the hand-out', async () => {
    // Prepare
    const usedAt = daysAgo(1);
    mockKeys(iamMock, [old('Active', usedAt), newKey]);

    // Act
    const error = await rejectionOf(deactivateOldKey(deps(), stateWithNewKey()));

    // Assess: a safe stop that says what to do next.
    expect(error).toBeInstanceOf(OldKeyStillInUse);
    expect(error).toMatchObject({
      name: 'OldKeyStillInUse',
      message:
        `old key ${OLD_KEY_ID} of "${USER}" was used at ${usedAt.toISOString()}, at or after ` +
        `${QUIET_SINCE.toISOString()}, when it had to be quiet: it was not deactivated. Both keys stay active ` +
        `and the secret holds the new key ${NEW_KEY_ID}. ${STILL_IN_USE_ADVICE}`,
    });
    expect(iamMock).not.toHaveReceivedCommand(UpdateAccessKeyCommand);
  });

  it('compares with the quiet-since instant Q, which an adoption check may have moved past the hand-out', async () => {
    // Prepare: used after the hand-out, but before the check that moved Q (a consumer that switched).
    mockKeys(iamMock, [old('Active', daysAgo(5)), newKey]);
    const state = { ...stateWithNewKey(), quietSince: daysAgo(2).toISOString() };

    // Act & Assess
    await expect(deactivateOldKey(deps(), state)).resolves.toEqual({ deactivatedAt: NOW.toISOString() });
    mockKeys(iamMock, [old('Active', daysAgo(1)), newKey]);
    await expect(deactivateOldKey(deps(), state)).rejects.toBeInstanceOf(OldKeyStillInUse);
  });

  it('refuses a use exactly at hand-out - grace (the boundary counts as in use)', async () => {
    // Prepare
    mockKeys(iamMock, [old('Active', new Date(NEW_KEY_CREATED.getTime() - 60_000)), newKey]);

    // Act & Assess
    await expect(deactivateOldKey(deps(), stateWithNewKey())).rejects.toMatchObject({
      name: 'OldKeyStillInUse',
    });
    expect(iamMock).not.toHaveReceivedCommand(UpdateAccessKeyCommand);
  });

  it('deactivates a never-used old key', async () => {
    // Prepare
    mockKeys(iamMock, [old('Active', null), newKey]);

    // Act & Assess
    await expect(deactivateOldKey(deps(), stateWithNewKey())).resolves.toEqual({
      deactivatedAt: NOW.toISOString(),
    });
    expect(iamMock).toHaveReceivedCommandTimes(UpdateAccessKeyCommand, 1);
  });

  it('a retry after the key is already inactive returns Q without calling IAM again', async () => {
    // Prepare
    mockKeys(iamMock, [old('Inactive', daysAgo(20)), newKey]);

    // Act
    const result = await deactivateOldKey(deps(), stateWithNewKey());

    // Assess
    expect(result).toEqual({ deactivatedAt: NEW_KEY_CREATED.toISOString() });
    expect(iamMock).not.toHaveReceivedCommand(GetAccessKeyLastUsedCommand);
    expect(iamMock).not.toHaveReceivedCommand(UpdateAccessKeyCommand);
  });

  it('throws UnexpectedKeyState when the old key no longer exists', async () => {
    // Prepare
    mockKeys(iamMock, [newKey]);

    // Act & Assess
    await expect(deactivateOldKey(deps(), stateWithNewKey())).rejects.toMatchObject({
      name: 'UnexpectedKeyState',
      message: `access key ${OLD_KEY_ID} of "${USER}" no longer exists`,
    });
    expect(iamMock).not.toHaveReceivedCommand(UpdateAccessKeyCommand);
  });
});

describe('the eligibility re-check right before a key change', () => {
  it('an exemption added before the deactivation stops it: UserExempt, the old key stays active', async () => {
    // Prepare
    mockKeys(iamMock, [old('Active', daysAgo(30)), newKey]);
    mockEligibleUser(iamMock, { 'rekey:exempt': 'vendor asked for more time' });

    // Act
    const error = await rejectionOf(deactivateOldKey(deps(), stateWithNewKey()));

    // Assess
    expect(error).toMatchObject({
      name: 'UserExempt',
      message: `"${USER}" is exempt: vendor asked for more time; stopped before deactivating ${OLD_KEY_ID}, which stays active`,
    });
    expect(inputsOf(iamMock.commandCalls(GetUserCommand))).toEqual([{ UserName: USER }]);
    expect(iamMock).not.toHaveReceivedCommand(UpdateAccessKeyCommand);
  });

  it('a user moved out of scope before the delete stops it: UserOutOfScope, the old key is kept', async () => {
    // Prepare
    mockKeys(iamMock, [old('Inactive', daysAgo(30)), newKey]);
    iamMock.on(GetUserCommand).resolves({ User: { UserName: USER, Path: '/humans/' } as never });

    // Act
    const error = await rejectionOf(
      deleteKey(
        { ...deps(), env: { ...deps().env, REKEY_USER_PATH_PREFIX: '/ci/' } },
        { userName: USER, accessKeyId: OLD_KEY_ID, notUsedSince: daysAgo(7).toISOString() },
      ),
    );

    // Assess
    expect(error.name).toBe('UserOutOfScope');
    expect(error.message).toContain(`stopped before deleting ${OLD_KEY_ID}, which is kept`);
    expect(iamMock).not.toHaveReceivedCommand(DeleteAccessKeyCommand);
  });

  it('a protected user is never deactivated, whatever the state says', async () => {
    // Prepare
    mockKeys(iamMock, [old('Active', daysAgo(30)), newKey], 'breakglass');

    // Act
    const error = await rejectionOf(
      deactivateOldKey(deps(), { ...stateWithNewKey(), userName: 'breakglass' }),
    );

    // Assess
    expect(error.name).toBe('UserProtected');
    expect(iamMock).not.toHaveReceivedCommand(UpdateAccessKeyCommand);
  });
});

describe('reactivateOldKey', () => {
  it('reactivates an inactive old key', async () => {
    // Prepare
    mockKeys(iamMock, [old('Inactive', daysAgo(20)), newKey]);

    // Act
    const result = await reactivateOldKey({ iam }, plannedState());

    // Assess
    expect(result).toEqual({ reactivated: true });
    expect(inputsOf(iamMock.commandCalls(UpdateAccessKeyCommand))).toEqual([
      { UserName: USER, AccessKeyId: OLD_KEY_ID, Status: 'Active' },
    ]);
  });

  it('does nothing when the old key is already active', async () => {
    // Prepare
    mockKeys(iamMock, [old('Active', daysAgo(20)), newKey]);

    // Act & Assess
    await expect(reactivateOldKey({ iam }, plannedState())).resolves.toEqual({ reactivated: false });
    expect(iamMock).not.toHaveReceivedCommand(UpdateAccessKeyCommand);
  });

  it('throws UnexpectedKeyState when the old key no longer exists', async () => {
    // Prepare
    mockKeys(iamMock, [newKey]);

    // Act & Assess
    await expect(reactivateOldKey({ iam }, plannedState())).rejects.toMatchObject({
      name: 'UnexpectedKeyState',
    });
    expect(iamMock).not.toHaveReceivedCommand(UpdateAccessKeyCommand);
  });
});

describe('deleteKey', () => {
  const deactivatedAt = daysAgo(7);
  const input = (notUsedSince: Date | null, accessKeyId = OLD_KEY_ID) => ({
    userName: USER,
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

describe('the call budgets their Lambda timeouts are derived from', () => {
  it('deactivate-old-key: its longest path makes exactly STEPS[deactivate-old-key].calls calls', async () => {
    // Prepare: the old key still active and quiet since Q, the user still eligible.
    mockKeys(iamMock, [old('Active', new Date(QUIET_SINCE.getTime() - 61_000)), newKey]);

    // Act
    await deactivateOldKey(deps(), stateWithNewKey());

    // Assess
    expect(callOrder(iamMock)).toEqual([
      'ListAccessKeys',
      'GetAccessKeyLastUsed',
      'GetUser',
      'UpdateAccessKey',
    ]);
    expect(callOrder(iamMock)).toHaveLength(STEPS['deactivate-old-key'].calls);
  });

  it('reactivate-old-key: its longest path makes exactly STEPS[reactivate-old-key].calls calls', async () => {
    mockKeys(iamMock, [old('Inactive', daysAgo(20)), newKey]);

    await reactivateOldKey({ iam }, plannedState());

    expect(callOrder(iamMock)).toEqual(['ListAccessKeys', 'UpdateAccessKey']);
    expect(callOrder(iamMock)).toHaveLength(STEPS['reactivate-old-key'].calls);
  });

  it('delete-key: its longest path makes exactly STEPS[delete-key].calls calls', async () => {
    // Prepare: inactive, unused since Q, the user still eligible.
    mockKeys(iamMock, [old('Inactive', daysAgo(9.5)), newKey]);

    // Act
    await deleteKey(deps(), {
      userName: USER,
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
    expect(callOrder(iamMock)).toHaveLength(STEPS['delete-key'].calls);
  });
});
