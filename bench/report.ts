/**
 * How the benchmarks print: figures (tables, each block followed by the command that reproduces
 * it) on stdout, progress on stderr with the time since the run started, so
 * `npm run bench > figures.txt` keeps only the figures.
 */
import { cpus, loadavg } from 'node:os';

const started = performance.now();

/** A progress line on stderr, stamped with the seconds since the benchmark process started. */
export function progress(message: string): void {
  const seconds = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[${seconds}s] ${message}\n`);
}

/** Lines of text on stdout. */
export function print(...lines: string[]): void {
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** A fixed-width table; columns listed in `right` are right-aligned (numbers). */
export function table(headers: string[], rows: string[][], right: number[] = []): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.includes(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}

/** `npm run bench -- <args>`: what the reader types to get the same block again. */
export function reproduce(args: string): string {
  return `Reproduce: npm run bench -- ${args}`;
}

export function heading(title: string): string[] {
  return ['', title, '='.repeat(title.length)];
}

/** The machine the figures were taken on: they mean little without it. */
export function machineLine(): string {
  const [one, five] = loadavg();
  const cores = cpus();
  return (
    `Node ${process.version} on ${process.platform}/${process.arch}, ${cores.length} × ${cores[0]?.model.trim() ?? 'unknown CPU'}, ` +
    `load average ${one?.toFixed(1)} (1 min) ${five?.toFixed(1)} (5 min) when the run started`
  );
}

export const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
export const millis = (ms: number): string => `${ms.toFixed(1)} ms`;
export const count = (n: number): string => n.toLocaleString('en-US');
export const ratio = (a: number, b: number): string => `${(a / b).toFixed(a / b >= 100 ? 0 : 1)}×`;

/** Dollars with enough digits to show sub-cent figures (per rotation costs are fractions of a cent). */
export function usd(amount: number): string {
  if (amount === 0) return '$0';
  if (amount >= 1)
    return `$${amount.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  // Three significant digits, written out: $0.000000250 rather than $2.50e-7.
  const decimals = Math.min(20, Math.max(2, 2 - Math.floor(Math.log10(amount))));
  return `$${amount.toFixed(decimals)}`;
}

/** A list price as written on a pricing page: $0.20, $0.025, $0.0000133334. */
export function listPrice(amount: number): string {
  return `$${amount.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 10 })}`;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The q-quantile (0..1) by nearest rank. */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}
