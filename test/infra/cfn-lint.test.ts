/**
 * cfn-lint on the synthesized templates: zero errors and zero warnings. W3005 alone is configured
 * away, with its reason, in .cfnlintrc. cfn-lint is a Python tool (docs/testing.md, CI); when it is
 * missing this test fails and says how to install it: a gate that silently skips is no gate.
 * One cfn-lint run lints every template (each run costs seconds of start-up).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../infra/config.ts';
import { synthesizeMemberStack } from '../../infra/member-stack.ts';
import { synth } from './helpers.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CONFIG_FILE = join(REPO_ROOT, '.cfnlintrc');

interface LintMatch {
  Filename: string;
  Rule: { Id: string };
  Level: string;
  Message: string;
  Location: { Path: unknown[] };
}

/** Runs cfn-lint with the repository's configuration; returns every match it reports. */
function cfnLint(templates: string[]): LintMatch[] {
  const result = spawnSync(
    'cfn-lint',
    ['--config-file', CONFIG_FILE, '--format', 'json', '--', ...templates],
    {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    },
  );
  if (result.error && (result.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error(
      'cfn-lint is not installed: `python3 -m pip install cfn-lint` (the command must be on PATH as cfn-lint)',
    );
  }
  // Exit codes are a bit mask (2 errors, 4 warnings, 8 informational); 1 is a failure of the tool.
  if (result.status === 1 || result.status === null) {
    throw new Error(`cfn-lint failed to run (exit ${result.status}): ${result.stderr}`);
  }
  return JSON.parse(result.stdout || '[]') as LintMatch[];
}

const describeMatch = (m: LintMatch) =>
  `${m.Level} ${m.Rule.Id} at ${m.Location.Path.join('/')}: ${m.Message}`;

/** Configurations that change the template's shape, beyond the defaults `cdk synth` used. */
const CONFIGS: Record<string, unknown>[] = [
  {
    cloudTrailLookup: true,
    userPathPrefix: '/ci/',
    secretPrefix: 'keys/',
    logRetentionDays: 30,
    autoRotate: false,
    auditSchedule: 'rate(12 hours)',
  },
  {
    optInTag: 'rekey:opt-in',
    protectedUsers: ['break-glass', 'terraform'],
    consumerPrincipals: ['arn:aws:iam::210987654321:role/reader', 'arn:aws:iam::123456789012:role/ci'],
    notificationEmails: ['secops@example.com'],
    deactivateUnused: true,
    securityHub: true,
    auditReports: true,
    auditSchedule: 'cron(30 5 ? * MON-FRI *)',
    auditScheduleTimezone: 'Europe/Berlin',
  },
  // Organizations: the hub with its StackSet, in both secrets modes (the member templates below).
  {
    protectedUsers: ['break-glass'],
    organization: {
      organizationId: 'o-exampleorg1',
      stackSetTargets: ['r-ab12'],
      stackSetRegions: ['us-east-1'],
    },
  },
  {
    cloudTrailLookup: true,
    securityHub: true,
    deactivateUnused: true,
    organization: {
      organizationId: 'o-exampleorg1',
      secrets: 'hub',
      stackSetTargets: ['ou-ab12-cdefgh34'],
      stackSetRegions: ['eu-west-1'],
      stackSetCallAs: 'SELF',
      // OU rules: the organization audit's listing walks the tree (its own grants).
      include: { organizationalUnits: ['ou-ab12-cdefgh34'] },
      exclude: { accounts: ['210987654321'] },
      auditConcurrency: 25,
    },
  },
];
/** The member stack's template of each configuration with `organization`. */
const MEMBER_CONFIGS = CONFIGS.filter((raw) => (raw as { organization?: unknown }).organization);

describe('cfn-lint', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rekey-cfn-lint-'));
  const synthesized = join(REPO_ROOT, 'cdk.out', 'RekeyStack.template.json');
  const configured = CONFIGS.map((_raw, i) => join(dir, `config-${i}.template.json`));
  const members = MEMBER_CONFIGS.map((_raw, i) => join(dir, `member-${i}.template.json`));
  // A template with a warning (an unused parameter) and an error (a property of the wrong type).
  const broken = join(dir, 'broken.template.json');
  let matches: LintMatch[] = [];
  const of = (file: string) => matches.filter((m) => m.Filename === file);

  beforeAll(() => {
    CONFIGS.forEach((raw, i) => {
      writeFileSync(configured[i] ?? '', JSON.stringify(synth(raw).template.toJSON()));
    });
    MEMBER_CONFIGS.forEach((raw, i) => {
      writeFileSync(members[i] ?? '', JSON.stringify(synthesizeMemberStack(loadConfig(raw))));
    });
    writeFileSync(
      broken,
      JSON.stringify({
        Parameters: { Unused: { Type: 'String' } },
        Resources: {
          Topic: { Type: 'AWS::SNS::Topic', Properties: { DisplayName: ['not', 'a', 'string'] } },
        },
      }),
    );
    expect(existsSync(synthesized), 'the global test setup runs cdk synth').toBe(true);
    matches = cfnLint([synthesized, ...configured, ...members, broken]);
    // Every configuration's synth, then one cfn-lint over all templates: minutes on a loaded machine.
  }, 300_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('passes the template `cdk synth` wrote, with nothing to report', () => {
    expect(of(synthesized).map(describeMatch)).toEqual([]);
  });

  it.each(CONFIGS.map((raw, i) => [JSON.stringify(raw), i] as const))(
    'passes the template of %s, with nothing to report',
    (_name, i) => {
      expect(of(configured[i] ?? '').map(describeMatch)).toEqual([]);
    },
  );

  it.each(MEMBER_CONFIGS.map((raw, i) => [JSON.stringify(raw), i] as const))(
    'passes the member template of %s, with nothing to report',
    (_name, i) => {
      expect(existsSync(members[i] ?? '')).toBe(true);
      expect(of(members[i] ?? '').map(describeMatch)).toEqual([]);
    },
  );

  it('reports what it finds (the gate can fail)', () => {
    expect(of(broken).map((m) => m.Rule.Id)).toContain('W2001');
    expect(of(broken).some((m) => m.Level === 'Error')).toBe(true);
  });
});
