/**
 * The accounts of the organization that rekey audits: every active account in the configured
 * scope (contract/organization.ts), the hub's own always, the management account only when it is
 * the hub (StackSets deploy no member roles there: docs/organizations.md). Shared by the
 * `organization-accounts` Lambda and the CLI.
 *
 * Without OU rules in the scope, one ListAccounts listing; with them, a walk from the root
 * (ListRoots, then ListOrganizationalUnitsForParent and ListAccountsForParent per unit) that
 * knows every OU above each account. All of it through the SDK's paginators.
 */
import {
  type Account,
  DescribeOrganizationCommand,
  type OrganizationsClient,
  paginateListAccounts,
  paginateListAccountsForParent,
  paginateListOrganizationalUnitsForParent,
  paginateListRoots,
} from '@aws-sdk/client-organizations';
import { ConfigurationError } from '../../contract/errors.ts';
import { type AccountScope, outOfScopeReason } from '../../contract/organization.ts';

export interface AccountsDeps {
  organizations: OrganizationsClient;
  log?: (message: string) => void;
}

export interface AccountsOptions {
  scope: AccountScope;
  hubAccountId: string;
  /** Only these accounts; each one that cannot be audited is in `skipped`, with its reason. */
  only?: readonly string[];
  /** The organization the hub is configured for: another one answering is a ConfigurationError. */
  organizationId?: string;
}

export interface AccountInScope {
  accountId: string;
  name: string;
}

export interface SkippedAccount {
  accountId: string;
  reason: string;
}

export interface AccountsInScope {
  /** The hub's account first, then by account id. */
  accounts: AccountInScope[];
  /** By account id. Without `only`: every account of the organization left out; with it, those of `only`. */
  skipped: SkippedAccount[];
}

/** One account of the organization and every OU above it, the root included (empty from ListAccounts). */
interface Listed {
  account: Account;
  ancestors: readonly string[];
}

export async function listAccountsInScope(
  deps: AccountsDeps,
  options: AccountsOptions,
): Promise<AccountsInScope> {
  const { organizations } = deps;
  const log = deps.log ?? (() => {});
  const { scope, hubAccountId } = options;

  const described = await organizations.send(new DescribeOrganizationCommand({}));
  const organization = described.Organization;
  if (options.organizationId && organization?.Id !== options.organizationId) {
    throw new ConfigurationError(
      `the hub reads organization ${organization?.Id ?? '(none)'}, not the configured ${options.organizationId}`,
    );
  }
  const managementAccountId = organization?.MasterAccountId;

  const byOu = scope.include.organizationalUnits.length > 0 || scope.exclude.organizationalUnits.length > 0;
  const listed = byOu ? await walkFromRoot(organizations) : await listAll(organizations);
  log(`${listed.length} accounts in the organization (${byOu ? 'walked from the root' : 'ListAccounts'})`);

  const accounts: AccountInScope[] = [];
  const skipped: SkippedAccount[] = [];
  const known = new Set<string>();
  for (const { account, ancestors } of listed) {
    const accountId = account.Id;
    if (!accountId) continue;
    known.add(accountId);
    const reason = whyNot(account, ancestors);
    if (reason) skipped.push({ accountId, reason });
    else accounts.push({ accountId, name: account.Name ?? '' });
  }

  function whyNot(account: Account, ancestors: readonly string[]): string | undefined {
    const accountId = account.Id as string;
    // State replaces the deprecated Status; an emulator may answer only the latter.
    const state = account.State ?? account.Status;
    if (state !== 'ACTIVE') return `account ${accountId} is ${state ?? 'of unknown state'}, not ACTIVE`;
    if (accountId === hubAccountId) return undefined;
    if (accountId === managementAccountId)
      return `account ${accountId} is the management account, where StackSets deploy no member roles`;
    return outOfScopeReason(scope, accountId, ancestors);
  }

  const result = { accounts: ordered(accounts, hubAccountId), skipped: byId(skipped) };
  if (!options.only) return result;

  const only = new Set(options.only);
  return {
    accounts: result.accounts.filter((a) => only.has(a.accountId)),
    skipped: byId([
      ...result.skipped.filter((s) => only.has(s.accountId)),
      ...[...only]
        .filter((id) => !known.has(id))
        .map((accountId) => ({ accountId, reason: `account ${accountId} is not in the organization` })),
    ]),
  };
}

async function listAll(organizations: OrganizationsClient): Promise<Listed[]> {
  const listed: Listed[] = [];
  for await (const page of paginateListAccounts({ client: organizations }, {})) {
    for (const account of page.Accounts ?? []) listed.push({ account, ancestors: [] });
  }
  return listed;
}

/** Breadth first from each root: every account with the root and the OUs above it. */
async function walkFromRoot(organizations: OrganizationsClient): Promise<Listed[]> {
  const listed: Listed[] = [];
  const queue: { parentId: string; ancestors: readonly string[] }[] = [];
  for await (const page of paginateListRoots({ client: organizations }, {})) {
    for (const root of page.Roots ?? []) if (root.Id) queue.push({ parentId: root.Id, ancestors: [root.Id] });
  }
  for (let next = queue.shift(); next; next = queue.shift()) {
    const { parentId, ancestors } = next;
    for await (const page of paginateListAccountsForParent(
      { client: organizations },
      { ParentId: parentId },
    )) {
      for (const account of page.Accounts ?? []) listed.push({ account, ancestors });
    }
    for await (const page of paginateListOrganizationalUnitsForParent(
      { client: organizations },
      { ParentId: parentId },
    )) {
      for (const unit of page.OrganizationalUnits ?? [])
        if (unit.Id) queue.push({ parentId: unit.Id, ancestors: [...ancestors, unit.Id] });
    }
  }
  return listed;
}

function byId<T extends { accountId: string }>(items: T[]): T[] {
  return items.sort((x, y) => (x.accountId < y.accountId ? -1 : x.accountId > y.accountId ? 1 : 0));
}

function ordered(accounts: AccountInScope[], hubAccountId: string): AccountInScope[] {
  const hub = accounts.filter((a) => a.accountId === hubAccountId);
  return [...hub, ...byId(accounts.filter((a) => a.accountId !== hubAccountId))];
}
