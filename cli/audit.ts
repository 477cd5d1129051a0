/**
 * `rekey audit`: the audit's scan, run on this machine against whatever AWS the SDK's default
 * chain reaches (AWS_ENDPOINT_URL for an emulator). Read-only: it starts no rotation, changes no
 * key and publishes nothing; the deployed audit Lambda does that.
 *
 *   rekey audit [--json] [--html FILE] [--csv FILE] [--max-age-days N] [--unused-days N] [--warn-days N]
 *               [--fail-on TYPE,...] [--no-service-credentials]
 *               [--organization [--accounts ID,...] [--role-name NAME] [--concurrency N]]
 *
 * With --organization the same scan runs in every account of the organization in scope
 * (cli/audit-organization.ts, loaded only then); --accounts, --role-name and --concurrency are
 * refused without it.
 *
 * stdout: a table, or with --json exactly `{"findings":[{"type","userName","accessKeyId","ageDays",
 * "lastUsedDate"}, ...]}`; a service-specific credential's finding also has "serviceName" and
 * "serviceSpecificCredentialId" (accessKeyId null); a finding of a user carrying the exempt tag also has `"exemption":
 * {"reason","until","expired"}` (without it a CI gate could not tell an accepted risk from a new
 * one). Progress and the IAM call count go to stderr. --html and --csv also write the report files
 * (lambdas/audit/report/, the same files the audit Lambda can upload); a path that cannot be
 * written is refused before the scan starts.
 * Exit codes: 0 = no finding of a --fail-on type (or no --fail-on); 3 = at least one such finding
 * (exempt ones do not count); 1 = error (bad flags, AWS errors). 3 rather than 2 because 2 already
 * means "stopped safely" for `rekey rotate`. Inside `rekey` the command reports 3 through
 * `deps.setExitCode`, as `rekey rotate` reports its own (cli/main.ts returns it to bin/rekey.mjs);
 * used on its own (no setExitCode) it throws CommanderError(3), commander's way to exit non-zero.
 *
 * Thresholds and the exempt tag default to REKEY_MAX_KEY_AGE_DAYS, REKEY_UNUSED_DAYS,
 * REKEY_WARN_DAYS and REKEY_EXEMPT_TAG when set (as the Lambda reads them), else 90/45/14 and
 * `rekey:exempt`; flags win. Service-specific credentials are listed (iam:ListServiceSpecificCredentials)
 * unless --no-service-credentials or REKEY_AUDIT_SERVICE_CREDENTIALS=false: an emulator without
 * that API needs one of them; against AWS, AccessDenied is an error like any other.
 *
 * Against a local moto server (AWS_ENDPOINT_URL, cli/deployed-roles.ts) the scan runs as the
 * audit Lambda's deployed role for cdk.json's configuration, as the Lambda would; against AWS it
 * runs with the caller's credentials.
 */
import { IAMClient } from '@aws-sdk/client-iam';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { loadEnv } from '../contract/env.ts';
import { scanAccount } from '../lambdas/audit/audit.ts';
import { CallCounter } from '../lambdas/audit/calls.ts';
import {
  contractView,
  FINDING_TYPES,
  type Finding,
  type FindingType,
  isActiveExemption,
  type Thresholds,
} from '../lambdas/audit/findings.ts';
import type { ReportInput } from '../lambdas/audit/report/columns.ts';
import { renderCsv } from '../lambdas/audit/report/csv.ts';
import { renderHtml } from '../lambdas/audit/report/html.ts';
import {
  bindToInvocations,
  type InvocationContext,
  invocationCredentials,
  runInInvocation,
} from '../lambdas/shared/clients/invocation.ts';
import { type Clock, systemClock } from '../lambdas/shared/clock.ts';
import type { OrganizationAuditClients } from './audit-organization.ts';
import { checkWritable, writeReportFile } from './report-files.ts';
import { nameOperationOnFailure } from './unsupported-operation.ts';

/** Exit code when a finding of a --fail-on type exists. */
export const EXIT_FINDINGS = 3;

export interface AuditFlags {
  json?: boolean;
  /** Write the HTML report here. */
  html?: string;
  /** Write the CSV report here. */
  csv?: string;
  maxAgeDays?: number;
  unusedDays?: number;
  warnDays?: number;
  failOn?: FindingType[];
  /** undefined: REKEY_AUDIT_SERVICE_CREDENTIALS, else true. */
  serviceCredentials?: boolean;
}

/** The flags of `rekey audit --organization` (cli/audit-organization.ts). */
export interface OrganizationFlags {
  organization?: boolean;
  accounts?: string[];
  roleName?: string;
  concurrency?: number;
}

