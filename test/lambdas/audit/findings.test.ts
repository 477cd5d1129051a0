import { describe, expect, it } from 'vitest';
import { parseCredentialReport } from '../../../lambdas/audit/credential-report.ts';
import {
  contractView,
  DEFAULT_THRESHOLDS,
  evaluateFindings,
  evaluateServiceCredentials,
  type Finding,
  type ServiceCredential,
  type Thresholds,
  type UserDetail,
  wholeDays,
} from '../../../lambdas/audit/findings.ts';
import { CASSANDRA, CODECOMMIT, finding, serviceCredential } from './fixtures.ts';
import { ACCOUNT, ago, DAY, NOW, type RowSpec, reportCsv, userDetail, usersOf } from './helpers.ts';

const EXEMPT_TAG = 'rekey:exempt';

function evaluate(
  rows: RowSpec[],
  users: Map<string, UserDetail> = new Map(),
  thresholds: Thresholds = DEFAULT_THRESHOLDS,
): Finding[] {
  return evaluateFindings(parseCredentialReport(reportCsv(rows)), users, {
    now: NOW,
    thresholds,
    exemptTag: EXEMPT_TAG,
  });
}
const typesOf = (rows: RowSpec[], thresholds?: Thresholds) =>
  evaluate(rows, new Map(), thresholds).map((f) => f.type);

describe('wholeDays', () => {
  it('rounds down and never goes negative', () => {
    expect(wholeDays(ago(90), NOW)).toBe(90);
    expect(wholeDays(ago(90, 23), NOW)).toBe(90);
    expect(wholeDays(ago(91), NOW)).toBe(91);
    expect(wholeDays(new Date(NOW.getTime() + DAY), NOW)).toBe(0);
  });
});

describe('OLD_KEY: active and older than maxKeyAgeDays (90)', () => {
  // Every key here was used yesterday, so only its age matters.
  it.each([
    [89, ['EXPIRING_KEY']],
    [90, ['EXPIRING_KEY']],
    [91, ['OLD_KEY']],
    [400, ['OLD_KEY']],
  ])('a key %i days old gives %j', (days, expected) => {
    expect(typesOf([{ user: 'u', key1: { created: days, used: 1 } }])).toEqual(expected);
  });

  it('90 days and 23 hours is still 90 days: compliant (IAM.3: "every 90 days or less")', () => {
    const csv = reportCsv([{ user: 'u', key1: { created: 0, used: 1 } }]).replace(
      /(u,[^,]+,[^,]+,[^,]+,[^,]+,[^,]+,[^,]+,[^,]+,true,)[^,]+/,
      `$1${ago(90, 23)
        .toISOString()
        .replace(/\.\d{3}Z$/, '+00:00')}`,
    );
    const findings = evaluateFindings(parseCredentialReport(csv), new Map(), {
      now: NOW,
      thresholds: DEFAULT_THRESHOLDS,
      exemptTag: EXEMPT_TAG,
    });
    expect(findings.map((f) => [f.type, f.ageDays])).toEqual([['EXPIRING_KEY', 90]]);
  });

  it('an inactive key is never old, unused or expiring', () => {
    expect(typesOf([{ user: 'u', key1: { active: false, created: 500 } }])).toEqual([]);
  });

  it('honours a configured maxKeyAgeDays', () => {
    const t = { ...DEFAULT_THRESHOLDS, maxKeyAgeDays: 30, warnDays: 0 };
    expect(typesOf([{ user: 'u', key1: { created: 30, used: 1 } }], t)).toEqual([]);
    expect(typesOf([{ user: 'u', key1: { created: 31, used: 1 } }], t)).toEqual(['OLD_KEY']);
  });
});

describe('EXPIRING_KEY: turns old within warnDays (14)', () => {
  it.each([
    [75, false],
    [76, false],
    [77, true],
    [90, true],
  ])('a key %i days old: expiring %s', (days, expiring) => {
    const findings = evaluate([{ user: 'u', key1: { created: days, used: 1 } }]);
    expect(findings.some((f) => f.type === 'EXPIRING_KEY')).toBe(expiring);
  });

  it('is off with warnDays 0', () => {
    expect(
      typesOf([{ user: 'u', key1: { created: 90, used: 1 } }], { ...DEFAULT_THRESHOLDS, warnDays: 0 }),
    ).toEqual([]);
  });
});

