import { GetAccountAuthorizationDetailsCommand, IAMClient, ListAccessKeysCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { CallCounter } from '../../../lambdas/audit/calls.ts';
import { listUserDetails, matchKey, resolveKeyIds } from '../../../lambdas/audit/users.ts';
import { awsError } from '../../support/lambda-fixtures.ts';
import { unresolvedFinding as finding } from './fixtures.ts';
import { ACCOUNT, ago } from './helpers.ts';

const iam = new IAMClient({ region: 'us-east-1' });
const iamMock = mockClient(iam);

beforeEach(() => {
  iamMock.reset();
});

describe('listUserDetails', () => {
  it('reads paths and tags of every user, 1,000 per page, following Marker', async () => {
    // Prepare: the paginator reuses one input object, so copy each as sent.
    const sent: unknown[] = [];
    const pages = [
      {
        IsTruncated: true,
        Marker: 'm2',
        UserDetailList: [
          { UserName: 'alice', Path: '/svc/', Tags: [{ Key: 'rekey:exempt', Value: 'until=2027-01-01 x' }] },
        ],
      },
      { IsTruncated: false, UserDetailList: [{ UserName: 'bob' }, {}] },
    ];
    iamMock.on(GetAccountAuthorizationDetailsCommand).callsFake((input) => {
      sent.push(structuredClone(input));
      return pages.shift();
    });
    const calls = new CallCounter();

    // Act
    const users = await listUserDetails({ iam, calls });

    // Assess
    expect(sent).toEqual([
      { Filter: ['User'], MaxItems: 1000 },
      { Filter: ['User'], MaxItems: 1000, Marker: 'm2' },
    ]);
    expect([...users.keys()]).toEqual(['alice', 'bob']);
    expect(users.get('alice')).toEqual({
      userName: 'alice',
      path: '/svc/',
      tags: new Map([['rekey:exempt', 'until=2027-01-01 x']]),
    });
    expect(users.get('bob')).toEqual({ userName: 'bob', path: '/', tags: new Map() });
    expect(calls.toJSON()).toEqual({ GetAccountAuthorizationDetails: 2 });
  });

  it('counts a failed request too, then rethrows', async () => {
    iamMock.on(GetAccountAuthorizationDetailsCommand).rejects(awsError('AccessDenied'));
    const calls = new CallCounter();
    await expect(listUserDetails({ iam, calls })).rejects.toThrow(/AccessDenied/);
    expect(calls.count('GetAccountAuthorizationDetails')).toBe(1);
  });
});

const key = (id: string, created: Date, status = 'Active') => ({
  accessKeyId: id,
  createDate: created,
  status,
});

describe('matchKey', () => {
  const created = new Date('2026-01-10T08:00:00.000Z');

  it('finds the key created in the same second as the report slot', () => {
    const keys = [
      key('AKIAB', new Date('2026-02-01T00:00:00Z')),
      key('AKIAA', new Date('2026-01-10T08:00:00.731Z')),
    ];
    expect(matchKey(keys, 2, created)?.accessKeyId).toBe('AKIAA');
  });

  it('tells keys created within one second apart by order: key 1 is the older', () => {
    const keys = [key('AKIASECOND', new Date('2026-01-10T08:00:00.900Z')), key('AKIAFIRST', created)];
    expect(matchKey(keys, 1, created)?.accessKeyId).toBe('AKIAFIRST');
    expect(matchKey(keys, 2, created)?.accessKeyId).toBe('AKIASECOND');
  });

  it('finds nothing when no key was created then (rotated since the report)', () => {
    expect(matchKey([key('AKIAB', new Date('2026-02-01T00:00:00Z'))], 1, created)).toBeUndefined();
  });
});

describe('resolveKeyIds', () => {
  it('one ListAccessKeys per user with findings, none for root, ids attached by creation time', async () => {
    // Prepare
    iamMock.on(ListAccessKeysCommand, { UserName: 'alice' }).resolves({
      AccessKeyMetadata: [
        { UserName: 'alice', AccessKeyId: 'AKIAALICEOLD00000001', Status: 'Active', CreateDate: ago(100) },
        { UserName: 'alice', AccessKeyId: 'AKIAALICENEW00000002', Status: 'Active', CreateDate: ago(5) },
      ],
    });
    const findings = [
      finding({}),
      finding({ type: 'UNUSED_KEY' }),
      finding({
        type: 'TWO_ACTIVE_KEYS',
        other: { keySlot: 2, accessKeyId: null, ageDays: 5 },
      }),
      finding({
        type: 'ROOT_ACCESS_KEY',
        userName: '<root_account>',
        userArn: `arn:aws:iam::${ACCOUNT}:root`,
      }),
    ];
    const calls = new CallCounter();

    // Act
    const result = await resolveKeyIds({ iam, calls }, findings);

    // Assess
    expect(iamMock).toHaveReceivedCommandTimes(ListAccessKeysCommand, 1);
    expect(iamMock).toHaveReceivedCommandWith(ListAccessKeysCommand, { UserName: 'alice' });
    expect(result.stale).toEqual([]);
    expect(result.findings.map((f) => [f.type, f.accessKeyId, f.other?.accessKeyId])).toEqual([
      ['OLD_KEY', 'AKIAALICEOLD00000001', undefined],
      ['UNUSED_KEY', 'AKIAALICEOLD00000001', undefined],
      ['TWO_ACTIVE_KEYS', 'AKIAALICEOLD00000001', 'AKIAALICENEW00000002'],
      ['ROOT_ACCESS_KEY', null, undefined],
    ]);
    expect(calls.toJSON()).toEqual({ ListAccessKeys: 1 });
    expect(calls.perFindingCalls).toBe(1);
    expect(calls.scanCalls).toBe(0);
  });

  it('a key deleted or deactivated since the report, or a deleted user, makes the finding stale', async () => {
    iamMock.on(ListAccessKeysCommand, { UserName: 'alice' }).resolves({
      AccessKeyMetadata: [
        { UserName: 'alice', AccessKeyId: 'AKIANEWER', Status: 'Active', CreateDate: ago(1) },
      ],
    });
    iamMock.on(ListAccessKeysCommand, { UserName: 'bob' }).resolves({
      AccessKeyMetadata: [
        { UserName: 'bob', AccessKeyId: 'AKIABOB', Status: 'Inactive', CreateDate: ago(100) },
      ],
    });
    iamMock.on(ListAccessKeysCommand, { UserName: 'gone' }).rejects(awsError('NoSuchEntityException'));

    const result = await resolveKeyIds({ iam, calls: new CallCounter() }, [
      finding({}),
      finding({ userName: 'bob' }),
      finding({ userName: 'gone' }),
    ]);

    expect(result.findings).toEqual([]);
    expect(result.stale.map((s) => s.why)).toEqual([
      expect.stringContaining('key 1 of "alice"'),
      expect.stringContaining('key 1 of "bob"'),
      expect.stringContaining('key 1 of "gone"'),
    ]);
  });

  it('rethrows other errors', async () => {
    iamMock.on(ListAccessKeysCommand).rejects(awsError('AccessDenied'));
    await expect(resolveKeyIds({ iam, calls: new CallCounter() }, [finding({})])).rejects.toThrow(
      /AccessDenied/,
    );
  });
});
