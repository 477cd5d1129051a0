/**
 * The audit reports end to end against the moto emulator: the audit Lambda's upload to the report
 * bucket under its deployed role (and refused without s3:PutObject), and the HTML report in a
 * real browser: `rekey audit --html` against the moto emulator (the
 * scan runs as the audit Lambda's deployed role, as a user's run against a local moto does), the
 * page opened from disk in headless Chromium, driven by playwright-core (no browser download:
 * Debian's `chromium`, or CHROME_PATH). Checks what a reader does with it: the table's rows are
 * the findings, sorting by age reorders them, filtering by type hides the others, the chart has
 * one mark per age bucket, and the page logs no console error. A screenshot goes to the test's
 * temporary directory (its path is printed).
 *
 * Chromium is a prerequisite like Python with moto (README): without it this test fails and says
 * how to install it.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditCommand } from '../../cli/audit.ts';
import { ReportsNotWritten } from '../../lambdas/audit/audit.ts';
import { AGE_BUCKETS, REPORT_COLUMNS } from '../../lambdas/audit/report/columns.ts';
import { ACCOUNT, type AuditWorld, startAuditWorld, type UserSpec } from '../../support/audit-world.ts';
import { ANY_CREDENTIALS, AwsEnv } from '../../support/aws.ts';
import { launchChromium } from '../../support/chromium.ts';
import { withoutAction } from '../support/role-mutations.ts';
import { expectNoSecrets } from '../support/secrets.ts';

// Names as IAM allows them (letters, digits and +=,.@_-), some that a spreadsheet would run.
const USERS: UserSpec[] = [
  { userName: 'svc-old-400', keys: [{ createdDaysAgo: 400, usedDaysAgo: 1 }] },
  { userName: 'svc-old-120', keys: [{ createdDaysAgo: 120, usedDaysAgo: 1 }] },
  { userName: '=1+2@evil', keys: [{ createdDaysAgo: 200, usedDaysAgo: 1 }] },
  { userName: 'ci-unused-50', keys: [{ createdDaysAgo: 50 }] },
  { userName: 'app-expiring-85', keys: [{ createdDaysAgo: 85, usedDaysAgo: 1 }] },
  { userName: 'old-and-unused', keys: [{ createdDaysAgo: 800 }] },
  { userName: 'fresh-10', keys: [{ createdDaysAgo: 10, usedDaysAgo: 1 }] },
  {
    userName: 'two-keys',
    keys: [
      { createdDaysAgo: 30, usedDaysAgo: 1 },
      { createdDaysAgo: 5, usedDaysAgo: 1 },
    ],
  },
];

/** A table row as the page sees it (the tests compile without the DOM's types). */
interface Row {
  hidden: boolean;
  cells: ArrayLike<{ textContent: string | null }>;
}

let world: AuditWorld;
let browser: BrowserContext | undefined;
let dir = '';
let reportPath = '';
let findings: Array<{ type: string; userName: string; ageDays: number }> = [];

beforeAll(async () => {
  world = await startAuditWorld();
  await world.seed(USERS);
  dir = mkdtempSync(join(tmpdir(), 'rekey-audit-reports-'));
  reportPath = join(dir, 'rekey-report.html');
  let stdout = '';
  const shell = new AwsEnv(world.moto.endpoint, ANY_CREDENTIALS).apply();
  try {
    await auditCommand({ stdout: (t) => (stdout += t), stderr: () => {} }).parseAsync(
      ['--json', '--no-service-credentials', '--html', reportPath],
      { from: 'user' },
    );
  } finally {
    shell.restore();
  }
  findings = (JSON.parse(stdout) as { findings: typeof findings }).findings;
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await world?.stop();
});

