/**
 * The demo's final report: a table for people, a JSON document for `--json`, and the audit's HTML
 * report (rekey-report.html, the page `rekey audit --html` writes). Key ids are masked.
 */
import { renderHtml } from '../lambdas/audit/report/html.ts';
import type { DemoOutcome, DemoReport, DemoUserReport } from './demo.ts';
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

export function reportLines(report: DemoReport, paint: Paint = plain): string[] {
  const rows = report.users.map((u) => [
    u.userName,
    findingText(u),
    u.action,
    mask(u.oldKeyId),
    mask(u.newKeyId),
    outcomeText(u),
  ]);
  const header = ['USER', 'FINDINGS', 'ACTION', 'KEY', 'NEW KEY', 'OUTCOME'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[], styles: Array<Parameters<Paint>[0] | null> = []) =>
    cells
      .map((cell, i) => {
        const padded = i === cells.length - 1 ? cell : pad(cell, widths[i] ?? 0);
        const style = styles[i];
        return style ? paint(style, padded) : padded;
      })
      .join('  ');
  const count = (o: DemoOutcome) => report.users.filter((u) => u.outcome === o).length;
  const lines = [
    paint('bold', line(header)),
    ...report.users.map((u, i) =>
      line(rows[i] ?? [], [null, null, null, null, null, OUTCOME_STYLE[u.outcome]]),
    ),
    '',
    `${report.users.length} users: ${count('rotated')} rotated, ${count('stopped safely')} stopped safely, ` +
      `${count('refused')} refused, ${count('reported')} reported (alert only), ${count('nothing to do')} with nothing to do, ` +
      `${count('failed')} failed.`,
  ];
  if (report.consumer) {
    lines.push(
      `The consumer application of ${report.consumer.userName} made ${report.consumer.calls} signed calls with its old key ` +
        `during the rotation; ${report.consumer.failures} failed: rekey never cut it off.`,
    );
  }
  lines.push(
    `Rotations took ${report.seconds.rotations.toFixed(1)} s; the whole demo ${report.seconds.total.toFixed(1)} s.`,
  );
  return lines;
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
    seconds: report.seconds,
  };
}

/** Where `rekey demo` writes the audit's HTML report unless --report names another file: the current directory. */
export const DEMO_REPORT_FILE = 'rekey-report.html';

/** The audit's HTML report of the demo's account. */
export const demoHtmlReport = (report: Pick<DemoReport, 'auditReport'>): string =>
  renderHtml(report.auditReport);
