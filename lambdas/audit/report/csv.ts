/**
 * The audit report as CSV (RFC 4180, through csv-stringify): a header of REPORT_COLUMNS' names,
 * then one line per finding.
 *
 * Spreadsheet formula injection (OWASP "CSV Injection"): IAM user names may begin with `=`, `+`,
 * `-` or `@`, and tag text (an exemption's reason) may begin with anything. A spreadsheet treats
 * such a cell as a formula, so every cell that begins with one of those, or with a tab or a
 * carriage return, is written with a leading `'`, which spreadsheets show as text.
 */
import { stringify } from 'csv-stringify/sync';
import { REPORT_COLUMNS, type ReportInput, reportRows } from './columns.ts';

/** The first characters OWASP lists as starting a formula. */
const FORMULA_START = /^[=+\-@\t\r]/;

/** A cell as written: `'` before a formula's first character; null as an empty cell. */
export function guardCell(value: string | number | null): string {
  if (value === null) return '';
  const text = String(value);
  return FORMULA_START.test(text) ? `'${text}` : text;
}

export function renderCsv(input: ReportInput): string {
  return stringify(
    reportRows(input).map((row) => REPORT_COLUMNS.map((c) => guardCell(c.value(row)))),
    { header: true, columns: REPORT_COLUMNS.map((c) => c.name), record_delimiter: 'windows' },
  );
}
