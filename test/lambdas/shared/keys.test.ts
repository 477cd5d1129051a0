import { GetAccessKeyLastUsedCommand, ListAccessKeysCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { iam } from '../../../lambdas/shared/clients.ts';
import {
  type AccessKeyInfo,
  getLastUse,
  isOrphanKey,
  type LastUse,
  listAccessKeys,
  requireKey,
  usedAtOrAfter,
} from '../../../lambdas/shared/keys.ts';
import {
  daysAgo,
  EXTRA_KEY_ID,
  inputsOf,
  NEW_KEY_ID,
  NOW,
  OLD_KEY_ID,
  silenceLogs,
  USER,
} from '../../support/lambda-fixtures.ts';

const iamMock = mockClient(iam);

beforeAll(silenceLogs);
beforeEach(() => {
  iamMock.reset();
});

describe('listAccessKeys', () => {
  it('follows Marker across pages until IsTruncated is false', async () => {
    // Prepare: the SDK paginator reuses one input object across pages, so copy each as sent.
    const sent: unknown[] = [];
    const pages = [
      {
        IsTruncated: true,
        Marker: 'page-2',
        AccessKeyMetadata: [
          { UserName: USER, AccessKeyId: OLD_KEY_ID, Status: 'Active' as const, CreateDate: daysAgo(100) },
        ],
      },
      {
        IsTruncated: false,
        AccessKeyMetadata: [
          { UserName: USER, AccessKeyId: NEW_KEY_ID, Status: 'Inactive' as const, CreateDate: daysAgo(3) },
        ],
      },
    ];
    iamMock.on(ListAccessKeysCommand).callsFake((input) => {
      sent.push(structuredClone(input));
      return pages.shift() ?? { IsTruncated: false, AccessKeyMetadata: [] };
    });

    // Act
    const keys = await listAccessKeys(iam, USER);

    // Assess
    expect(keys).toEqual([
      { accessKeyId: OLD_KEY_ID, status: 'Active', createDate: daysAgo(100) },
      { accessKeyId: NEW_KEY_ID, status: 'Inactive', createDate: daysAgo(3) },
    ]);
    expect(sent).toEqual([{ UserName: USER }, { UserName: USER, Marker: 'page-2' }]);
    expect(pages).toEqual([]);
  });

  it('keeps statuses other than Active/Inactive and skips entries without an id or a date', async () => {
    // Prepare
    iamMock.on(ListAccessKeysCommand).resolves({
      IsTruncated: false,
      AccessKeyMetadata: [
        { UserName: USER, AccessKeyId: OLD_KEY_ID, Status: 'Expired', CreateDate: daysAgo(400) },
        { UserName: USER, AccessKeyId: NEW_KEY_ID, CreateDate: daysAgo(1) },
        { UserName: USER, Status: 'Active', CreateDate: daysAgo(1) },
        { UserName: USER, AccessKeyId: EXTRA_KEY_ID, Status: 'Active' },
      ],
    });

    // Act
    const keys = await listAccessKeys(iam, USER);

    // Assess
    expect(keys).toEqual([
      { accessKeyId: OLD_KEY_ID, status: 'Expired', createDate: daysAgo(400) },
      { accessKeyId: NEW_KEY_ID, status: 'Unknown', createDate: daysAgo(1) },
    ]);
  });

  it('returns no keys for a user without keys', async () => {
    // Prepare
    iamMock.on(ListAccessKeysCommand).resolves({ IsTruncated: false, AccessKeyMetadata: [] });

    // Act
    const keys = await listAccessKeys(iam, USER);

    // Assess
    expect(keys).toEqual([]);
    expect(iamMock).toHaveReceivedCommandTimes(ListAccessKeysCommand, 1);
  });
});

describe('requireKey', () => {
  const keys: AccessKeyInfo[] = [{ accessKeyId: OLD_KEY_ID, status: 'Active', createDate: daysAgo(10) }];

  it('returns the key when present', () => {
    expect(requireKey(keys, OLD_KEY_ID, USER)).toBe(keys[0]);
  });

  it('throws UnexpectedKeyState naming the missing key and the user', () => {
    expect(() => requireKey(keys, NEW_KEY_ID, USER)).toThrow(
      expect.objectContaining({
        name: 'UnexpectedKeyState',
        message: `access key ${NEW_KEY_ID} of "${USER}" no longer exists`,
      }),
    );
  });
});

describe('getLastUse', () => {
  it('returns the date, service and region of the last use', async () => {
    // Prepare
    iamMock.on(GetAccessKeyLastUsedCommand).resolves({
      UserName: USER,
      AccessKeyLastUsed: { LastUsedDate: daysAgo(2), ServiceName: 'sts', Region: 'us-east-1' },
    });

    // Act
    const lastUse = await getLastUse(iam, OLD_KEY_ID);

    // Assess
    expect(lastUse).toEqual({ date: daysAgo(2), service: 'sts', region: 'us-east-1' });
    expect(inputsOf(iamMock.commandCalls(GetAccessKeyLastUsedCommand))).toEqual([
      { AccessKeyId: OLD_KEY_ID },
    ]);
  });

  it('maps a never-used key (no date, service and region "N/A") to nulls', async () => {
    // Prepare
    iamMock.on(GetAccessKeyLastUsedCommand).resolves({
      UserName: USER,
      AccessKeyLastUsed: { ServiceName: 'N/A', Region: 'N/A' },
    });

    // Act
    const lastUse = await getLastUse(iam, OLD_KEY_ID);

    // Assess
    expect(lastUse).toEqual({ date: null, service: null, region: null });
  });

  it('maps a response without AccessKeyLastUsed to nulls', async () => {
    // Prepare
    iamMock.on(GetAccessKeyLastUsedCommand).resolves({});

    // Act
    const lastUse = await getLastUse(iam, OLD_KEY_ID);

    // Assess
    expect(lastUse).toEqual({ date: null, service: null, region: null });
  });
});

describe('usedAtOrAfter', () => {
  const instant = NOW;
  const at = (ms: number): LastUse => ({ date: new Date(ms), service: 's3', region: 'eu-west-1' });
  /** The deployed grace: IAM records last use at 15-minute granularity. */
  const GRACE = 900;
  const FIFTEEN_MINUTES_MS = 15 * 60_000;

  it('counts a never-used key as unused', () => {
    expect(usedAtOrAfter({ date: null, service: null, region: null }, instant, GRACE)).toBe(false);
  });

  it('counts a use exactly 15 minutes before the instant as used (the safe side of the boundary)', () => {
    expect(usedAtOrAfter(at(instant.getTime() - FIFTEEN_MINUTES_MS), instant, GRACE)).toBe(true);
  });

  it('counts a use inside the 15 minutes before the instant as used', () => {
    expect(usedAtOrAfter(at(instant.getTime() - FIFTEEN_MINUTES_MS + 1), instant, GRACE)).toBe(true);
    expect(usedAtOrAfter(at(instant.getTime() - 1), instant, GRACE)).toBe(true);
  });

  it('does not count a use one millisecond more than 15 minutes before the instant', () => {
    expect(usedAtOrAfter(at(instant.getTime() - FIFTEEN_MINUTES_MS - 1), instant, GRACE)).toBe(false);
  });

  it('counts a use after the instant', () => {
    expect(usedAtOrAfter(at(instant.getTime() + 1), instant, GRACE)).toBe(true);
  });

  it('with no grace, counts a use exactly at the instant but not one millisecond before', () => {
    expect(usedAtOrAfter(at(instant.getTime()), instant, 0)).toBe(true);
    expect(usedAtOrAfter(at(instant.getTime() - 1), instant, 0)).toBe(false);
  });
});

describe('isOrphanKey', () => {
  const creatingSince = new Date('2026-03-01T11:00:00.000Z');
  const never: LastUse = { date: null, service: null, region: null };
  const key = (status: string, createDate: Date): AccessKeyInfo => ({
    accessKeyId: NEW_KEY_ID,
    status,
    createDate,
  });

  it.each([
    [
      'an active never-used key created after creatingSince',
      key('Active', new Date('2026-03-01T11:00:05Z')),
      never,
      true,
    ],
    [
      'an active never-used key created exactly at creatingSince - clock skew (5 s)',
      key('Active', new Date('2026-03-01T10:59:55Z')),
      never,
      true,
    ],
    [
      'a key created before creatingSince - clock skew',
      key('Active', new Date('2026-03-01T10:59:54.999Z')),
      never,
      false,
    ],
    [
      'a key created at the end of the create window (15 min)',
      key('Active', new Date('2026-03-01T11:15:00Z')),
      never,
      true,
    ],
    [
      'a key created after the create window: made by hand, not an orphan',
      key('Active', new Date('2026-03-01T11:15:00.001Z')),
      never,
      false,
    ],
    ['an inactive key', key('Inactive', new Date('2026-03-01T11:00:05Z')), never, false],
    ['an expired key', key('Expired', new Date('2026-03-01T11:00:05Z')), never, false],
    [
      'a key that was used',
      key('Active', new Date('2026-03-01T11:00:05Z')),
      { date: new Date('2026-03-01T11:30:00Z'), service: 's3', region: 'eu-west-1' },
      false,
    ],
  ])('%s -> %s', (_label, k, lastUse, expected) => {
    expect(isOrphanKey(k, lastUse, creatingSince)).toBe(expected);
  });

  it('is never an orphan when no create was in progress (creatingSince null)', () => {
    expect(isOrphanKey(key('Active', NOW), never, null)).toBe(false);
  });
});
