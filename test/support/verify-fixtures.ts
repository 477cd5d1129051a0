/**
 * Shared fixtures of the verify steps' unit tests (verify-new-key, verify-rotation): the stored
 * secret of a key, the identity STS answers for USER, and an STS factory to spy on. Not a test file.
 */
import { STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, vi } from 'vitest';
import type { StsFactory } from '../../lambdas/shared/authenticate.ts';
import { iam, secretsManager } from '../../lambdas/shared/clients.ts';
import {
  ACCOUNT,
  awsError,
  FAKE_SECRET,
  type FakeClock,
  fakeClock,
  NEW_KEY_CREATED,
  silenceLogs,
  USER,
  USER_ARN,
} from './lambda-fixtures.ts';

/** A secret version id older than EXECUTION_ID's TOKEN. */
export const PREVIOUS_VERSION = '11111111-2222-4333-8444-555555555555';

/** The secret value stored for an access key of USER. */
export const secretOf = (accessKeyId: string) =>
  JSON.stringify({
    Version: 1,
    AccessKeyId: accessKeyId,
    SecretAccessKey: FAKE_SECRET,
    UserName: USER,
    CreateDate: NEW_KEY_CREATED.toISOString(),
  });

/** GetCallerIdentity as STS answers it for USER. */
export const identity = { Account: ACCOUNT, Arn: USER_ARN, UserId: 'AIDAEXAMPLEUSERID0001' };

/** STS refusing a key. */
export const rejected = () => awsError('InvalidClientTokenId');

/** An STS factory whose clients the mocked STSClient answers, spied on. */
export const spiedStsFor = () =>
  vi.fn<StsFactory>((credentials) => new STSClient({ region: 'us-east-1', credentials }));

/**
 * The mocked IAM, Secrets Manager and STS of a verify step's test file, reset before each test,
 * with a fresh fake clock and spied STS factory per test (read them as `v.clock`, `v.stsFor`).
 */
export function verifyMocks() {
  const v = {
    iamMock: mockClient(iam),
    smMock: mockClient(secretsManager),
    stsMock: mockClient(STSClient),
    clock: fakeClock() as FakeClock,
    stsFor: spiedStsFor(),
  };
  beforeAll(silenceLogs);
  beforeEach(() => {
    v.iamMock.reset();
    v.smMock.reset();
    v.stsMock.reset();
    v.clock = fakeClock();
    v.stsFor = spiedStsFor();
  });
  return v;
}
