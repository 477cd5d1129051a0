import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GenerateCredentialReportCommand,
  GetAccountAuthorizationDetailsCommand,
  GetCredentialReportCommand,
  IAMClient,
  ListAccessKeysCommand,
  ListServiceSpecificCredentialsCommand,
} from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { Command, CommanderError } from 'commander';
import { parse } from 'csv-parse/sync';
import { beforeEach, describe, expect, it } from 'vitest';
import { auditCommand, EXIT_FINDINGS, parseTypes } from '../../cli/audit.ts';
import { ReportFileError } from '../../cli/report-files.ts';
import { REPORT_COLUMNS } from '../../lambdas/audit/report/columns.ts';
import { ACCOUNT, ago, reportCsv } from '../lambdas/audit/helpers.ts';
import { fakeClock } from '../support/lambda-fixtures.ts';

const iam = new IAMClient({ region: 'us-east-1' });
const iamMock = mockClient(iam);

const KEY_IDS: Record<string, string> = {
  alice: 'AKIAALICE00000000001',
  bob: 'AKIABOB0000000000002',
  vendor: 'AKIAVENDOR0000000003',
  carol: 'AKIACAROL00000000004',
};
const CREATED: Record<string, number> = { alice: 100, bob: 50, vendor: 200, carol: 40 };

beforeEach(() => {
  iamMock.reset();
  const csv = reportCsv([
    { user: 'alice', key1: { created: 100, used: 1 } },
    { user: 'bob', key1: { created: 50 } },
    { user: 'vendor', key1: { created: 200, used: 1 } },
    { user: 'carol', key1: { created: 40, used: 2 } },
  ]);
  iamMock.on(GenerateCredentialReportCommand).resolves({ State: 'COMPLETE' });
  iamMock.on(GetCredentialReportCommand).resolves({ Content: new TextEncoder().encode(csv) });
  iamMock.on(GetAccountAuthorizationDetailsCommand).resolves({
    UserDetailList: [
      { UserName: 'alice' },
      { UserName: 'bob' },
      { UserName: 'vendor', Tags: [{ Key: 'rekey:exempt', Value: 'until=2027-06-30 SMTP relay' }] },
      { UserName: 'carol' },
    ],
  });
  iamMock.on(ListAccessKeysCommand).callsFake((input: { UserName: string }) => ({
    AccessKeyMetadata: [
      {
        UserName: input.UserName,
        AccessKeyId: KEY_IDS[input.UserName],
        Status: 'Active',
        CreateDate: ago(CREATED[input.UserName] ?? 0),
      },
    ],
  }));
  // carol's CodeCommit credential is old; bob's inactive Keyspaces one is not a finding.
  iamMock.on(ListServiceSpecificCredentialsCommand).callsFake((input: { ServiceName: string }) => ({
    ServiceSpecificCredentials: [
      {
        UserName: 'carol',
        ServiceName: 'codecommit.amazonaws.com',
        ServiceSpecificCredentialId: CAROL_GIT,
        Status: 'Active',
        CreateDate: ago(120),
      },
      {
        UserName: 'bob',
        ServiceName: 'cassandra.amazonaws.com',
        ServiceSpecificCredentialId: 'ACCABOBCASSANDRA00001',
        Status: 'Inactive',
        CreateDate: ago(300),
      },
    ].filter((c) => c.ServiceName === input.ServiceName),
  }));
});

const CAROL_GIT = 'ACCACAROLCODECOMMIT01';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `rekey audit ...args` the way cli/main.ts does: a subcommand of the `rekey` program. */
async function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  let code = 0;
  const command = auditCommand({
    iam,
    clock: fakeClock(),
    env,
    setExitCode: (c) => {
      code = c;
    },
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
  }).configureOutput({
    writeOut: (t) => {
      stdout += t;
    },
    writeErr: (t) => {
      stderr += t;
    },
  });
  const program = new Command('rekey').exitOverride().addCommand(command);
  try {
    await program.parseAsync(['node', 'rekey', 'audit', ...args]);
    return { code, stdout, stderr };
  } catch (error) {
    if (error instanceof CommanderError) return { code: error.exitCode, stdout, stderr };
    throw error;
  }
}