describe('UNUSED_KEY: idle for unusedDays (45) or more', () => {
  it.each([
    ['used 44 days ago', { created: 60, used: 44 }, false],
    ['used exactly 45 days ago', { created: 60, used: 45 }, true],
    ['used 46 days ago', { created: 60, used: 46 }, true],
    ['never used, created 44 days ago', { created: 44 }, false],
    ['never used, created 45 days ago', { created: 45 }, true],
    ['never used, created 46 days ago', { created: 46 }, true],
    ['used yesterday (an old key)', { created: 100, used: 1 }, false],
  ])('%s: unused %s', (_name, key, unused) => {
    const findings = evaluate([{ user: 'u', key1: key }]);
    expect(findings.some((f) => f.type === 'UNUSED_KEY')).toBe(unused);
  });

  it('reports idle days and the last use; a never-used key idles since its creation', () => {
    const [used, never] = evaluate([
      { user: 'a', key1: { created: 60, used: 50 } },
      { user: 'b', key1: { created: 47 } },
    ]);
    expect(used).toMatchObject({
      type: 'UNUSED_KEY',
      idleDays: 50,
      ageDays: 60,
      lastUsedDate: ago(50).toISOString(),
    });
    expect(never).toMatchObject({ type: 'UNUSED_KEY', idleDays: 47, ageDays: 47, lastUsedDate: null });
  });

  it('an old, never-used key is both OLD_KEY and UNUSED_KEY', () => {
    expect(typesOf([{ user: 'u', key1: { created: 120 } }])).toEqual(['OLD_KEY', 'UNUSED_KEY']);
  });
});

describe('TWO_ACTIVE_KEYS', () => {
  it('one finding per user, on the older key, naming the other slot', () => {
    const findings = evaluate([
      { user: 'u', key1: { created: 10, used: 1 }, key2: { created: 20, used: 1 } },
    ]);
    expect(findings).toEqual([
      expect.objectContaining({
        type: 'TWO_ACTIVE_KEYS',
        userName: 'u',
        keySlot: 2,
        ageDays: 20,
        other: { keySlot: 1, accessKeyId: null, ageDays: 10 },
      }),
    ]);
  });

  it('one active and one inactive key is fine', () => {
    expect(
      typesOf([{ user: 'u', key1: { created: 10, used: 1 }, key2: { active: false, created: 20 } }]),
    ).toEqual([]);
  });
});

describe('ROOT_ACCESS_KEY', () => {
  it('the <root_account> row with an active key, whatever its age; no other finding for root', () => {
    const findings = evaluate(
      [
        { user: '<root_account>', key1: { created: 5, used: 1 }, key2: { created: 200 } },
        { user: 'u', key1: { created: 1, used: 0 } },
      ],
      usersOf(userDetail('<root_account>', { [EXEMPT_TAG]: 'never exempt' })),
    );
    expect(findings.map((f) => [f.type, f.userName, f.keySlot, f.accessKeyId, f.exemption])).toEqual([
      ['ROOT_ACCESS_KEY', '<root_account>', 1, null, null],
      ['ROOT_ACCESS_KEY', '<root_account>', 2, null, null],
    ]);
  });

  it('an inactive root key is no finding', () => {
    expect(typesOf([{ user: '<root_account>', key1: { active: false, created: 900 } }])).toEqual([]);
  });
});

describe('exemptions', () => {
  const rows = [{ user: 'vendor', key1: { created: 200 } }];

  it('an exempt user keeps its findings, marked with the exemption', () => {
    const findings = evaluate(
      rows,
      usersOf(userDetail('vendor', { [EXEMPT_TAG]: 'until=2026-06-30 SMTP relay, SEC-12' })),
    );
    expect(findings.map((f) => f.type)).toEqual(['OLD_KEY', 'UNUSED_KEY']);
    for (const f of findings)
      expect(f.exemption).toEqual({
        reason: 'SMTP relay, SEC-12',
        until: '2026-06-30T23:59:59.999Z',
        expired: false,
      });
  });

  it('an expired exemption is reported as expired', () => {
    const [f] = evaluate(
      rows,
      usersOf(userDetail('vendor', { [EXEMPT_TAG]: 'until=2026-02-28 old ticket' })),
    );
    expect(f?.exemption).toEqual({ reason: 'old ticket', until: '2026-02-28T23:59:59.999Z', expired: true });
  });

  it('an exemption without a date holds; other tags do not exempt', () => {
    const [open] = evaluate(rows, usersOf(userDetail('vendor', { [EXEMPT_TAG]: 'break-glass' })));
    expect(open?.exemption).toEqual({ reason: 'break-glass', until: null, expired: false });
    const [other] = evaluate(rows, usersOf(userDetail('vendor', { team: 'x' })));
    expect(other?.exemption).toBeNull();
  });
});

describe('order and contract', () => {
  it('sorts by severity (root first, expiring last), then user, then key slot', () => {
    const findings = evaluate([
      { user: 'zed', key1: { created: 80, used: 1 } },
      { user: 'amy', key1: { created: 100, used: 1 }, key2: { created: 95, used: 1 } },
      { user: '<root_account>', key1: { created: 3, used: 1 } },
      { user: 'bob', key1: { created: 50 } },
    ]);
    expect(findings.map((f) => `${f.type}:${f.userName}:${f.keySlot}`)).toEqual([
      'ROOT_ACCESS_KEY:<root_account>:1',
      'OLD_KEY:amy:1',
      'OLD_KEY:amy:2',
      'UNUSED_KEY:bob:1',
      'TWO_ACTIVE_KEYS:amy:1',
      'EXPIRING_KEY:zed:1',
    ]);
  });

  it('the contract view has exactly the five fields of docs/audit.md', () => {
    const [f] = evaluate([{ user: 'u', key1: { created: 100, used: 3 } }]);
    expect(f && Object.keys(contractView(f))).toEqual([
      'type',
      'userName',
      'accessKeyId',
      'ageDays',
      'lastUsedDate',
    ]);
  });
});

