/** The credential kinds of lambdas/shared/credentials.ts: here, the service-specific one. */

import { ListServiceSpecificCredentialsCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { iam } from '../../../lambdas/shared/clients.ts';
import { credentialKindOfId, serviceCredentials } from '../../../lambdas/shared/credentials.ts';
import { silenceLogs, USER } from '../../support/lambda-fixtures.ts';
import {
  NEW_CREATED,
  NEW_ID,
  OLD_CREATED,
  OLD_ID,
  SERVICE,
} from '../../support/service-credential-fixtures.ts';

const iamMock = mockClient(iam);

beforeAll(silenceLogs);
beforeEach(() => {
  iamMock.reset();
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
