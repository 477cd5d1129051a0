/**
 * The audit's listing of service-specific credentials (Amazon Keyspaces, CodeCommit): AllUsers
 * through the paginator. Their findings, actions, alerts and Security Hub findings are tested
 * beside the access keys' (findings, actions, alerts and security-hub tests). moto does not
 * implement ListServiceSpecificCredentials, so this is all aws-sdk-client-mock.
 */
import { IAMClient, ListServiceSpecificCredentialsCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { CallCounter } from '../../../lambdas/audit/calls.ts';
import { listServiceCredentials } from '../../../lambdas/audit/service-credentials.ts';
import { awsError, rejectionOf } from '../../support/lambda-fixtures.ts';
import { CASSANDRA, CODECOMMIT } from './fixtures.ts';
import { ACCOUNT, ago } from './helpers.ts';

const iam = new IAMClient({ region: 'us-east-1' });
const iamMock = mockClient(iam);
beforeEach(() => {
  iamMock.reset();
});

/** An IAM ServiceSpecificCredentialMetadata (no secret: IAM returns none in a listing). */
const metadata = (
  userName: string,
  id: string,
  serviceName: string,
  createdDaysAgo: number,
  Status: 'Active' | 'Inactive' | 'Expired' = 'Active',
) => ({
  UserName: userName,
  ServiceName: serviceName,
  ServiceUserName: `${userName}-at-${ACCOUNT}`,
  ServiceSpecificCredentialId: id,
  Status,
  CreateDate: ago(createdDaysAgo),
});
describe('listServiceCredentials', () => {
  it('lists every user per service with AllUsers, 1,000 a page, following Marker across pages', async () => {
    // Prepare: the paginator reuses one input object, so copy each as sent.
    const sent: unknown[] = [];
    const pages: Record<string, object[]> = {
      [CASSANDRA]: [
        {
          IsTruncated: true,
          Marker: 'c2',
          ServiceSpecificCredentials: [metadata('alice', 'ACCAALICE0000000000001', CASSANDRA, 100)],
        },
        {
          IsTruncated: true,
          Marker: 'c3',
          ServiceSpecificCredentials: [metadata('bob', 'ACCABOB00000000000001', CASSANDRA, 10)],
        },
        {
          IsTruncated: false,
          ServiceSpecificCredentials: [metadata('carol', 'ACCACAROL000000000001', CASSANDRA, 5, 'Inactive')],
        },
      ],
      [CODECOMMIT]: [
        {
          IsTruncated: false,
          ServiceSpecificCredentials: [metadata('alice', 'ACCAALICEGIT000000001', CODECOMMIT, 200)],
        },
      ],
    };
    iamMock.on(ListServiceSpecificCredentialsCommand).callsFake((input: { ServiceName: string }) => {
      sent.push(structuredClone(input));
      return pages[input.ServiceName]?.shift();
    });
    const calls = new CallCounter();

    // Act
    const credentials = await listServiceCredentials({ iam, calls });

    // Assess
    expect(sent).toEqual([
      { AllUsers: true, ServiceName: CASSANDRA, MaxItems: 1000 },
      { AllUsers: true, ServiceName: CASSANDRA, MaxItems: 1000, Marker: 'c2' },
      { AllUsers: true, ServiceName: CASSANDRA, MaxItems: 1000, Marker: 'c3' },
      { AllUsers: true, ServiceName: CODECOMMIT, MaxItems: 1000 },
    ]);
    // No UserName: IAM refuses it together with AllUsers.
    for (const input of sent) expect(input).not.toHaveProperty('UserName');
    expect(credentials).toEqual([
      {
        userName: 'alice',
        serviceName: CASSANDRA,
        serviceSpecificCredentialId: 'ACCAALICE0000000000001',
        status: 'Active',
        createDate: ago(100),
      },
      {
        userName: 'bob',
        serviceName: CASSANDRA,
        serviceSpecificCredentialId: 'ACCABOB00000000000001',
        status: 'Active',
        createDate: ago(10),
      },
      {
        userName: 'carol',
        serviceName: CASSANDRA,
        serviceSpecificCredentialId: 'ACCACAROL000000000001',
        status: 'Inactive',
        createDate: ago(5),
      },
      {
        userName: 'alice',
        serviceName: CODECOMMIT,
        serviceSpecificCredentialId: 'ACCAALICEGIT000000001',
        status: 'Active',
        createDate: ago(200),
      },
    ]);
    expect(calls.toJSON()).toEqual({ ListServiceSpecificCredentials: 4 });
    // O(pages): these calls do not grow with findings.
    expect(calls.perFindingCalls).toBe(0);
  });

  it('keeps only the service asked for (an answer that ignored the filter adds nothing)', async () => {
    iamMock.on(ListServiceSpecificCredentialsCommand).resolves({
      ServiceSpecificCredentials: [
        metadata('alice', 'ACCAALICE0000000000001', CASSANDRA, 100),
        metadata('alice', 'ACCAALICEBEDROCK00001', 'bedrock.amazonaws.com', 100),
      ],
    });
    const credentials = await listServiceCredentials({ iam, calls: new CallCounter() }, [CASSANDRA]);
    expect(credentials.map((c) => c.serviceSpecificCredentialId)).toEqual(['ACCAALICE0000000000001']);
  });

  it('throws AccessDenied (counting the refused call): never an audit that silently skipped a kind', async () => {
    iamMock
      .on(ListServiceSpecificCredentialsCommand)
      .rejects(
        awsError('AccessDenied', 'User: x is not authorized to perform: iam:ListServiceSpecificCredentials'),
      );
    const calls = new CallCounter();
    const error = await rejectionOf(listServiceCredentials({ iam, calls }));
    expect(error.name).toBe('AccessDenied');
    expect(calls.toJSON()).toEqual({ ListServiceSpecificCredentials: 1 });
  });
});
