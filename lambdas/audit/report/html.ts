/**
 * The audit report as one self-contained HTML page: a summary by finding type, a key-age chart
 * (inline SVG drawn here from the data), the findings table (sortable by any column, filterable by
 * finding type, with a few lines of inline script), and the thresholds, time and account(s) of the
 * audit. No external resource of any kind: it works opened from disk, offline, and its Content
 * Security Policy allows nothing but its own inline style and script (by their hashes), so even a
 * value that escaped escaping could neither run nor load anything.
 *
 * Every value is HTML-escaped where it is written (`esc`); the script only reads the table and
 * moves its rows, it never builds markup from data.
 */
import { createHash } from 'node:crypto';
import { countsByType } from '../alerts.ts';
import { FINDING_TYPES } from '../findings.ts';
import { AGE_BUCKETS, ageBucketCounts, REPORT_COLUMNS, type ReportInput, reportRows } from './columns.ts';

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text or attribute value, escaped for HTML. */
export const esc = (value: unknown): string => String(value).replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 8px}
.meta{color:#57606a}dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:0}dt{font-weight:600}dd{margin:0}
.cards{display:flex;flex-wrap:wrap;gap:8px}.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:120px}
.card b{display:block;font-size:22px}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #d0d7de;padding:4px 6px;text-align:left;white-space:nowrap}
td.num,th.num{text-align:right}th button{font:inherit;font-weight:600;background:none;border:0;padding:0;cursor:pointer}
th[aria-sort=ascending] button::after{content:" \\25B2"}th[aria-sort=descending] button::after{content:" \\25BC"}
tr.ROOT_ACCESS_KEY td:nth-child(2){color:#cf222e;font-weight:600}
.chart text{font-size:12px;fill:#1b1f24}.bar{fill:#0969da}.bar.over{fill:#cf222e}
.controls{margin:8px 0}
`;

/**
 * Sorting (a click on a header: ascending, again: descending) and the type filter. Rows carry
 * their type as a class and numeric cells their number in data-value.
 */
const SCRIPT = `
(function(){
var table=document.getElementById('findings');var body=table.tBodies[0];
var headers=table.tHead.rows[0].cells;
function key(row,i,numeric){var c=row.cells[i];if(!numeric)return c.textContent;var v=c.getAttribute('data-value');return v===''?-Infinity:Number(v);}
Array.prototype.forEach.call(headers,function(th,i){
th.querySelector('button').addEventListener('click',function(){
var numeric=th.classList.contains('num');var dir=th.getAttribute('aria-sort')==='ascending'?-1:1;
Array.prototype.forEach.call(headers,function(h){h.removeAttribute('aria-sort');});
th.setAttribute('aria-sort',dir===1?'ascending':'descending');
var rows=Array.prototype.slice.call(body.rows);
rows.sort(function(a,b){var x=key(a,i,numeric),y=key(b,i,numeric);return (x<y?-1:x>y?1:0)*dir;});
rows.forEach(function(r){body.appendChild(r);});
});});
var filter=document.getElementById('type-filter');
filter.addEventListener('change',function(){var t=filter.value;var shown=0;
Array.prototype.forEach.call(body.rows,function(r){var on=t===''||r.classList.contains(t);r.hidden=!on;if(on)shown++;});
document.getElementById('shown').textContent=String(shown);});
})();
`;

const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

const CSP = `default-src 'none'; style-src ${hash(STYLE)}; script-src ${hash(SCRIPT)}; base-uri 'none'; form-action 'none'`;

/** The key-age chart: one bar (`rect.bar`) per AGE_BUCKETS bucket, red past the maximum age. */
function chartSvg(counts: readonly number[], maxKeyAgeDays: number): string {
  const width = 640;
  const height = 220;
  const top = 24;
  const bottom = 40;
  const left = 16;
  const slot = (width - 2 * left) / AGE_BUCKETS.length;
  const barWidth = slot * 0.7;
  const highest = Math.max(1, ...counts);
  const plot = height - top - bottom;
  const marks = AGE_BUCKETS.map((bucket, i) => {
    const n = counts[i] ?? 0;
    // A bucket with no key still gets its mark (a 1-pixel bar): the chart always has one per bucket.
    const h = Math.max(1, (n / highest) * plot);
    const x = left + i * slot + (slot - barWidth) / 2;
    const y = top + plot - h;
    const over = bucket.min > maxKeyAgeDays;
    const days = bucket.max === null ? `${bucket.min} days or more` : `${bucket.min} to ${bucket.max} days`;
    return (
      `<g><title>${esc(`${n} credential(s) ${days} old`)}</title>` +
      `<rect class="bar${over ? ' over' : ''}" data-bucket="${esc(bucket.label)}" data-count="${n}" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${barWidth.toFixed(1)}" height="${h.toFixed(1)}"></rect>` +
      `<text x="${(x + barWidth / 2).toFixed(1)}" y="${(y - 4).toFixed(1)}" text-anchor="middle">${n}</text>` +
      `<text x="${(x + barWidth / 2).toFixed(1)}" y="${height - bottom + 16}" text-anchor="middle">${esc(bucket.label)}</text></g>`
    );
  });
  return (
    `<svg class="chart" role="img" aria-labelledby="chart-title" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" xmlns="http://www.w3.org/2000/svg">` +
    `<title id="chart-title">Credentials with findings by age in days</title>` +
    `<line x1="${left}" y1="${top + plot}" x2="${width - left}" y2="${top + plot}" stroke="#57606a"></line>` +
    marks.join('') +
    `<text x="${width / 2}" y="${height - 6}" text-anchor="middle">age in days (red: older than ${maxKeyAgeDays})</text></svg>`
  );
}

