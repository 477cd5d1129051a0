/**
 * Every alarm says where to go next: its description ends with the link to its own section of the
 * runbook (docs/operations.md), `<runbookBaseUrl>#<alarm name without the stack prefix>`, and that
 * section exists. A fork points runbookBaseUrl at its own copy.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_RUNBOOK_URL, loadConfig } from '../../infra/config.ts';
import { anchors, REPO_ROOT } from '../support/markdown.ts';
import { logicalIds, type Resources, synth } from './helpers.ts';

const STACK = 'RekeyStack';

/** Each alarm's name (without the stack prefix) and description. */
function alarms(resources: Resources): { section: string; description: string }[] {
  return logicalIds(resources, 'AWS::CloudWatch::Alarm').map((id) => {
    const props = resources[id]?.Properties as { AlarmName: unknown; AlarmDescription: unknown };
    expect(typeof props.AlarmName, `${id}'s name`).toBe('string');
    expect(typeof props.AlarmDescription, `${id}'s description`).toBe('string');
    const name = String(props.AlarmName);
    expect(name.startsWith(`${STACK}-`), name).toBe(true);
    return { section: name.slice(STACK.length + 1), description: String(props.AlarmDescription) };
  });
}

describe('the alarms link to the runbook', () => {
  const runbook = anchors(readFileSync(join(REPO_ROOT, DEFAULT_RUNBOOK_URL), 'utf8'));

  it('by default at its path in this repository, docs/operations.md', () => {
    expect(DEFAULT_RUNBOOK_URL).toBe('docs/operations.md');
    expect(loadConfig({}).runbookBaseUrl).toBe(DEFAULT_RUNBOOK_URL);
  });

  it('each alarm to a section of its own, which the runbook has', () => {
    const found = alarms(synth().resources);
    // 3 on the state machine, errors and throttles of 11 Lambdas, the audit's staleness.
    expect(found).toHaveLength(26);
    for (const { section, description } of found) {
      expect(description, section).toMatch(new RegExp(`\\. Runbook: docs/operations\\.md#${section}$`));
      expect(runbook.has(section), `docs/operations.md has no section #${section}`).toBe(true);
    }
    expect(new Set(found.map((a) => a.section)).size).toBe(found.length);
  });

  it('under a configured runbookBaseUrl', () => {
    const base = 'https://wiki.example.com/ops/rekey-runbook';
    for (const { section, description } of alarms(synth({ runbookBaseUrl: base }).resources)) {
      expect(description.endsWith(` Runbook: ${base}#${section}`), description).toBe(true);
    }
  });

  it.each([
    ['a fragment', 'docs/operations.md#top'],
    ['a space', 'docs/operations manual.md'],
    ['nothing', ''],
    ['more than 512 characters', `https://example.com/${'a'.repeat(500)}`],
  ])('refuses a runbookBaseUrl with %s', (_what, runbookBaseUrl) => {
    expect(() => loadConfig({ runbookBaseUrl })).toThrow(/runbookBaseUrl/);
  });
});
