/**
 * docs/audit.md's table of the CSV report's columns is REPORT_COLUMNS: the same names in the same
 * order. The column names are a contract for whoever loads the file; a page that drifted from the
 * code would document another file.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPORT_COLUMNS } from '../../lambdas/audit/report/columns.ts';
import { REPO_ROOT } from '../support/markdown.ts';

/** The first cells (`name`) of the table that follows the `| Column | Holds |` header. */
function documentedColumns(markdown: string): string[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^\| Column \| Holds \|/.test(l));
  const names: string[] = [];
  for (const line of lines.slice(start + 2)) {
    const name = /^\| `([a-z_]+)` \|/.exec(line)?.[1];
    if (!name) break;
    names.push(name);
  }
  return start < 0 ? [] : names;
}

describe('docs/audit.md', () => {
  it("lists the CSV report's columns, in order", () => {
    const page = readFileSync(join(REPO_ROOT, 'docs', 'audit.md'), 'utf8');
    expect(documentedColumns(page)).toEqual(REPORT_COLUMNS.map((c) => c.name));
  });

  it('would see a missing, extra or moved column', () => {
    const table = (names: string[]) =>
      ['| Column | Holds |', '| --- | --- |', ...names.map((n) => `| \`${n}\` | x |`), ''].join('\n');
    expect(documentedColumns(table(['a_b', 'c']))).toEqual(['a_b', 'c']);
    expect(documentedColumns('no table')).toEqual([]);
  });
});
