/**
 * Shared fixtures of the key-status steps' unit tests (deactivate-old-key, reactivate-old-key,
 * delete-key, and the service-specific credential case of verify-rotation): their dependencies,
 * the old and new access keys, and the mocked IAM they start from. Not a test file.
 */
import { DeleteAccessKeyCommand, UpdateAccessKeyCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach } from 'vitest';
import type { DeactivateDeps } from '../../lambdas/rotation/deactivate-old-key/deactivate-old-key.ts';
import { iam } from '../../lambdas/shared/clients.ts';
import {
  daysAgo,
  ELIGIBILITY,
  fakeClock,
  type IamMock,
  type KeyFixture,
  mockEligibleUser,
  NEW_KEY_CREATED,
  NEW_KEY_ID,
  OLD_KEY_CREATED,
  OLD_KEY_ID,
  silenceLogs,
} from './lambda-fixtures.ts';

/** IAM, a fake clock, the default eligibility rules and a 60 s last-used grace. */
export const statusDeps = (): DeactivateDeps => ({
  iam,
  clock: fakeClock(),
  env: { ...ELIGIBILITY, REKEY_LAST_USED_GRACE_SECONDS: 60 },
});

/** The new key, used half a day ago. */
export const newKeyFixture: KeyFixture = { id: NEW_KEY_ID, created: NEW_KEY_CREATED, lastUsed: daysAgo(0.5) };

/** The old key, with the given status and last use. */
export const oldKeyFixture = (status: KeyFixture['status'], lastUsed: Date | null): KeyFixture => ({
  id: OLD_KEY_ID,
  status,
  created: OLD_KEY_CREATED,
  lastUsed,
});

/**
 * The mocked IAM of a key-status step's test file; before each test it is reset, USER is eligible,
 * and UpdateAccessKey and DeleteAccessKey succeed.
 */
export function statusIamMock(): IamMock {
  const iamMock = mockClient(iam);
  beforeAll(silenceLogs);
  beforeEach(() => {
    iamMock.reset();
    mockEligibleUser(iamMock);
    iamMock.on(UpdateAccessKeyCommand).resolves({});
    iamMock.on(DeleteAccessKeyCommand).resolves({});
  });
  return iamMock;
}
