/**
 * The audit report's two files from one set of findings: the CSV read back by csv-parse (header,
 * values, the formula guard), the HTML's structure, escaping and self-containment, and neither
 * holding a secret. The page's behaviour in a browser is test/workflow/audit-reports.test.ts.
 */
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { DEFAULT_THRESHOLDS, FINDING_TYPES } from '../../../lambdas/audit/findings.ts';
import {
  AGE_BUCKETS,
  ageBucketCounts,
  REPORT_COLUMNS,
  type ReportInput,
  reportRows,
} from '../../../lambdas/audit/report/columns.ts';
import { guardCell, renderCsv } from '../../../lambdas/audit/report/csv.ts';
import { esc, renderHtml } from '../../../lambdas/audit/report/html.ts';
import { expectNoSecrets } from '../../support/secrets.ts';
import { FINDINGS, finding } from './fixtures.ts';
import { ACCOUNT, NOW } from './helpers.ts';

const HOSTILE = `<script>alert("x")</script>&'`;

const input = (over: Partial<ReportInput> = {}): ReportInput => ({
  findings: FINDINGS,
  thresholds: DEFAULT_THRESHOLDS,
  auditedAt: NOW,
  accountIds: [ACCOUNT],
  ...over,
});

const readCsv = (text: string) =>
  parse(text, { columns: true, skip_empty_lines: true }) as Record<string, string>[];

describe('the CSV report', () => {
  it('has the documented header and one row per finding, read back by csv-parse', () => {
    const records = readCsv(renderCsv(input()));
    expect(Object.keys(records[0] ?? {})).toEqual(REPORT_COLUMNS.map((c) => c.name));
    expect(records).toHaveLength(FINDINGS.length);
    const alice = records.find((r) => r.user_name === 'alice');
    expect(alice).toMatchObject({
      account_id: ACCOUNT,
      type: 'OLD_KEY',
      severity: 'MEDIUM',
      credential_id: 'AKIAALICE00000000001',
      age_days: '120',
      idle_days: '1',
      exempt: 'no',
      exemption_reason: '',
    });
    expect(records.find((r) => r.user_name === 'vendor')).toMatchObject({
      exempt: 'yes',
      exemption_reason: 'SMTP relay, SEC-12',
      exemption_until: '2026-12-31T23:59:59.999Z',
    });
    expect(records.find((r) => r.user_name === 'lapsed')?.exempt).toBe('expired');
    expect(records.find((r) => r.user_name === 'bob')?.last_used_date).toBe('');
  });

  it("names each finding's owner, or why its owner tag names none", () => {
    const findings = [
      finding({ type: 'OLD_KEY', userName: 'owned', owner: 'team-payments' }),
      finding({ type: 'OLD_KEY', userName: 'badly-tagged', ownerNote: 'not an email address or a team id' }),
      finding({ type: 'OLD_KEY', userName: 'unowned' }),
    ];
    const records = readCsv(renderCsv(input({ findings })));
    expect(records.map((r) => [r.user_name, r.owner, r.owner_note])).toEqual([
      ['owned', 'team-payments', ''],
      ['badly-tagged', '', 'not an email address or a team id'],
      ['unowned', '', ''],
    ]);
  });

  it("prefixes every cell that a spreadsheet would read as a formula with '", () => {
    const starts = ['=', '+', '-', '@', '\t', '\r'];
    const findings = starts.map((c, i) =>
      finding({
        type: 'OLD_KEY',
        userName: `${c}HYPERLINK("http://evil.example")${i}`,
        exemption: { reason: `${c}cmd|' /C calc'!A0`, until: null, expired: false },
      }),
    );
    const records = readCsv(renderCsv(input({ findings })));
    expect(records.map((r) => r.user_name)).toEqual(
      starts.map((c, i) => `'${c}HYPERLINK("http://evil.example")${i}`),
    );
    expect(records.map((r) => r.exemption_reason)).toEqual(starts.map((c) => `'${c}cmd|' /C calc'!A0`));
    // Quotes, commas and line breaks inside a cell survive the round trip.
    const quoted = readCsv(
      renderCsv(
        input({
          findings: [
            finding({
              type: 'OLD_KEY',
              userName: 'a,b',
              exemption: { reason: 'x\n"y"', until: null, expired: false },
            }),
          ],
        }),
      ),
    );
    expect(quoted[0]).toMatchObject({ user_name: 'a,b', exemption_reason: 'x\n"y"' });
  });

  it('guards exactly the formula starts, and only at the start of a cell', () => {
    expect(guardCell('alice')).toBe('alice');
    expect(guardCell('a=b')).toBe('a=b');
    expect(guardCell(120)).toBe('120');
    expect(guardCell(null)).toBe('');
    expect(guardCell('-1')).toBe("'-1");
    expect(guardCell('@x')).toBe("'@x");
  });

  it('is a header only when there is no finding', () => {
    expect(renderCsv(input({ findings: [] }))).toBe(`${REPORT_COLUMNS.map((c) => c.name).join(',')}\r\n`);
  });
});