export interface AuditCommandDeps extends OrganizationAuditClients {
  /**
   * @default an IAMClient from the SDK's default chain, created when the command runs (signing
   * as the audit's deployed role when the endpoint is a local moto server)
   */
  iam?: IAMClient;
  clock?: Clock;
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  /** @default process.env */
  env?: Record<string, string | undefined>;
  /** Receives the exit code when it is not 0 (EXIT_FINDINGS). @default throw CommanderError(3) */
  setExitCode?: (code: number) => void;
}

const wholeNumber = (min: number, max: number) => (value: string) => {
  if (!/^\d+$/.test(value.trim()))
    throw new InvalidArgumentError(`must be a whole number of days (${min}-${max})`);
  const n = Number(value);
  if (n < min || n > max) throw new InvalidArgumentError(`must be between ${min} and ${max}`);
  return n;
};

/** --accounts: comma-separated 12-digit account ids, at least one; duplicates dropped. */
export function parseAccountIds(value: string): string[] {
  const ids = value
    .split(',')
    .map((id) => id.trim())
    .filter((id) => id.length > 0);
  if (ids.length === 0) throw new InvalidArgumentError('name at least one account id (12 digits)');
  const bad = ids.filter((id) => !/^\d{12}$/.test(id));
  if (bad.length)
    throw new InvalidArgumentError(
      `not an account id (12 digits): ${bad.map((id) => JSON.stringify(id)).join(', ')}`,
    );
  return [...new Set(ids)];
}

/** --role-name: an IAM role name (path not included). */
function parseRoleName(value: string): string {
  if (!/^[\w+=,.@-]{1,64}$/.test(value))
    throw new InvalidArgumentError('must be an IAM role name (1-64 of letters, digits and +=,.@_-)');
  return value;
}

const wholeCount = (min: number, max: number) => (value: string) => {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`must be a whole number (${min}-${max})`);
  const n = Number(value);
  if (n < min || n > max) throw new InvalidArgumentError(`must be between ${min} and ${max}`);
  return n;
};

export function parseTypes(value: string): FindingType[] {
  const types = value
    .split(',')
    .map((t) => t.trim().toUpperCase())
    .filter((t) => t.length > 0);
  if (types.length === 0) throw new InvalidArgumentError(`name at least one of ${FINDING_TYPES.join(', ')}`);
  const unknown = types.filter((t) => !(FINDING_TYPES as readonly string[]).includes(t));
  if (unknown.length)
    throw new InvalidArgumentError(
      `unknown finding type ${unknown.join(', ')}; use ${FINDING_TYPES.join(', ')}`,
    );
  return [...new Set(types)] as FindingType[];
}

/** The --json document: the five contract fields, plus `exemption` for users carrying the tag. */
export function jsonDocument(findings: readonly Finding[]): { findings: Record<string, unknown>[] } {
  return {
    findings: findings.map((f) => ({
      ...contractView(f),
      ...(f.exemption ? { exemption: f.exemption } : {}),
    })),
  };
}

const cell = (s: string, width: number) => (s.length > width ? `${s.slice(0, width - 1)}~` : s.padEnd(width));

function noteOf(f: Finding): string {
  if (!f.exemption) return '';
  const until = f.exemption.until ? f.exemption.until.slice(0, 10) : null;
  return f.exemption.expired
    ? `exemption expired ${until}: ${f.exemption.reason}`
    : `exempt${until ? ` until ${until}` : ''}: ${f.exemption.reason}`;
}

/** The findings as tables: access keys, then (if any) service-specific credentials. */
export function tableLines(findings: readonly Finding[]): string[] {
  if (findings.length === 0) return ['No findings.'];
  const keys = findings.filter((f) => !f.serviceName);
  const services = findings.filter((f) => f.serviceName);
  const lines: string[] = [];
  if (keys.length) {
    const header = `${cell('TYPE', 15)} ${cell('USER', 32)} ${cell('ACCESS KEY', 20)} ${'AGE'.padStart(4)} ${'IDLE'.padStart(4)}  ${cell('LAST USED', 10)}  NOTE`;
    lines.push(
      header,
      '-'.repeat(header.length + 20),
      ...keys.map((f) =>
        `${cell(f.type, 15)} ${cell(f.userName, 32)} ${cell(f.accessKeyId ?? '-', 20)} ${String(f.ageDays).padStart(4)} ${String(f.idleDays ?? '-').padStart(4)}  ${cell(f.lastUsedDate ? f.lastUsedDate.slice(0, 10) : 'never', 10)}  ${noteOf(f)}`.trimEnd(),
      ),
    );
  }
  if (services.length) {
    if (keys.length) lines.push('');
    // No IDLE / LAST USED: IAM records no last use for service-specific credentials.
    const header = `${cell('TYPE', 15)} ${cell('USER', 32)} ${cell('SERVICE', 24)} ${cell('CREDENTIAL', 24)} ${'AGE'.padStart(4)}  NOTE`;
    lines.push(
      header,
      '-'.repeat(header.length + 20),
      ...services.map((f) =>
        `${cell(f.type, 15)} ${cell(f.userName, 32)} ${cell(f.serviceName ?? '', 24)} ${cell(f.serviceSpecificCredentialId ?? '', 24)} ${String(f.ageDays).padStart(4)}  ${noteOf(f)}`.trimEnd(),
      ),
    );
  }
  return lines;
}