describe('rekey audit', () => {
  it('--json prints exactly {"findings":[...]} with the contract fields (and the exemption when tagged)', async () => {
    const { code, stdout, stderr } = await run(['--json']);

    expect(code).toBe(0);
    const document = JSON.parse(stdout);
    expect(Object.keys(document)).toEqual(['findings']);
    expect(document.findings).toEqual([
      {
        type: 'OLD_KEY',
        userName: 'alice',
        accessKeyId: KEY_IDS.alice,
        ageDays: 100,
        lastUsedDate: ago(1).toISOString(),
      },
      {
        type: 'OLD_KEY',
        userName: 'carol',
        accessKeyId: null,
        ageDays: 120,
        lastUsedDate: null,
        serviceName: 'codecommit.amazonaws.com',
        serviceSpecificCredentialId: CAROL_GIT,
      },
      {
        type: 'OLD_KEY',
        userName: 'vendor',
        accessKeyId: KEY_IDS.vendor,
        ageDays: 200,
        lastUsedDate: ago(1).toISOString(),
        exemption: { reason: 'SMTP relay', until: '2027-06-30T23:59:59.999Z', expired: false },
      },
      { type: 'UNUSED_KEY', userName: 'bob', accessKeyId: KEY_IDS.bob, ageDays: 50, lastUsedDate: null },
    ]);
    // Sorted after the access keys of the same type: carol's only finding is her CodeCommit credential.
    expect(document.findings).toHaveLength(4);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    // Progress and the call count go to stderr.
    expect(stderr).toContain('Fetching the IAM credential report');
    expect(stderr).toContain('4 users, 4 findings');
    expect(stderr).toContain(
      'IAM API calls: 8 (GenerateCredentialReport 1, GetAccountAuthorizationDetails 1, GetCredentialReport 1, ListAccessKeys 3, ListServiceSpecificCredentials 2; 3 of them per user with a finding)',
    );
  });

  it('--no-service-credentials (or REKEY_AUDIT_SERVICE_CREDENTIALS=false) audits access keys only; the flag wins', async () => {
    for (const [args, env] of [
      [['--json', '--no-service-credentials'], {}],
      [['--json'], { REKEY_AUDIT_SERVICE_CREDENTIALS: 'false' }],
    ] as const) {
      iamMock.resetHistory();
      const { code, stdout } = await run([...args], env);
      expect(code).toBe(0);
      expect(JSON.parse(stdout).findings.map((f: { userName: string }) => f.userName)).toEqual([
        'alice',
        'vendor',
        'bob',
      ]);
      expect(iamMock).not.toHaveReceivedCommand(ListServiceSpecificCredentialsCommand);
    }
    iamMock.resetHistory();
    await run(['--json', '--service-credentials'], { REKEY_AUDIT_SERVICE_CREDENTIALS: 'false' });
    expect(iamMock).toHaveReceivedCommandTimes(ListServiceSpecificCredentialsCommand, 2);
  });

  it('AccessDenied on the listing is an error (exit 1), not a clean audit', async () => {
    iamMock
      .on(ListServiceSpecificCredentialsCommand)
      .rejects(Object.assign(new Error('no iam:ListServiceSpecificCredentials'), { name: 'AccessDenied' }));
    await expect(run(['--json'])).rejects.toThrow('no iam:ListServiceSpecificCredentials');
  });

  it('prints a readable table by default', async () => {
    const { code, stdout } = await run([]);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^TYPE +USER +ACCESS KEY +AGE IDLE {2}LAST USED {3}NOTE$/);
    expect(lines).toContain(
      `OLD_KEY         vendor                           ${KEY_IDS.vendor}  200    1  2026-02-28  exempt until 2027-06-30: SMTP relay`,
    );
    expect(lines.find((l) => l.startsWith('UNUSED_KEY'))).toContain('never');
    // Service-specific credentials: a table of their own, without last use (IAM records none).
    const serviceHeader = lines.findIndex((l) => /^TYPE +USER +SERVICE +CREDENTIAL +AGE {2}NOTE$/.test(l));
    expect(serviceHeader).toBeGreaterThan(0);
    expect(lines[serviceHeader + 2]).toBe(
      `OLD_KEY         carol                            codecommit.amazonaws.com ${CAROL_GIT}     120`,
    );
  });

  it('takes thresholds from flags, then from the REKEY_* environment', async () => {
    const flags = JSON.parse(
      (await run(['--json', '--max-age-days', '30', '--unused-days', '60', '--warn-days', '0'])).stdout,
    );
    expect(flags.findings.map((f: { type: string; userName: string }) => `${f.type}:${f.userName}`)).toEqual([
      'OLD_KEY:alice',
      'OLD_KEY:bob',
      'OLD_KEY:carol',
      'OLD_KEY:carol',
      'OLD_KEY:vendor',
    ]);
    const env = JSON.parse((await run(['--json'], { REKEY_WARN_DAYS: '60' })).stdout);
    expect(env.findings.filter((f: { type: string }) => f.type === 'EXPIRING_KEY')).toHaveLength(2);
  });

  it(`--fail-on exits ${EXIT_FINDINGS} when such a finding exists, ignoring exempt ones`, async () => {
    const failing = await run(['--fail-on', 'unused_key,ROOT_ACCESS_KEY']);
    expect(failing.code).toBe(3);
    expect(failing.stderr).toContain('rekey: 1 finding(s) of type UNUSED_KEY (--fail-on)');
    expect(failing.stdout).toContain('UNUSED_KEY');

    expect((await run(['--fail-on', 'TWO_ACTIVE_KEYS'])).code).toBe(0);
    // Only vendor's key is older than 150 days, and vendor is exempt.
    expect((await run(['--fail-on', 'OLD_KEY', '--max-age-days', '150'])).code).toBe(0);
    expect((await run(['--fail-on', 'OLD_KEY'])).code).toBe(3);
  });

  it.each([
    [
      ['--max-age-days', 'ninety'],
      /option '--max-age-days <n>' argument 'ninety' is invalid. must be a whole number/,
    ],
    [['--unused-days', '0'], /must be between 1 and 3650/],
    [['--warn-days', '-1'], /must be a whole number/],
    [['--fail-on', 'OLD_KEYS'], /unknown finding type OLD_KEYS; use ROOT_ACCESS_KEY, OLD_KEY/],
    [['--fail-on', ','], /name at least one of/],
    [['--frobnicate'], /unknown option '--frobnicate'/],
  ])('refuses %j with exit 1 and a clear error, before any AWS call', async (args, message) => {
    const { code, stderr } = await run(args);
    expect(code).toBe(1);
    expect(stderr).toMatch(message);
    expect(iamMock).not.toHaveReceivedAnyCommand();
  });

  it('parseTypes normalises and de-duplicates', () => {
    expect(parseTypes(' old_key , OLD_KEY,expiring_key ')).toEqual(['OLD_KEY', 'EXPIRING_KEY']);
  });

  it('AWS errors propagate (exit 1 in cli/main.ts)', async () => {
    iamMock
      .on(GenerateCredentialReportCommand)
      .rejects(Object.assign(new Error('not allowed'), { name: 'AccessDenied' }));
    await expect(run(['--json'])).rejects.toThrow('not allowed');
  });

  describe('--html and --csv', () => {
    let dir = '';
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'rekey-audit-report-'));
      return () => rmSync(dir, { recursive: true, force: true });
    });

    it('write the report files beside --json, from the same findings', async () => {
      const html = join(dir, 'audit.html');
      const csv = join(dir, 'audit.csv');
      const { code, stdout, stderr } = await run(['--json', '--html', html, '--csv', csv]);

      expect(code).toBe(0);
      const findings = JSON.parse(stdout).findings as Array<{
        type: string;
        userName: string;
        ageDays: number;
      }>;
      const records = parse(readFileSync(csv, 'utf8'), { columns: true }) as Record<string, string>[];
      expect(Object.keys(records[0] ?? {})).toEqual(REPORT_COLUMNS.map((c) => c.name));
      expect(records.map((r) => [r.type, r.user_name, Number(r.age_days)])).toEqual(
        findings.map((f) => [f.type, f.userName, f.ageDays]),
      );
      // The account comes from the credential report's ARNs.
      expect(new Set(records.map((r) => r.account_id))).toEqual(new Set([ACCOUNT]));
      const page = readFileSync(html, 'utf8');
      expect(page.match(/<tr class="/g)).toHaveLength(findings.length);
      expect(stderr).toContain(`Wrote the HTML report: ${html}`);
      expect(stderr).toContain(`Wrote the CSV report: ${csv}`);
    });

    it('refuse a path that cannot be written before anything is called', async () => {
      await expect(run(['--html', join(dir, 'missing', 'a.html')])).rejects.toThrow(
        new ReportFileError(
          `cannot write the HTML report to ${join(dir, 'missing', 'a.html')}: its directory does not exist`,
        ),
      );
      await expect(run(['--csv', dir])).rejects.toThrow(
        `cannot write the CSV report to ${dir}: it is a directory`,
      );
      expect(iamMock).not.toHaveReceivedAnyCommand();
    });
  });
});