/** The report page. */
export function renderHtml(input: ReportInput): string {
  const rows = reportRows(input);
  const counts = countsByType(rows);
  const { thresholds } = input;
  const accounts = input.accountIds.length ? input.accountIds.join(', ') : 'unknown';
  const when = input.auditedAt.toISOString();
  const cards = FINDING_TYPES.map(
    (t) => `<div class="card" data-type="${esc(t)}"><b>${counts[t] ?? 0}</b>${esc(t)}</div>`,
  ).join('');
  const head = REPORT_COLUMNS.map(
    (c) =>
      `<th scope="col"${c.numeric ? ' class="num"' : ''}><button type="button">${esc(c.label)}</button></th>`,
  ).join('');
  const body = rows
    .map((row) => {
      const cells = REPORT_COLUMNS.map((c) => {
        const v = c.value(row);
        const text = v === null ? '' : esc(v);
        return c.numeric
          ? `<td class="num" data-value="${v === null ? '' : esc(v)}">${text}</td>`
          : `<td>${text}</td>`;
      }).join('');
      return `<tr class="${esc(row.type)}">${cells}</tr>`;
    })
    .join('\n');
  const options = FINDING_TYPES.map(
    (t) => `<option value="${esc(t)}">${esc(t)} (${counts[t] ?? 0})</option>`,
  ).join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${esc(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rekey access key audit ${esc(when)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>rekey access key audit</h1>
<dl class="meta">
<dt>Account(s)</dt><dd id="accounts">${esc(accounts)}</dd>
<dt>Audited at</dt><dd id="audited-at">${esc(when)}</dd>
<dt>Thresholds</dt><dd id="thresholds">old after ${esc(thresholds.maxKeyAgeDays)} days (OLD_KEY), warning ${esc(thresholds.warnDays)} days before (EXPIRING_KEY), unused after ${esc(thresholds.unusedDays)} days (UNUSED_KEY)</dd>
<dt>Findings</dt><dd id="total">${rows.length}</dd>
</dl>
<h2>Findings by type</h2>
<div class="cards" id="summary">${cards}</div>
<h2>Key age</h2>
${chartSvg(ageBucketCounts(rows), thresholds.maxKeyAgeDays)}
<h2>Findings</h2>
<div class="controls"><label>Type <select id="type-filter"><option value="">all types (${rows.length})</option>${options}</select></label>
showing <span id="shown">${rows.length}</span>; click a column's header to sort by it</div>
<table id="findings">
<thead><tr>${head}</tr></thead>
<tbody>
${body}
</tbody>
</table>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
