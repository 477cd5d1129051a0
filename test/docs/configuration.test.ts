/**
 * The configuration page lists every option of the schema, each with its default as the code
 * has it; the design page's timeout table gives each step the timeout the code derives. Pages that
 * restate numbers of the code go stale silently unless something compares them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FUNCTION_NAMES, FUNCTIONS, type FunctionName } from '../../contract/functions.ts';
import { loadConfig, RekeyConfigSchema, stepTimeoutSeconds } from '../../infra/config.ts';
import { REPO_ROOT, workingTree } from '../support/markdown.ts';

const page = (name: string) => readFileSync(join(REPO_ROOT, 'docs', name), 'utf8');

/** The cells of the table rows whose first cell is `` `name` ``, by that name. */
function rows(markdown: string): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const line of markdown.split('\n')) {
    const cells = /^\|(.*)\|\s*$/
      .exec(line)?.[1]
      ?.split(' | ')
      .map((c) => c.trim());
    const key = /^`([^`]+)`$/.exec(cells?.[0] ?? '')?.[1];
    if (cells && key && !found.has(key)) found.set(key, cells);
  }
  return found;
}

describe('docs/configuration.md', () => {
  const options = rows(page('configuration.md'));
  const defaults = loadConfig({}) as Record<string, unknown>;

  it.each(Object.keys(RekeyConfigSchema.shape))('lists %s with its default', (option) => {
    const row = options.get(option);
    expect(row, `no row for ${option}`).toBeDefined();
    const value = defaults[option];
    expect(row?.[1]).toBe(value === undefined ? 'none' : `\`${JSON.stringify(value)}\``);
  });

  it('lists no option the schema lacks', () => {
    const schema = new Set(Object.keys(RekeyConfigSchema.shape));
    const listed = [...options.keys()].filter((k) => /^[a-z][A-Za-z]+$/.test(k));
    expect(listed.filter((k) => !schema.has(k))).toEqual([]);
  });
});

describe('the Lambda timeouts of docs/design.md', () => {
  const table = rows(page('design.md').slice(page('design.md').indexOf('## Lambda timeouts')));
  const config = loadConfig({});
  // Every workflow step has a handler folder of its own (the standalone Lambdas, the audit and
  // the organization accounts, are no steps).
  const standalone = new Set(FUNCTION_NAMES.filter((name) => FUNCTIONS[name].kind === 'standalone'));
  const steps = workingTree()
    .files.filter((f) => f.startsWith('lambdas/') && f.endsWith('/index.ts'))
    .map((f) => f.split('/').at(-2) ?? '')
    .filter((name) => !standalone.has(name as FunctionName));

  it('has a row for every step', () => {
    expect(steps.length).toBeGreaterThanOrEqual(10);
    expect(steps.filter((s) => !table.has(s))).toEqual([]);
  });

  it.each(steps)('gives %s the timeout the code derives', (step) => {
    const seconds = stepTimeoutSeconds(step as Parameters<typeof stepTimeoutSeconds>[0], config);
    expect(table.get(step)?.[2]).toBe(`${seconds} s`);
  });
});
