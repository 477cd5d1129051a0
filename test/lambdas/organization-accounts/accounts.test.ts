/**
 * listAccountsInScope (lambdas/organization-accounts/accounts.ts) against a mocked Organizations
 * client: the paginated ListAccounts without OU rules, the walk from the root with them, the
 * suspended and the management account left out, `only`, and the order (hub first, then by id).
 */
import {
  type Account,
  DescribeOrganizationCommand,
  ListAccountsCommand,
  ListAccountsForParentCommand,
  ListOrganizationalUnitsForParentCommand,
  ListRootsCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { ConfigurationError } from '../../../contract/errors.ts';
import type { AccountScope } from '../../../contract/organization.ts';
import { listAccountsInScope } from '../../../lambdas/organization-accounts/accounts.ts';

const organizations = new OrganizationsClient({ region: 'us-east-1' });
const orgMock = mockClient(organizations);

const HUB = '222222222222';
const MANAGEMENT = '999999999999';
const ORG = 'o-abcdef1234';
const ROOT = 'r-ab12';
const OU_PROD = 'ou-ab12-prod0001';
const OU_SANDBOX = 'ou-ab12-sand0001';
/** Under OU_PROD. */
const OU_PROD_EU = 'ou-ab12-produ001';

const WHOLE: AccountScope = {
  include: { accounts: [], organizationalUnits: [] },
  exclude: { accounts: [], organizationalUnits: [] },
};

function account(id: string, status: Account['Status'] = 'ACTIVE'): Account {
  return { Id: id, Name: `name-${id}`, Status: status };
}

/**
 * The tree: root holds the management account and the hub; OU_PROD holds 333… and OU_PROD_EU
 * (444…, 555… suspended); OU_SANDBOX holds 666…. Each listing answers in pages of one.
 */
const TREE: Record<string, { accounts: Account[]; units: string[] }> = {
  [ROOT]: { accounts: [account(MANAGEMENT), account(HUB)], units: [OU_PROD, OU_SANDBOX] },
  [OU_PROD]: { accounts: [account('333333333333')], units: [OU_PROD_EU] },
  [OU_PROD_EU]: { accounts: [account('444444444444'), account('555555555555', 'SUSPENDED')], units: [] },
  [OU_SANDBOX]: { accounts: [account('666666666666')], units: [] },
};

/** One item per page, NextToken the next index. */
function paged<T>(items: T[], token: string | undefined): { items: T[]; NextToken?: string } {
  const index = token ? Number(token) : 0;
  return {
    items: items.slice(index, index + 1),
    ...(index + 1 < items.length ? { NextToken: String(index + 1) } : {}),
  };
}

beforeEach(() => {
  orgMock.reset();
  orgMock
    .on(DescribeOrganizationCommand)
    .resolves({ Organization: { Id: ORG, MasterAccountId: MANAGEMENT } });
  orgMock.on(ListRootsCommand).resolves({ Roots: [{ Id: ROOT, Name: 'Root' }] });
  orgMock.on(ListAccountsForParentCommand).callsFake((input) => {
    const { items, NextToken } = paged(TREE[input.ParentId]?.accounts ?? [], input.NextToken);
    return { Accounts: items, NextToken };
  });
  orgMock.on(ListOrganizationalUnitsForParentCommand).callsFake((input) => {
    const { items, NextToken } = paged(TREE[input.ParentId]?.units ?? [], input.NextToken);
    return { OrganizationalUnits: items.map((Id) => ({ Id })), NextToken };
  });
  const all = Object.values(TREE).flatMap((n) => n.accounts);
  // ListAccounts answers in an order that is not the result's.
  const shuffled = [...all].reverse();
  orgMock.on(ListAccountsCommand).callsFake((input) => {
    const { items, NextToken } = paged(shuffled, input.NextToken);
    return { Accounts: items, NextToken };
  });
});

function ids(list: { accountId: string }[]): string[] {
  return list.map((a) => a.accountId);
}

describe('listAccountsInScope', () => {
  it('without OU rules, reads every page of ListAccounts and walks nothing', async () => {
    // Act
    const result = await listAccountsInScope({ organizations }, { scope: WHOLE, hubAccountId: HUB });

    // Assert
    expect(orgMock.commandCalls(ListAccountsCommand)).toHaveLength(6);
    expect(orgMock.commandCalls(ListRootsCommand)).toHaveLength(0);
    expect(orgMock.commandCalls(ListAccountsForParentCommand)).toHaveLength(0);
    expect(result.accounts).toEqual([
      { accountId: HUB, name: `name-${HUB}` },
      { accountId: '333333333333', name: 'name-333333333333' },
      { accountId: '444444444444', name: 'name-444444444444' },
      { accountId: '666666666666', name: 'name-666666666666' },
    ]);
    expect(result.skipped).toEqual([
      { accountId: '555555555555', reason: 'account 555555555555 is SUSPENDED, not ACTIVE' },
      {
        accountId: MANAGEMENT,
        reason: `account ${MANAGEMENT} is the management account, where StackSets deploy no member roles`,
      },
    ]);
  });

  it('puts the hub first even when its id sorts last, and keeps the management account when it is the hub', async () => {
    // Act
    const result = await listAccountsInScope({ organizations }, { scope: WHOLE, hubAccountId: MANAGEMENT });

    // Assert
    expect(ids(result.accounts)).toEqual([MANAGEMENT, HUB, '333333333333', '444444444444', '666666666666']);
    expect(ids(result.skipped)).toEqual(['555555555555']);
  });

  it('walks from the root with OU rules: an included OU takes its sub-units, the hub stays in scope', async () => {
    // Act
    const result = await listAccountsInScope(
      { organizations },
      {
        scope: {
          include: { accounts: [], organizationalUnits: [OU_PROD] },
          exclude: { accounts: [], organizationalUnits: [] },
        },
        hubAccountId: HUB,
      },
    );

    // Assert
    expect(orgMock.commandCalls(ListAccountsCommand)).toHaveLength(0);
    expect(orgMock.commandCalls(ListRootsCommand)).toHaveLength(1);
    // Every unit's listings, page by page: 2 + 1 + 2 + 1 account pages.
    expect(orgMock.commandCalls(ListAccountsForParentCommand)).toHaveLength(6);
    expect(ids(result.accounts)).toEqual([HUB, '333333333333', '444444444444']);
    expect(result.skipped).toEqual([
      { accountId: '555555555555', reason: 'account 555555555555 is SUSPENDED, not ACTIVE' },
      {
        accountId: '666666666666',
        reason: 'account 666666666666 is in none of the included accounts and organizational units',
      },
      {
        accountId: MANAGEMENT,
        reason: `account ${MANAGEMENT} is the management account, where StackSets deploy no member roles`,
      },
    ]);
  });

  it('an excluded OU or account wins over the inclusion, a sub-unit of the excluded one too', async () => {
    // Act
    const result = await listAccountsInScope(
      { organizations },
      {
        scope: {
          include: { accounts: ['666666666666'], organizationalUnits: [ROOT] },
          exclude: { accounts: ['666666666666'], organizationalUnits: [OU_PROD_EU] },
        },
        hubAccountId: HUB,
      },
    );

    // Assert
    expect(ids(result.accounts)).toEqual([HUB, '333333333333']);
    expect(result.skipped).toContainEqual({
      accountId: '444444444444',
      reason: `account 444444444444 is in the excluded organizational unit ${OU_PROD_EU}`,
    });
    expect(result.skipped).toContainEqual({
      accountId: '666666666666',
      reason: 'account 666666666666 is excluded',
    });
  });

  it('the hub is in scope even when the scope excludes it', async () => {
    // Act
    const result = await listAccountsInScope(
      { organizations },
      {
        scope: {
          include: { accounts: ['333333333333'], organizationalUnits: [] },
          exclude: { accounts: [HUB], organizationalUnits: [] },
        },
        hubAccountId: HUB,
      },
    );

    // Assert
    expect(ids(result.accounts)).toEqual([HUB, '333333333333']);
  });

  it('only: narrows to those ids; an unknown, a suspended and an out-of-scope one are skipped with reasons', async () => {
    // Act
    const result = await listAccountsInScope(
      { organizations },
      {
        scope: {
          include: { accounts: [], organizationalUnits: [OU_PROD] },
          exclude: { accounts: [], organizationalUnits: [] },
        },
        hubAccountId: HUB,
        only: ['444444444444', '123412341234', '555555555555', '666666666666', '444444444444'],
      },
    );

    // Assert
    expect(result.accounts).toEqual([{ accountId: '444444444444', name: 'name-444444444444' }]);
    expect(result.skipped).toEqual([
      { accountId: '123412341234', reason: 'account 123412341234 is not in the organization' },
      { accountId: '555555555555', reason: 'account 555555555555 is SUSPENDED, not ACTIVE' },
      {
        accountId: '666666666666',
        reason: 'account 666666666666 is in none of the included accounts and organizational units',
      },
    ]);
  });

  it('reads State before the deprecated Status', async () => {
    // Prepare
    orgMock.on(ListAccountsCommand).resolves({
      Accounts: [
        { Id: HUB, Name: 'hub', Status: 'ACTIVE', State: 'ACTIVE' },
        { Id: '333333333333', Name: 'closing', Status: 'ACTIVE', State: 'PENDING_CLOSURE' },
      ],
    });

    // Act
    const result = await listAccountsInScope({ organizations }, { scope: WHOLE, hubAccountId: HUB });

    // Assert
    expect(ids(result.accounts)).toEqual([HUB]);
    expect(result.skipped).toEqual([
      { accountId: '333333333333', reason: 'account 333333333333 is PENDING_CLOSURE, not ACTIVE' },
    ]);
  });

  it('refuses another organization than the configured one, before listing', async () => {
    // Act
    const error = await listAccountsInScope(
      { organizations },
      { scope: WHOLE, hubAccountId: HUB, organizationId: 'o-other00000' },
    ).catch((e: unknown) => e);

    // Assert
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toBe(
      `the hub reads organization ${ORG}, not the configured o-other00000`,
    );
    expect(orgMock.commandCalls(ListAccountsCommand)).toHaveLength(0);
  });
});