describe('evaluateServiceCredentials', () => {
  const ARNS = new Map([['alice', `arn:aws:iam::${ACCOUNT}:user/team/alice`]]);
  const evaluateCredentials = (credentials: ServiceCredential[], users = usersOf()) =>
    evaluateServiceCredentials(credentials, users, ARNS, {
      now: NOW,
      thresholds: DEFAULT_THRESHOLDS,
      exemptTag: 'rekey:exempt',
    });

  it.each([
    [76, []],
    [77, ['EXPIRING_KEY']],
    [90, ['EXPIRING_KEY']],
    [91, ['OLD_KEY']],
    [400, ['OLD_KEY']],
  ])('a credential %i days old is %j (the access keys boundaries)', (days, types) => {
    expect(
      evaluateCredentials([serviceCredential('alice', 'ACCA0000000000000001', days)]).map((f) => f.type),
    ).toEqual(types);
  });

  it('90 days and 23 hours is still 90 days: compliant, expiring', () => {
    const c = serviceCredential('alice', 'ACCA0000000000000001', 0, {
      createDate: new Date(NOW.getTime() - 90 * 86_400_000 - 23 * 3_600_000),
    });
    expect(evaluateCredentials([c])).toMatchObject([{ type: 'EXPIRING_KEY', ageDays: 90 }]);
  });

  it('is never UNUSED_KEY, and says last use is unknown rather than "never"', () => {
    const [old] = evaluateCredentials([serviceCredential('alice', 'ACCA0000000000000001', 500)]);
    expect(old).toEqual({
      type: 'OLD_KEY',
      userName: 'alice',
      userArn: `arn:aws:iam::${ACCOUNT}:user/team/alice`,
      accessKeyId: null,
      keySlot: 1,
      ageDays: 500,
      lastUsedDate: null,
      idleDays: null,
      createDate: ago(500).toISOString(),
      serviceName: CASSANDRA,
      serviceSpecificCredentialId: 'ACCA0000000000000001',
      exemption: null,
    });
  });

  it('ignores inactive and expired credentials', () => {
    expect(
      evaluateCredentials([
        serviceCredential('alice', 'ACCA0000000000000001', 200, { status: 'Inactive' }),
        serviceCredential('alice', 'ACCA0000000000000002', 200, { status: 'Expired' }),
      ]),
    ).toEqual([]);
  });

  it('TWO_ACTIVE_KEYS per user AND service: on the older one, naming the other', () => {
    const findings = evaluateCredentials([
      serviceCredential('bob', 'ACCABOBNEW0000000001', 3),
      serviceCredential('bob', 'ACCABOBOLD0000000001', 30),
      // One per service is not two active.
      serviceCredential('carol', 'ACCACAROLK0000000001', 3),
      serviceCredential('carol', 'ACCACAROLG0000000001', 3, { serviceName: CODECOMMIT }),
    ]);
    expect(findings).toEqual([
      expect.objectContaining({
        type: 'TWO_ACTIVE_KEYS',
        userName: 'bob',
        serviceName: CASSANDRA,
        serviceSpecificCredentialId: 'ACCABOBOLD0000000001',
        keySlot: 1,
        ageDays: 30,
        other: {
          keySlot: 2,
          accessKeyId: null,
          ageDays: 3,
          serviceSpecificCredentialId: 'ACCABOBNEW0000000001',
        },
      }),
    ]);
  });

  it("carries the user's exemption (expired or not), as for access keys", () => {
    const users = usersOf(
      userDetail('vendor', { 'rekey:exempt': 'until=2026-12-31 Cassandra driver pinned' }),
      userDetail('lapsed', { 'rekey:exempt': 'until=2026-01-31 migration' }),
    );
    const findings = evaluateCredentials(
      [
        serviceCredential('vendor', 'ACCAVENDOR0000000001', 120),
        serviceCredential('lapsed', 'ACCALAPSED0000000001', 120),
      ],
      users,
    );
    expect(findings.map((f) => [f.userName, f.exemption])).toEqual([
      ['lapsed', { reason: 'migration', until: '2026-01-31T23:59:59.999Z', expired: true }],
      ['vendor', { reason: 'Cassandra driver pinned', until: '2026-12-31T23:59:59.999Z', expired: false }],
    ]);
  });

  it('the --json view adds serviceName and the credential id only for service credentials', () => {
    const [f] = evaluateCredentials([serviceCredential('alice', 'ACCA0000000000000001', 120)]);
    expect(contractView(f as Finding)).toEqual({
      type: 'OLD_KEY',
      userName: 'alice',
      accessKeyId: null,
      ageDays: 120,
      lastUsedDate: null,
      serviceName: CASSANDRA,
      serviceSpecificCredentialId: 'ACCA0000000000000001',
    });
    expect(
      Object.keys(
        contractView(finding({ type: 'OLD_KEY', userName: 'bob', accessKeyId: 'AKIABOB0000000000002' })),
      ),
    ).toEqual(['type', 'userName', 'accessKeyId', 'ageDays', 'lastUsedDate']);
  });
});