/** The scan's policy: the flags over the REKEY_* variables (as the Lambda reads them) over the defaults. */
export function scanPolicyFrom(
  flags: AuditFlags,
  source: Record<string, string | undefined>,
): { thresholds: Thresholds; exemptTag: string; serviceCredentials: boolean } {
  const env = loadEnv(
    [
      'REKEY_MAX_KEY_AGE_DAYS',
      'REKEY_UNUSED_DAYS',
      'REKEY_WARN_DAYS',
      'REKEY_EXEMPT_TAG',
      'REKEY_AUDIT_SERVICE_CREDENTIALS',
    ],
    source,
  );
  return {
    thresholds: {
      maxKeyAgeDays: flags.maxAgeDays ?? env.REKEY_MAX_KEY_AGE_DAYS,
      unusedDays: flags.unusedDays ?? env.REKEY_UNUSED_DAYS,
      warnDays: flags.warnDays ?? env.REKEY_WARN_DAYS,
    },
    exemptTag: env.REKEY_EXEMPT_TAG,
    serviceCredentials: flags.serviceCredentials ?? env.REKEY_AUDIT_SERVICE_CREDENTIALS,
  };
}

/** The report files the flags ask for, each path checked before the scan starts. */
export function reportFilesFrom(
  flags: AuditFlags,
): Array<{ path: string; what: string; render: (input: ReportInput) => string }> {
  return [
    ...(flags.html
      ? [{ path: checkWritable(flags.html, 'HTML report'), what: 'HTML report', render: renderHtml }]
      : []),
    ...(flags.csv
      ? [{ path: checkWritable(flags.csv, 'CSV report'), what: 'CSV report', render: renderCsv }]
      : []),
  ];
}

/** `N finding(s) of type T (--fail-on)` for the findings of a --fail-on type that are not exempt; null when none. */
export function failOnMessage(flags: AuditFlags, findings: readonly Finding[]): string | null {
  if (!flags.failOn?.length) return null;
  const failing = findings.filter((f) => flags.failOn?.includes(f.type) && !isActiveExemption(f.exemption));
  if (!failing.length) return null;
  return `${failing.length} finding(s) of type ${[...new Set(failing.map((f) => f.type))].join(', ')} (--fail-on)`;
}

