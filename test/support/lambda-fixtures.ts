/**
 * Shared fixtures of the lambdas/ unit tests: a fake clock, key fixtures and small helpers around
 * aws-sdk-client-mock. Not a test file (vitest only collects *.test.ts).
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  GetAccessKeyLastUsedCommand,
  GetUserCommand,
  type IAMClient,
  ListAccessKeysCommand,
} from '@aws-sdk/client-iam';
import type { Context } from 'aws-lambda';
import type { AwsClientStub } from 'aws-sdk-client-mock';
import { vi } from 'vitest';
import type { KeyRef, NewKey, RotationState } from '../../contract/schemas.ts';
import type { Clock } from '../../lambdas/shared/clock.ts';
import { logger } from '../../lambdas/shared/logger.ts';
import { versionTokenFor } from '../../lambdas/shared/secret.ts';
import { ACCOUNT } from '../../support/constants.ts';

/** The domain code logs JSON lines; tests assert on calls, not on log output. */
export function silenceLogs(): void {
  logger.setLogLevel('SILENT');
}

export const NOW = new Date('2026-03-01T12:00:00.000Z');
export const DAY = 86_400_000;
export const daysAgo = (n: number, from: Date = NOW) => new Date(from.getTime() - n * DAY);
export const secondsBefore = (s: number, from: Date) => new Date(from.getTime() - s * 1000);

export interface FakeClock extends Clock {
  sleep: ReturnType<typeof vi.fn<(ms: number) => Promise<void>>>;
}

export function fakeClock(now: Date = NOW): FakeClock {
  return { now: () => now, sleep: vi.fn(async (_ms: number) => {}) };
}

export { ACCOUNT };
export const USER = 'alice';
export const USER_ARN = `arn:aws:iam::${ACCOUNT}:user/${USER}`;
export const EXECUTION_ID = `arn:aws:states:us-east-1:${ACCOUNT}:execution:rekey-rotation:alice-0001`;
export const OTHER_EXECUTION_ID = `arn:aws:states:us-east-1:${ACCOUNT}:execution:rekey-rotation:alice-0002`;
export const SECRET_NAME = `rekey/${USER}`;
export const SECRET_ARN = `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:rekey/${USER}-AbCdEf`;
export const LOCK_TABLE = 'rekey-locks';
export const KMS_KEY_ID = `arn:aws:kms:us-east-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
export const TOPIC_ARN = `arn:aws:sns:us-east-1:${ACCOUNT}:rekey-notifications`;

/** The eligibility rules of the steps that re-check them (lambdas/shared/eligibility.ts): the defaults, one protected user. */
export const ELIGIBILITY = {
  REKEY_EXEMPT_TAG: 'rekey:exempt',
  REKEY_PROTECTED_USERS: ['BreakGlass'],
  REKEY_USER_PATH_PREFIX: '/',
  REKEY_OPT_IN_TAG: undefined,
};

export const OLD_KEY_ID = 'AKIAOLDKEY0000000001';
export const NEW_KEY_ID = 'AKIANEWKEY0000000002';
export const EXTRA_KEY_ID = 'AKIAEXTRAKEY00000003';
/** A made-up secret access key: tests assert it never appears in messages or events. */
export const FAKE_SECRET = 'tEsTsEcReT/DoNoTuSe+0123456789abcdefGHIJ';

export interface KeyFixture {
  id: string;
  status?: 'Active' | 'Inactive' | 'Expired';
  created: Date;
  /** undefined/null: never used (IAM answers N/A). */
  lastUsed?: Date | null;
  service?: string;
  region?: string;
}

export type IamMock = AwsClientStub<IAMClient>;
export type DynamoMock = AwsClientStub<DynamoDBClient>;

/** GetUser as IAM answers it for USER: under the root path, no tags (so in scope, not exempt). */
export function mockEligibleUser(iamMock: IamMock, tags: Record<string, string> = {}): void {
  iamMock.on(GetUserCommand).resolves({
    User: {
      UserName: USER,
      UserId: 'AIDAEXAMPLEUSERID0001',
      Arn: USER_ARN,
      Path: '/',
      CreateDate: new Date('2023-01-01T00:00:00.000Z'),
      Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
    },
  });
}

/** ListAccessKeys (one page) and GetAccessKeyLastUsed for each key, as IAM answers them. */
export function mockKeys(iamMock: IamMock, keys: KeyFixture[], userName = USER): void {
  iamMock.on(ListAccessKeysCommand).resolves({
    IsTruncated: false,
    AccessKeyMetadata: keys.map((k) => ({
      UserName: userName,
      AccessKeyId: k.id,
      Status: k.status ?? 'Active',
      CreateDate: k.created,
    })),
  });
  for (const k of keys) mockLastUse(iamMock, k, userName);
}

export function mockLastUse(iamMock: IamMock, k: KeyFixture, userName = USER): void {
  iamMock.on(GetAccessKeyLastUsedCommand, { AccessKeyId: k.id }).resolves({
    UserName: userName,
    AccessKeyLastUsed: k.lastUsed
      ? { LastUsedDate: k.lastUsed, ServiceName: k.service ?? 's3', Region: k.region ?? 'eu-west-1' }
      : { ServiceName: 'N/A', Region: 'N/A' },
  });
}

/** The inputs of some recorded calls, in call order: `inputsOf(iamMock.commandCalls(GetUserCommand))`. */
export function inputsOf<TCmd extends { input: object }>(
  calls: readonly { args: [TCmd] }[],
): TCmd['input'][] {
  return calls.map((call) => call.args[0].input);
}

/** A service error as the SDK raises it: matched by `name`. */
export function awsError(name: string, message = `${name} (test)`): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

/** A Lambda context with the fields Powertools reads. */
export function fakeContext(functionName = 'rekey-test'): Context {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:${ACCOUNT}:function:${functionName}`,
    memoryLimitInMB: '256',
    awsRequestId: '8f5c2a3e-0000-4000-8000-000000000001',
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: '2026/03/01/[$LATEST]0123456789abcdef',
    getRemainingTimeInMillis: () => 30_000,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