describe('the HTML report', () => {
  it('escapes every value: a user name or tag text cannot add markup', () => {
    const findings = [
      finding({
        type: 'OLD_KEY',
        userName: HOSTILE,
        exemption: { reason: `"><img src=x onerror=alert(1)>`, until: null, expired: false },
      }),
    ];
    const html = renderHtml(input({ findings, accountIds: [`${ACCOUNT}<b>`] }));
    expect(html).not.toContain('<script>alert');
    expect(html).not.toContain('<img');
    expect(html).not.toContain(`${ACCOUNT}<b>`);
    expect(html).toContain(esc(HOSTILE));
    expect(esc(HOSTILE)).toBe('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;');
    // Exactly one script element: the report's own.
    expect(html.match(/<script/g)).toHaveLength(1);
  });

  it('loads nothing: no URL to fetch, and a policy that allows only its own style and script', () => {
    const html = renderHtml(input());
    expect(html).not.toMatch(/\b(src|href)=/);
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    expect(html).toMatch(
      /default-src &#39;none&#39;; style-src &#39;sha256-[A-Za-z0-9+/=]+&#39;; script-src &#39;sha256-/,
    );
  });

  it('holds the summary, one chart mark per age bucket, a row per finding, and the audit context', () => {
    const html = renderHtml(input());
    for (const t of FINDING_TYPES) expect(html).toContain(`data-type="${t}"`);
    expect(html.match(/<rect class="bar/g)).toHaveLength(AGE_BUCKETS.length);
    expect(html.match(/<tr class="/g)).toHaveLength(FINDINGS.length);
    expect(html).toContain(`<dd id="accounts">${ACCOUNT}</dd>`);
    expect(html).toContain(`<dd id="audited-at">${NOW.toISOString()}</dd>`);
    expect(html).toContain(
      'old after 90 days (OLD_KEY), warning 14 days before (EXPIRING_KEY), unused after 45 days',
    );
  });

  it('neither file holds a secret-shaped string', () => {
    expectNoSecrets(
      { secrets: ['never-a-real-secret'], shaped: true },
      { html: renderHtml(input()), csv: renderCsv(input()) },
    );
  });
});

describe('the age buckets', () => {
  it('cover every age once, without gaps', () => {
    for (let age = 0; age < 2000; age++)
      expect(AGE_BUCKETS.filter((b) => age >= b.min && (b.max === null || age <= b.max))).toHaveLength(1);
  });

  it('count each credential once, however many findings it has', () => {
    const twice = [
      finding({ type: 'OLD_KEY', userName: 'x', accessKeyId: 'AKIAX', ageDays: 100 }),
      finding({ type: 'UNUSED_KEY', userName: 'x', accessKeyId: 'AKIAX', ageDays: 100 }),
      finding({ type: 'EXPIRING_KEY', userName: 'y', accessKeyId: 'AKIAY', ageDays: 90 }),
      finding({ type: 'OLD_KEY', userName: 'z', accessKeyId: 'AKIAZ', ageDays: 5000 }),
    ];
    expect(ageBucketCounts(reportRows(input({ findings: twice })))).toEqual([0, 0, 1, 1, 0, 0, 1]);
  });
});