describe('the HTML audit report in Chromium', () => {
  it('is made from the emulator audit and holds no secret', () => {
    expect(findings.map((f) => f.type).sort()).toEqual(
      [
        'EXPIRING_KEY',
        'OLD_KEY',
        'OLD_KEY',
        'OLD_KEY',
        'OLD_KEY',
        'TWO_ACTIVE_KEYS',
        'UNUSED_KEY',
        'UNUSED_KEY',
      ].sort(),
    );
    expectNoSecrets({ secrets: world.secrets }, { 'the HTML report': readFileSync(reportPath, 'utf8') });
  });

  it('fails, with the install command, where Chromium is missing', async () => {
    await expect(launchChromium(dir, join(dir, 'no-chromium'))).rejects.toThrow(
      `Chromium not found at ${join(dir, 'no-chromium')}: install it with \`sudo apt-get install -y chromium\``,
    );
  });

  it('sorts, filters, draws one mark per age bucket, and logs no console error', async () => {
    browser = await launchChromium(dir);
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    // Anything the page tried to load would show here: it must load nothing but itself.
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(`file://${reportPath}`);

    const rows = page.locator('#findings tbody tr');
    const cellsOf = async (column: number) =>
      rows.evaluateAll(
        (trs, i) =>
          trs
            .map((tr) => tr as unknown as Row)
            .filter((tr) => !tr.hidden)
            .map((tr) => tr.cells[i]?.textContent ?? ''),
        column,
      );
    const USER = 3;
    const TYPE = 1;
    const AGE = 7;
    expect(await page.locator('#findings thead th').nth(AGE).textContent()).toContain('Age');

    // The rows are the findings.
    const asRows = (list: typeof findings) => list.map((f) => `${f.type} ${f.userName} ${f.ageDays}`).sort();
    const types = await cellsOf(TYPE);
    const users = await cellsOf(USER);
    const ages = await cellsOf(AGE);
    expect(types.map((t, i) => `${t} ${users[i]} ${ages[i]}`).sort()).toEqual(asRows(findings));
    expect(users).toContain('=1+2@evil');

    // Sorting by age: ascending, then descending.
    const byAge = findings.map((f) => f.ageDays);
    const before = await cellsOf(AGE);
    await page.locator('#findings thead th').nth(AGE).locator('button').click();
    const ascending = (await cellsOf(AGE)).map(Number);
    expect(ascending).toEqual([...byAge].sort((a, b) => a - b));
    expect(ascending.map(String)).not.toEqual(before);
    await page.locator('#findings thead th').nth(AGE).locator('button').click();
    expect((await cellsOf(AGE)).map(Number)).toEqual([...byAge].sort((a, b) => b - a));
    // And by any other column, the user's name.
    await page.locator('#findings thead th').nth(USER).locator('button').click();
    expect(await cellsOf(USER)).toEqual(
      findings.map((f) => f.userName).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
    );

    // Filtering by type hides the others.
    await page.selectOption('#type-filter', 'OLD_KEY');
    expect(await cellsOf(TYPE)).toEqual(findings.filter((f) => f.type === 'OLD_KEY').map(() => 'OLD_KEY'));
    expect(await page.locator('#shown').textContent()).toBe(
      String(findings.filter((f) => f.type === 'OLD_KEY').length),
    );
    expect(await rows.count()).toBe(findings.length);

    // The chart: one mark per bucket, with the counts of the credentials in it.
    const bars = page.locator('svg.chart rect.bar');
    expect(await bars.count()).toBe(AGE_BUCKETS.length);
    expect(await bars.evaluateAll((rects) => rects.map((r) => r.getAttribute('data-bucket')))).toEqual(
      AGE_BUCKETS.map((b) => b.label),
    );
    // 10 (fresh) has no finding; two-keys' older key (30) does: 0-30 holds it.
    expect(await bars.evaluateAll((rects) => rects.map((r) => Number(r.getAttribute('data-count'))))).toEqual(
      [1, 1, 1, 1, 1, 1, 1],
    );

    await page.selectOption('#type-filter', '');
    const screenshot = join(dir, 'rekey-report.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`report: ${reportPath}\nscreenshot: ${screenshot}`);

    expect(problems).toEqual([]);
    expect(requests).toEqual([`file://${reportPath}`]);
  });
});

describe('the audit Lambda writes the reports to the report bucket (auditReports)', () => {
  const rowsOf = (list: ReadonlyArray<{ type: string; userName: string; ageDays: number }>) =>
    list.map((f) => `${f.type} ${f.userName} ${f.ageDays}`).sort();

  it('as its deployed role: the same HTML and CSV, under the report prefix, linked from the digest', async () => {
    await world.drainDigests();
    const { summary } = await world.audit({ auditReports: true });

    const uris = summary.reports;
    expect(uris?.html).toMatch(
      new RegExp(
        `^s3://${world.reportBucket}/audit-reports/${ACCOUNT}/\\d{4}-\\d{2}-\\d{2}/\\d{8}T\\d{6}Z\\.html$`,
      ),
    );
    expect(uris?.csv).toBe(uris?.html.replace(/\.html$/, '.csv'));
    const html = await world.readObject(uris?.html ?? '');
    const csv = await world.readObject(uris?.csv ?? '');
    // The rows of `rekey audit --html` (above), from the Lambda's run of the same account.
    expect(html.match(/<tr class="/g)).toHaveLength(findings.length);
    const records = parse(csv, { columns: true }) as Record<string, string>[];
    expect(Object.keys(records[0] ?? {})).toEqual(REPORT_COLUMNS.map((c) => c.name));
    expect(
      rowsOf(
        records.map((r) => ({
          type: r.type ?? '',
          userName: r.user_name ?? '',
          ageDays: Number(r.age_days),
        })),
      ),
    ).toEqual(
      rowsOf(
        findings.map((f) => ({ ...f, userName: f.userName.startsWith('=') ? `'${f.userName}` : f.userName })),
      ),
    );

    const [digest] = await world.drainDigests();
    expect(digest).toContain(uris?.html);
    expect(digest).toContain(uris?.csv);
    expect(digest).toContain(
      `https://us-east-1.console.aws.amazon.com/s3/object/${world.reportBucket}?region=us-east-1&bucketType=general&prefix=audit-reports%2F`,
    );
    expectNoSecrets({ secrets: world.secrets }, { html, csv, digest });
  });

  it('without s3:PutObject the upload is refused, the digest says so, and the run fails by name', async () => {
    await world.drainDigests();

    const run = world.audit({ auditReports: true }, { mutate: withoutAction('audit', 's3:PutObject') });

    await expect(run).rejects.toThrow(ReportsNotWritten);
    await expect(run).rejects.toThrow(/AccessDenied.*s3:PutObject/);
    const [digest] = await world.drainDigests();
    expect(digest).toMatch(/Reports: {12}NOT WRITTEN \(AccessDenied/);
  });
});
