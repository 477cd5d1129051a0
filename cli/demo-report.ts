/**
 * The demo's final report: a table for people, a JSON document for `--json`, and the audit's HTML
 * report (rekey-report.html, the page `rekey audit --html` writes). Key ids are masked.
 */
import { renderHtml } from '../lambdas/audit/report/html.ts';
import type { DemoOutcome, DemoReport, DemoUserReport } from './demo.ts';
import type { AcrossAccountsReport } from './demo-organization.ts';
import { maskKeyId, type Paint, plain } from './progress.ts';

const OUTCOME_STYLE: Record<DemoOutcome, Parameters<Paint>[0]> = {
  rotated: 'green',
  'stopped safely': 'yellow',
  refused: 'yellow',
  reported: 'cyan',
  'nothing to do': 'dim',
  failed: 'red',
};

const mask = (id: string | null) => (id ? maskKeyId(id) : '-');

/** `OLD_KEY 120d, UNUSED_KEY`: each finding type once, the age of the oldest key on OLD_KEY. */
export function findingText(user: Pick<DemoUserReport, 'findings'>): string {
  if (user.findings.length === 0) return '-';
  const types = [...new Set(user.findings.map((f) => f.type))];
  return types
    .map((type) => {
      if (type !== 'OLD_KEY' && type !== 'EXPIRING_KEY') return type;
      const age = Math.max(...user.findings.filter((f) => f.type === type).map((f) => f.ageDays));
      return `${type} ${age}d`;
    })
    .join(', ');
}

export function outcomeText(user: Pick<DemoUserReport, 'outcome' | 'why'>): string {
  return user.why ? `${user.outcome}: ${user.why}` : user.outcome;
}

/** Pads to a width measured without the color codes. */
function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

/** A table of users, its OUTCOME column colored, each column as wide as its widest cell. */
function tableLines(
  header: readonly string[],
  rows: readonly string[][],
  outcomes: readonly DemoOutcome[],
  paint: Paint,
): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[], outcome?: DemoOutcome) =>
    cells
      .map((cell, i) => {
        const last = i === cells.length - 1;
        const padded = last ? cell : pad(cell, widths[i] ?? 0);
        return last && outcome ? paint(OUTCOME_STYLE[outcome], padded) : padded;
      })
      .join('  ');
  return [paint('bold', line(header)), ...rows.map((row, i) => line(row, outcomes[i]))];
}

function counts(users: ReadonlyArray<Pick<DemoUserReport, 'outcome'>>): string {
  const count = (o: DemoOutcome) => users.filter((u) => u.outcome === o).length;
  return (
    `${count('rotated')} rotated, ${count('stopped safely')} stopped safely, ` +
    `${count('refused')} refused, ${count('reported')} reported (alert only), ${count('nothing to do')} with nothing to do, ` +
    `${count('failed')} failed.`
  );
}

export function reportLines(report: DemoReport, paint: Paint = plain): string[] {
  const rows = report.users.map((u) => [
    u.userName,
    findingText(u),
    u.action,
    mask(u.oldKeyId),
    mask(u.newKeyId),
    outcomeText(u),
  ]);
  const lines = [
    ...tableLines(
      ['USER', 'FINDINGS', 'ACTION', 'KEY', 'NEW KEY', 'OUTCOME'],
      rows,
      report.users.map((u) => u.outcome),
      paint,
    ),
    '',
    `${report.users.length} users: ${counts(report.users)}`,
  ];
  if (report.consumer) {
    lines.push(
      `The consumer application of ${report.consumer.userName} made ${report.consumer.calls} signed calls with its old key ` +
        `during the rotation; ${report.consumer.failures} failed: rekey never cut it off.`,
    );
  }
  lines.push('', ...acrossAccountsLines(report.acrossAccounts, paint));
  lines.push(
    `Rotations took ${report.seconds.rotations.toFixed(1)} s (across accounts ${report.acrossAccounts.seconds.rotations.toFixed(1)} s); ` +
      `the whole demo ${report.seconds.total.toFixed(1)} s.`,
  );
  return lines;
}

/** The "Across accounts" section: the members' users per account, then what was checked. */
export function acrossAccountsLines(across: AcrossAccountsReport, paint: Paint = plain): string[] {
  const rows = across.users.map((u) => [
    `${u.accountName} ${u.accountId}`,
    u.userName,
    findingText(u),
    u.action,
    mask(u.oldKeyId),
    mask(u.newKeyId),
    outcomeText(u),
  ]);
  const failed = across.checks.filter((c) => !c.ok);
  return [
    paint('bold', `Across accounts (organization ${across.organizationId}, hub ${across.hubAccountId}):`),
    ...tableLines(
      ['ACCOUNT', 'USER', 'FINDINGS', 'ACTION', 'KEY', 'NEW KEY', 'OUTCOME'],
      rows,
      across.users.map((u) => u.outcome),
      paint,
    ),
    '',
    `${across.users.length} users in ${across.accounts.length} member accounts: ${counts(across.users)}`,
    ...(failed.length === 0
      ? [
          `Each rotated in its own account; the hub's user of the same name and every other hub user untouched.`,
        ]
      : failed.map((c) => paint('red', `✗ ${c.text}`))),
  ];
}

/** The report as data: the same fields, key ids masked (execution names are left out: they hold key ids). */
export function jsonReport(report: DemoReport): unknown {
  return {
    users: report.users.map((u) => ({
      userName: u.userName,
      story: u.story,
      findings: u.findings.map((f) => ({
        ...f,
        accessKeyId: f.accessKeyId ? maskKeyId(f.accessKeyId) : null,
      })),
      action: u.action,
      oldKeyId: u.oldKeyId ? maskKeyId(u.oldKeyId) : null,
      newKeyId: u.newKeyId ? maskKeyId(u.newKeyId) : null,
      outcome: u.outcome,
      why: u.why,
    })),
    audit: report.audit,
    consumer: report.consumer,
    checks: report.checks,
    acrossAccounts: {
      organizationId: report.acrossAccounts.organizationId,
      hubAccountId: report.acrossAccounts.hubAccountId,
      accounts: report.acrossAccounts.accounts,
      users: report.acrossAccounts.users.map((u) => ({
        ...u,
        findings: u.findings.map((f) => ({
          ...f,
          accessKeyId: f.accessKeyId ? maskKeyId(f.accessKeyId) : null,
        })),
        oldKeyId: u.oldKeyId ? maskKeyId(u.oldKeyId) : null,
        newKeyId: u.newKeyId ? maskKeyId(u.newKeyId) : null,
      })),
      checks: report.acrossAccounts.checks,
      seconds: report.acrossAccounts.seconds,
    },
    seconds: report.seconds,
  };
}

/** Where `rekey demo` writes the audit's HTML report unless --report names another file: the current directory. */
export const DEMO_REPORT_FILE = 'rekey-report.html';

/** The audit's HTML report of the demo's account. */
export const demoHtmlReport = (report: Pick<DemoReport, 'auditReport'>): string =>
  renderHtml(report.auditReport);