export const OLD_KEY_CREATED = daysAgo(120);
export const OLD_KEY_LAST_USED = daysAgo(10);
/** When the new key was handed out (created) in the states below: 9 days before NOW. */
export const NEW_KEY_CREATED = daysAgo(9);
/** The ClientRequestToken (= secret version id) of EXECUTION_ID's new key. */
export const TOKEN = versionTokenFor(EXECUTION_ID, USER, OLD_KEY_ID, NEW_KEY_ID);

/** The state document right after PlanRotation decided to rotate OLD_KEY_ID. */
export function plannedState(): RotationState & { oldKey: KeyRef } {
  return {
    userName: USER,
    accountId: ACCOUNT,
    userArn: USER_ARN,
    dryRun: false,
    executionId: EXECUTION_ID,
    secretName: SECRET_NAME,
    action: 'ROTATE',
    resumeStage: null,
    alert: false,
    message: `rotate ${OLD_KEY_ID} of "${USER}"`,
    steps: [],
    oldKey: {
      accessKeyId: OLD_KEY_ID,
      createDate: OLD_KEY_CREATED.toISOString(),
      lastUsedDate: OLD_KEY_LAST_USED.toISOString(),
    },
    extraKey: null,
    orphanKey: null,
    quietSince: null,
  };
}

/** The quiet-since instant Q of the states below: the new key's hand-out, taken here at its creation. */
export const QUIET_SINCE = NEW_KEY_CREATED;

/**
 * The state document after CreateSecondKey stored NEW_KEY_ID and VerifyNewKey handed it out
 * (Q = QUIET_SINCE); a test of the verify step itself sets `quietSince: null`.
 */
export function stateWithNewKey(): RotationState & { oldKey: KeyRef; newKey: NewKey; quietSince: string } {
  return {
    ...plannedState(),
    quietSince: QUIET_SINCE.toISOString(),
    newKey: {
      accessKeyId: NEW_KEY_ID,
      createDate: NEW_KEY_CREATED.toISOString(),
      secretArn: SECRET_ARN,
      versionId: TOKEN,
    },
  };
}

interface RecordedCall {
  args: readonly [{ constructor: { name: string }; input: object }];
  calledBefore(other: never): boolean;
}

/**
 * The commands sent to several mocked clients, in the order they were sent, as
 * `Command` names (UpdateItem calls are labelled with their UpdateExpression).
 */
export function callOrder(...stubs: { calls(): readonly unknown[] }[]): string[] {
  const calls = stubs.flatMap((stub) => stub.calls() as RecordedCall[]);
  calls.sort((a, b) => (a.calledBefore(b as never) ? -1 : 1));
  return calls.map(({ args: [command] }) => {
    const name = command.constructor.name.replace(/Command$/, '');
    const update = (command.input as { UpdateExpression?: string }).UpdateExpression;
    return update ? `${name}(${update})` : name;
  });
}

/** The error a promise rejects with; fails the test if it resolves instead. */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection, but the promise resolved');
}