async function audit(flags: AuditFlags, deps: AuditCommandDeps): Promise<void> {
  const out = deps.stdout ?? ((text: string) => process.stdout.write(text));
  const err = deps.stderr ?? ((text: string) => process.stderr.write(text));
  const say = (line: string) => err(`${line}\n`);
  const policy = scanPolicyFrom(flags, deps.env ?? process.env);
  const { thresholds } = policy;
  const files = reportFilesFrom(flags);
  const emulated = deps.iam ? undefined : await auditRoleOnEmulator(deps.env ?? process.env, say);
  const invocation = emulated?.context;
  let iam = deps.iam;
  if (!iam) {
    iam = new IAMClient({ maxAttempts: 5, ...(invocation ? { credentials: invocationCredentials } : {}) });
    if (invocation) bindToInvocations(iam, 'iam');
    // An endpoint without an API the scan calls is then named in cli/main.ts's error message.
    nameOperationOnFailure(iam);
  }
  const calls = new CallCounter();
  const started = Date.now();
  try {
    const client = iam;
    const run = () =>
      scanAccount({ iam: client, clock: deps.clock ?? systemClock, calls, log: (m) => say(m) }, policy);
    const scan = await (invocation ? runInInvocation(invocation, run) : run());
    if (flags.json) out(`${JSON.stringify(jsonDocument(scan.findings))}\n`);
    else out(`${tableLines(scan.findings).join('\n')}\n`);
    const report: ReportInput = {
      findings: scan.findings,
      thresholds,
      auditedAt: scan.auditedAt,
      accountIds: scan.accountId ? [scan.accountId] : [],
    };
    for (const file of files)
      say(`Wrote the ${file.what}: ${writeReportFile(file.path, file.render(report), file.what)}`);

    const counts = FINDING_TYPES.map((t) => `${t} ${scan.findings.filter((f) => f.type === t).length}`);
    const exempt = scan.findings.filter((f) => isActiveExemption(f.exemption)).length;
    say(
      `${scan.usersScanned} users, ${scan.findings.length} findings (${counts.join(', ')}; ${exempt} exempt) ` +
        `in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    say(
      `IAM API calls: ${calls.total} (${Object.entries(calls.toJSON())
        .map(([op, n]) => `${op} ${n}`)
        .join(', ')}; ${calls.perFindingCalls} of them per user with a finding)`,
    );
    const message = failOnMessage(flags, scan.findings);
    if (message) {
      say(`rekey: ${message}`);
      if (!deps.setExitCode) throw new CommanderError(EXIT_FINDINGS, 'rekey.audit.findings', message);
      deps.setExitCode(EXIT_FINDINGS);
    }
  } finally {
    if (!deps.iam) iam.destroy();
    emulated?.close();
  }
}

/**
 * The audit Lambda's invocation context when AWS_ENDPOINT_URL is a local moto server: its role
 * from the stack synthesized for cdk.json's configuration. Loaded only then (aws-cdk-lib is slow
 * to import, and `rekey audit --help` must stay fast).
 */
async function auditRoleOnEmulator(
  source: Record<string, string | undefined>,
  say: (line: string) => void,
): Promise<{ context: InvocationContext; close(): void } | undefined> {
  const [{ emulatorRoles, synthesizeTemplate }, { readCdkContextConfig }] = await Promise.all([
    import('./deployed-roles.ts'),
    import('./local-env.ts'),
  ]);
  const roles = await emulatorRoles({
    template: () => synthesizeTemplate(readCdkContextConfig()),
    env: source,
    source,
  });
  if (!roles) return undefined;
  try {
    const context = await roles.contextFor('audit');
    say(`Emulator at ${roles.endpoint}: the scan runs as the audit Lambda's deployed role, not as you`);
    // The roles stay open while the scan runs: its checks read the emulator through them.
    return { context, close: () => roles.close() };
  } catch (error) {
    roles.close();
    throw error;
  }
}

/** `rekey audit`; add it with `program.addCommand(auditCommand())`. */
export function auditCommand(deps: AuditCommandDeps = {}): Command {
  return new Command('audit')
    .description(
      "Audit the account's access keys (IAM credential report) and service-specific credentials (read-only: starts and changes nothing)",
    )
    .option('--json', 'print {"findings":[...]} on stdout (progress goes to stderr)')
    .option('--html <file>', 'also write the report as one self-contained HTML page (chart, sortable table)')
    .option('--csv <file>', 'also write the findings as CSV (columns: docs/audit.md)')
    .option('--max-age-days <n>', 'a key older than this is OLD_KEY (default 90)', wholeNumber(1, 3650))
    .option(
      '--unused-days <n>',
      'a key unused this long or longer is UNUSED_KEY (default 45)',
      wholeNumber(1, 3650),
    )
    .option(
      '--warn-days <n>',
      'EXPIRING_KEY this many days before a key turns old (default 14)',
      wholeNumber(0, 3650),
    )
    .option(
      '--fail-on <types>',
      `exit ${EXIT_FINDINGS} when a finding of these comma-separated types exists (${FINDING_TYPES.join(', ')})`,
      parseTypes,
    )
    .option(
      '--service-credentials',
      'also list service-specific credentials (Keyspaces, CodeCommit; the default, or REKEY_AUDIT_SERVICE_CREDENTIALS)',
    )
    .option(
      '--no-service-credentials',
      'access keys only: for an emulator without ListServiceSpecificCredentials',
    )
    .option(
      '--organization',
      'scan every account of the organization in scope (REKEY_ORGANIZATION_SCOPE, else all), each through --role-name; this account with your own credentials',
    )
    .option(
      '--accounts <ids>',
      'with --organization: only these comma-separated account ids (12 digits each)',
      parseAccountIds,
    )
    .option(
      '--role-name <name>',
      'with --organization: the role to assume in each other account (default OrganizationAccountAccessRole)',
      parseRoleName,
    )
    .option(
      '--concurrency <n>',
      'with --organization: accounts scanned at the same time (default 4)',
      wholeCount(1, 32),
    )
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .action(async (flags: AuditFlags & OrganizationFlags, command: Command) => {
      if (!flags.organization) {
        const stray = (['accounts', 'roleName', 'concurrency'] as const).filter(
          (k) => flags[k] !== undefined,
        );
        if (stray.length)
          command.error(
            `error: ${stray.map((k) => `--${k === 'roleName' ? 'role-name' : k}`).join(', ')} only with --organization`,
          );
        return audit(flags, deps);
      }
      // Loaded only for --organization: the Organizations and STS clients and the account listing.
      const { auditOrganization } = await import('./audit-organization.ts');
      return auditOrganization({ ...flags, organization: true }, deps);
    });
}
