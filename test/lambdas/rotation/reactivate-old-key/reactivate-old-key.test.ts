import { UpdateAccessKeyCommand, UpdateServiceSpecificCredentialCommand } from '@aws-sdk/client-iam';
import { describe, expect, it } from 'vitest';
import { hubPathCalls } from '../../../../contract/functions.ts';
import { reactivateOldKey } from '../../../../lambdas/rotation/reactivate-old-key/reactivate-old-key.ts';
import { iam } from '../../../../lambdas/shared/clients.ts';
import {
  newKeyFixture as newKey,
  oldKeyFixture as old,
  statusIamMock,
} from '../../../support/key-status-fixtures.ts';
import {
  callOrder,
  daysAgo,
  inputsOf,
  mockKeys,
  OLD_KEY_ID,
  plannedState,
  USER,
} from '../../../support/lambda-fixtures.ts';
import { mockListed, OLD_ID, plannedServiceState } from '../../../support/service-credential-fixtures.ts';

const iamMock = statusIamMock();

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

describe('reactivateOldKey: a service-specific credential', () => {
  it('reactivates it on rollback', async () => {
    mockListed(iamMock, [{ id: OLD_ID, status: 'Inactive' }]);
    iamMock.on(UpdateServiceSpecificCredentialCommand).resolves({});

    await expect(reactivateOldKey({ iam }, plannedServiceState())).resolves.toEqual({ reactivated: true });
    expect(inputsOf(iamMock.commandCalls(UpdateServiceSpecificCredentialCommand))).toEqual([
      { UserName: USER, ServiceSpecificCredentialId: OLD_ID, Status: 'Active' },
    ]);
  });
});

describe('the call budget its Lambda timeout is derived from', () => {
  it('reactivate-old-key: its longest path makes exactly its hub-path calls (STEPS[reactivate-old-key].calls less memberAccountCalls)', async () => {
    mockKeys(iamMock, [old('Inactive', daysAgo(20)), newKey]);

    await reactivateOldKey({ iam }, plannedState());

    expect(callOrder(iamMock)).toEqual(['ListAccessKeys', 'UpdateAccessKey']);
    expect(callOrder(iamMock)).toHaveLength(hubPathCalls('reactivate-old-key'));
  });
});
