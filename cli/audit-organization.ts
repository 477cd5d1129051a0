/**
 * `rekey audit --organization`: the audit's read-only scan (lambdas/audit/audit.ts scanAccount) of
 * every account of the organization in scope, run on this machine with the caller's credentials
 * (the SDK's default chain; AWS_ENDPOINT_URL for an emulator). The accounts come from
 * lambdas/organization-accounts/accounts.ts listAccountsInScope, the listing the organization
 * audit's state machine uses: the scope is REKEY_ORGANIZATION_SCOPE when set (as the deployed
 * Lambdas read it), else the whole organization, narrowed by --accounts. The caller's own account
 * is scanned with the caller's credentials; every other account through the role --role-name
 * there (default OrganizationAccountAccessRole), assumed with STS. It needs only the IAM reads of
 * SCAN_ROLE_ACTIONS (docs/cli.md).
 *
 * Up to --concurrency accounts are scanned at once; a line per account on stderr as each ends. An
 * account that fails (its role missing or refused, an IAM error) is reported there and in --json,
 * the other accounts' findings are still printed, and the command exits 1 at the end.
 */
import { IAMClient } from '@aws-sdk/client-iam';
import { OrganizationsClient } from '@aws-sdk/client-organizations';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentity } from '@smithy/types';
import { CommanderError } from 'commander';
import { AccountsNotInScope, errorName, isAwsError, RekeyError, safeCause } from '../contract/errors.ts';
import { type AccountScope, accountScopeFrom } from '../contract/organization.ts';
import { scanAccount } from '../lambdas/audit/audit.ts';
import { CallCounter } from '../lambdas/audit/calls.ts';
import type { Finding } from '../lambdas/audit/findings.ts';
import { listAccountsInScope } from '../lambdas/organization-accounts/accounts.ts';
import { isMissingRoleAnswer } from '../lambdas/shared/clients/account-context.ts';
import { systemClock } from '../lambdas/shared/clock.ts';
import {
  type AuditCommandDeps,
  type AuditFlags,
  EXIT_FINDINGS,
  failOnMessage,
  jsonDocument,
  reportFilesFrom,
  scanPolicyFrom,
  tableLines,
} from './audit.ts';
import { writeReportFile } from './report-files.ts';

/** The role Organizations creates in each account it creates, trusting the management account. */
export const DEFAULT_SCAN_ROLE = 'OrganizationAccountAccessRole';
export const DEFAULT_CONCURRENCY = 4;
/** Exit code when an account could not be scanned (the others' findings are still printed). */
export const EXIT_ACCOUNT_FAILED = 1;

/**
 * Every IAM action scanAccount calls: all the role --role-name needs in each account (and the
 * caller in its own). ListServiceSpecificCredentials only without --no-service-credentials.
 */
export const SCAN_ROLE_ACTIONS = [
  'iam:GenerateCredentialReport',
  'iam:GetCredentialReport',
  'iam:GetAccountAuthorizationDetails',
  'iam:ListAccessKeys',
  'iam:ListServiceSpecificCredentials',
] as const;

export interface OrganizationAuditFlags extends AuditFlags {
  organization: true;
  /** Only these accounts (validated: 12 digits each). */
  accounts?: string[];
  roleName?: string;
  concurrency?: number;
}

/** The clients `rekey audit --organization` uses; each defaults to one from the SDK's default chain. */
export interface OrganizationAuditClients {
  organizations?: OrganizationsClient;
  sts?: STSClient;
  /** An IAM client signing with these credentials (undefined: the caller's own). */
  iamClient?: (credentials: AwsCredentialIdentity | undefined) => IAMClient;
}

/** One account's outcome, as --json lists it. */
export interface AccountOutcome {
  accountId: string;
  usersScanned: number;
  findings: number;
  error?: { name: string; message: string };
}

/** The account's role could not be assumed, or the emulator answered as it does for a missing role. */
export class ScanRoleUnavailable extends RekeyError {
  constructor(accountId: string, roleArn: string, cause: string) {
    super(
      'ScanRoleUnavailable',
      `cannot scan account ${accountId}: the role ${roleArn} is missing or cannot be assumed (${cause}); ` +
        'name a role that trusts you with --role-name (docs/cli.md)',
    );
  }
}

