/**
 * Shared fixtures of the service-specific credential (Keyspaces, CodeCommit) cases of the lambdas/
 * unit tests: one user's Keyspaces credentials, their secret and lock, and the state documents of
 * lambda-fixtures.ts for that credential. Not a test file (vitest only collects *.test.ts).
 */
import { ListServiceSpecificCredentialsCommand } from '@aws-sdk/client-iam';
import type { KeyRef, NewKey, RotationState } from '../../contract/schemas.ts';
import { versionTokenFor } from '../../lambdas/shared/secret.ts';
import {
  ACCOUNT,
  daysAgo,
  EXECUTION_ID,
  type IamMock,
  NOW,
  plannedState as plannedAccessKeyState,
  USER,
} from './lambda-fixtures.ts';

export const SERVICE = 'cassandra.amazonaws.com' as const;
export const OLD_ID = 'ACCAOLDCREDENTIAL0001';
export const NEW_ID = 'ACCANEWCREDENTIAL0002';
export const EXTRA_ID = 'ACCAEXTRACREDENTIAL03';
export const SERVICE_USER = `${USER}-at-${ACCOUNT}`;
/** A made-up service password: it must never appear in results, messages or events. */
export const PASSWORD = 'sErViCePaSsWoRd/DoNoTuSe+0123456789=';
export const SERVICE_SECRET_NAME = `rekey/${USER}/${SERVICE}`;
export const SERVICE_SECRET_ARN = `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:${SERVICE_SECRET_NAME}-AbCdEf`;
export const SERVICE_TOKEN = versionTokenFor(EXECUTION_ID, USER, OLD_ID, NEW_ID);
export const OLD_CREATED = daysAgo(120);
export const NEW_CREATED = daysAgo(9);
const nowEpoch = Math.floor(NOW.getTime() / 1000);

export interface Listed {
  id: string;
  status?: 'Active' | 'Inactive';
  created?: Date;
  serviceUserName?: string;
}

/** ListServiceSpecificCredentials (one page) for USER and SERVICE, as IAM answers it. */
export function mockListed(iamMock: IamMock, list: Listed[]): void {
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

/** The access-key plan of lambda-fixtures.ts, for this user's Keyspaces credential. */
export function plannedServiceState(): RotationState & { oldKey: KeyRef } {
  return {
    ...plannedAccessKeyState(),
    serviceName: SERVICE,
    secretName: SERVICE_SECRET_NAME,
    message: 'rotate',
    oldKey: { accessKeyId: OLD_ID, createDate: OLD_CREATED.toISOString(), lastUsedDate: null },
  };
}

export function serviceStateWithNewKey(): RotationState & {
  oldKey: KeyRef;
  newKey: NewKey;
  quietSince: string;
} {
  return {
    ...plannedServiceState(),
    quietSince: NEW_CREATED.toISOString(),
    newKey: {
      accessKeyId: NEW_ID,
      createDate: NEW_CREATED.toISOString(),
      serviceUserName: SERVICE_USER,
      secretArn: SERVICE_SECRET_ARN,
      versionId: SERVICE_TOKEN,
    },
  };
}

/** The secret value CreateSecondKey stores for NEW_ID. */
export const storedServiceValue = (over: Record<string, string> = {}) =>
  JSON.stringify({
    ServiceUserName: SERVICE_USER,
    ServicePassword: PASSWORD,
    ServiceSpecificCredentialId: NEW_ID,
    ServiceName: SERVICE,
    UserName: USER,
    CreateDate: NEW_CREATED.toISOString(),
    ...over,
  });

/** The user-and-service lock item, held by EXECUTION_ID for another hour. */
export const serviceLockItem = (over: Record<string, { S: string }> = {}) => ({
  Item: {
    userName: { S: `${USER}/${SERVICE}` },
    owner: { S: EXECUTION_ID },
    expiresAt: { N: String(nowEpoch + 3600) },
    ...over,
  },
});
