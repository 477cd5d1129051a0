import {
  GetAccessKeyLastUsedCommand,
  GetUserCommand,
  ListAccessKeysCommand,
  UpdateAccessKeyCommand,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { describe, expect, it } from 'vitest';
import { OldKeyStillInUse, STILL_IN_USE_ADVICE } from '../../../../contract/errors.ts';
import { hubPathCalls } from '../../../../contract/functions.ts';
import { deactivateOldKey } from '../../../../lambdas/rotation/deactivate-old-key/deactivate-old-key.ts';
import {
  statusDeps as deps,
  newKeyFixture as newKey,
  oldKeyFixture as old,
  statusIamMock,
} from '../../../support/key-status-fixtures.ts';
import {
  callOrder,
  daysAgo,
  inputsOf,
  mockEligibleUser,
  mockKeys,
  NEW_KEY_CREATED,
  NEW_KEY_ID,
  NOW,
  OLD_KEY_ID,
  QUIET_SINCE,
  rejectionOf,
  stateWithNewKey,
  USER,
} from '../../../support/lambda-fixtures.ts';
import {
  mockListed,
  NEW_ID,
  OLD_ID,
  serviceStateWithNewKey,
} from '../../../support/service-credential-fixtures.ts';

const iamMock = statusIamMock();

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

describe('deactivateOldKey: a service-specific credential', () => {
  it('deactivates the old credential (no last-use data to wait on beyond the adoption wait)', async () => {
    mockListed(iamMock, [{ id: OLD_ID }, { id: NEW_ID }]);
    iamMock.on(UpdateServiceSpecificCredentialCommand).resolves({});

    await expect(deactivateOldKey(deps(), serviceStateWithNewKey())).resolves.toEqual({
      deactivatedAt: NOW.toISOString(),
    });
    expect(inputsOf(iamMock.commandCalls(UpdateServiceSpecificCredentialCommand))).toEqual([
      { UserName: USER, ServiceSpecificCredentialId: OLD_ID, Status: 'Inactive' },
    ]);
  });
});

describe('the call budget its Lambda timeout is derived from', () => {
  it('deactivate-old-key: its longest path makes exactly its hub-path calls (STEPS[deactivate-old-key].calls less memberAccountCalls)', async () => {
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
    expect(callOrder(iamMock)).toHaveLength(hubPathCalls('deactivate-old-key'));
  });
});