/** The errors with which STS refuses a role: missing, or not trusting the caller. */
const REFUSALS = ['AccessDenied', 'AccessDeniedException', 'NoSuchEntity', 'NoSuchEntityException'];

/** An account's failure in words that carry no request data (contract/errors.ts safeCause). */
function failureOf(error: unknown): { name: string; message: string } {
  if (error instanceof RekeyError) return { name: error.name, message: error.message };
  return { name: errorName(error), message: safeCause(error) };
}

/** The finding with its account first, then the fields of the single-account --json. */
function withAccount(accountId: string, finding: Finding): Record<string, unknown> {
  return { accountId, ...jsonDocument([finding]).findings[0] };
}

/** The --json document of an organization audit. */
export function organizationJsonDocument(
  results: ReadonlyArray<{ outcome: AccountOutcome; findings: readonly Finding[] }>,
): { findings: Record<string, unknown>[]; accounts: AccountOutcome[] } {
  return {
    findings: results.flatMap((r) => r.findings.map((f) => withAccount(r.outcome.accountId, f))),
    accounts: results.map((r) => r.outcome),
  };
}

/** Runs `work` over `items`, at most `limit` at a time; results in the order of `items`. */
async function pooled<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export async function auditOrganization(
  flags: OrganizationAuditFlags,
  deps: AuditCommandDeps & OrganizationAuditClients,
): Promise<void> {
  const out = deps.stdout ?? ((text: string) => process.stdout.write(text));
  const err = deps.stderr ?? ((text: string) => process.stderr.write(text));
  const say = (line: string) => err(`${line}\n`);
  const source = deps.env ?? process.env;
  const policy = scanPolicyFrom(flags, source);
  const scopeJson = source.REKEY_ORGANIZATION_SCOPE;
  const scope: AccountScope = scopeJson
    ? accountScopeFrom(scopeJson)
    : {
        include: { accounts: [], organizationalUnits: [] },
        exclude: { accounts: [], organizationalUnits: [] },
      };
  const files = reportFilesFrom(flags);
  const roleName = flags.roleName ?? DEFAULT_SCAN_ROLE;
  const concurrency = flags.concurrency ?? DEFAULT_CONCURRENCY;

  const owned: Array<{ destroy(): void }> = [];
  const organizations = deps.organizations ?? new OrganizationsClient({ maxAttempts: 5 });
  const sts = deps.sts ?? new STSClient({ maxAttempts: 5 });
  if (!deps.organizations) owned.push(organizations);
  if (!deps.sts) owned.push(sts);
  const iamClient =
    deps.iamClient ??
    ((credentials: AwsCredentialIdentity | undefined) =>
      new IAMClient({ maxAttempts: 5, ...(credentials ? { credentials } : {}) }));
  const started = Date.now();
  try {
    const caller = await sts.send(new GetCallerIdentityCommand({}));
    const hubAccountId = caller.Account ?? '';
    const partition = caller.Arn?.split(':')[1] ?? 'aws';
    say(
      `Listing the organization's accounts in scope${scopeJson ? ' (REKEY_ORGANIZATION_SCOPE)' : ''} as ${caller.Arn}`,
    );
    const listing = await listAccountsInScope(
      { organizations, log: (m) => say(m) },
      { scope, hubAccountId, ...(flags.accounts ? { only: flags.accounts } : {}) },
    );
    const asked = new Set(flags.accounts ?? []);
    const refused = listing.skipped.filter((s) => asked.has(s.accountId));
    if (refused.length) throw new AccountsNotInScope(refused);
    for (const s of listing.skipped) say(`Not scanned: ${s.accountId} (${s.reason})`);
    const total = listing.accounts.length;
    say(
      `${total} account(s) to scan, ${Math.min(concurrency, total)} at a time; other accounts as ${roleName}`,
    );

    const scanOne = async (accountId: string) => {
      const roleArn = `arn:${partition}:iam::${accountId}:role/${roleName}`;
      let iam: IAMClient | undefined;
      try {
        let credentials: AwsCredentialIdentity | undefined;
        if (accountId !== hubAccountId) {
          try {
            const assumed = await sts.send(
              new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: 'rekey-audit-cli' }),
            );
            const c = assumed.Credentials;
            if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error('AssumeRole returned no credentials');
            credentials = {
              accessKeyId: c.AccessKeyId,
              secretAccessKey: c.SecretAccessKey,
              ...(c.SessionToken ? { sessionToken: c.SessionToken } : {}),
            };
          } catch (error) {
            if (isAwsError(error, ...REFUSALS))
              throw new ScanRoleUnavailable(accountId, roleArn, safeCause(error));
            throw error;
          }
        }
        iam = iamClient(credentials);
        try {
          return {
            scan: await scanAccount(
              { iam, clock: deps.clock ?? systemClock, calls: new CallCounter() },
              policy,
            ),
          };
        } catch (error) {
          // The emulator hands out credentials for a missing role, then answers with an HTML page.
          if (credentials && isMissingRoleAnswer(error))
            throw new ScanRoleUnavailable(accountId, roleArn, 'the emulator answered as for a missing role');
          throw error;
        }
      } catch (error) {
        return { error: failureOf(error) };
      } finally {
        if (!deps.iamClient) iam?.destroy();
      }
    };

    let done = 0;
    const results = await pooled(listing.accounts, concurrency, async ({ accountId }) => {
      const result = await scanOne(accountId);
      done += 1;
      const outcome: AccountOutcome = result.scan
        ? { accountId, usersScanned: result.scan.usersScanned, findings: result.scan.findings.length }
        : { accountId, usersScanned: 0, findings: 0, error: result.error };
      say(
        `[${done}/${total}] ${accountId}: ${
          outcome.error
            ? `failed: ${outcome.error.message}`
            : `${outcome.usersScanned} users, ${outcome.findings} findings`
        }`,
      );
      return { outcome, findings: result.scan?.findings ?? [], auditedAt: result.scan?.auditedAt };
    });

    if (flags.json) out(`${JSON.stringify(organizationJsonDocument(results))}\n`);
    else {
      const lines = results.flatMap((r, i) => {
        const name = listing.accounts[i]?.name;
        const head = `Account ${r.outcome.accountId}${name ? ` (${name})` : ''}`;
        const body = r.outcome.error ? [`Not scanned: ${r.outcome.error.message}`] : tableLines(r.findings);
        return [...(i > 0 ? [''] : []), head, ...body];
      });
      out(`${(lines.length ? lines : ['No accounts in scope.']).join('\n')}\n`);
    }
    const allFindings = results.flatMap((r) =>
      r.findings.map((f) => ({ ...f, accountId: r.outcome.accountId }) as Finding),
    );
    const audited = results.filter((r) => !r.outcome.error);
    for (const file of files) {
      const written = writeReportFile(
        file.path,
        file.render({
          findings: allFindings,
          thresholds: policy.thresholds,
          auditedAt: audited[0]?.auditedAt ?? (deps.clock ?? systemClock).now(),
          accountIds: audited.map((r) => r.outcome.accountId),
        }),
        file.what,
      );
      say(`Wrote the ${file.what}: ${written}`);
    }
    const failed = results.filter((r) => r.outcome.error).map((r) => r.outcome.accountId);
    say(
      `${audited.length} of ${total} account(s) scanned, ${allFindings.length} findings, ` +
        `${failed.length} failed, in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    if (failed.length) {
      const message = `${failed.length} account(s) not scanned: ${failed.join(', ')}`;
      say(`rekey: ${message}`);
      if (!deps.setExitCode) throw new CommanderError(EXIT_ACCOUNT_FAILED, 'rekey.audit.accounts', message);
      deps.setExitCode(EXIT_ACCOUNT_FAILED);
      return;
    }
    const failOn = failOnMessage(flags, allFindings);
    if (failOn) {
      say(`rekey: ${failOn}`);
      if (!deps.setExitCode) throw new CommanderError(EXIT_FINDINGS, 'rekey.audit.findings', failOn);
      deps.setExitCode(EXIT_FINDINGS);
    }
  } finally {
    for (const client of owned) client.destroy();
  }
}
