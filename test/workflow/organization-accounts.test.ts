/**
 * listAccountsInScope (lambdas/organization-accounts/accounts.ts) against moto's Organizations
 * (request signing on): moto's answers to DescribeOrganization, ListAccounts, ListRoots,
 * ListOrganizationalUnitsForParent and ListAccountsForParent parse, the walk finds the accounts
 * of a nested OU, a suspended account is left out, and the hub (moto's management account) is
 * first.
 */
import { OrganizationsClient } from '@aws-sdk/client-organizations';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccountScope } from '../../contract/organization.ts';
import { listAccountsInScope } from '../../lambdas/organization-accounts/accounts.ts';
import { startWorld, type World } from './harness.ts';

let world: World;
let organizations: OrganizationsClient;
let hub: string;
/** a: workloads; b: workloads/eu; c: the root; d: the root, suspended. */
let a: string;
let b: string;
let c: string;
let d: string;

beforeAll(async () => {
  world = await startWorld({
    organization: {
      organizationalUnits: ['workloads', 'workloads/eu'],
      members: [
        { name: 'workload-a', organizationalUnit: 'workloads' },
        { name: 'workload-b', organizationalUnit: 'workloads/eu' },
        { name: 'workload-c' },
        { name: 'workload-d' },
      ],
    },
    quiet: true,
  });
  const seeded = world.organization;
  if (!seeded) throw new Error('the world has no organization');
  hub = seeded.hub.accountId;
  [a, b, c, d] = seeded.members.map((m) => m.accountId) as [string, string, string, string];
  await seeded.suspend(d);
  organizations = new OrganizationsClient({
    endpoint: world.moto.endpoint,
    region: 'us-east-1',
    credentials: world.admin,
  });
}, 120_000);

afterAll(async () => {
  organizations?.destroy();
  await world?.stop();
});

const scope = (include: string[], exclude: string[] = []): AccountScope => ({
  include: { accounts: [], organizationalUnits: include },
  exclude: { accounts: [], organizationalUnits: exclude },
});

describe('listAccountsInScope on moto', () => {
  it('lists the whole organization with ListAccounts: the hub first, the suspended account skipped', async () => {
    // Act
    const result = await listAccountsInScope(
      { organizations },
      { scope: scope([]), hubAccountId: hub, organizationId: world.organization?.organizationId as string },
    );

    // Assert
    expect(result.accounts.map((x) => x.accountId)).toEqual([hub, ...[a, b, c].sort()]);
    expect(result.accounts.find((x) => x.accountId === a)?.name).toBe('workload-a');
    expect(result.skipped).toEqual([{ accountId: d, reason: `account ${d} is SUSPENDED, not ACTIVE` }]);
  });

  it('walks from the root: an included OU takes its nested OU, an excluded nested OU wins', async () => {
    // Prepare
    const units = world.organization?.organizationalUnits as Record<string, string>;

    // Act
    const included = await listAccountsInScope(
      { organizations },
      { scope: scope([units.workloads as string]), hubAccountId: hub },
    );
    const excluded = await listAccountsInScope(
      { organizations },
      { scope: scope([units.workloads as string], [units['workloads/eu'] as string]), hubAccountId: hub },
    );

    // Assert
    expect(included.accounts.map((x) => x.accountId)).toEqual([hub, ...[a, b].sort()]);
    expect(excluded.accounts.map((x) => x.accountId)).toEqual([hub, a]);
    expect(excluded.skipped).toContainEqual({
      accountId: b,
      reason: `account ${b} is in the excluded organizational unit ${units['workloads/eu']}`,
    });
  });

  it('only: an id moto does not know is skipped as not in the organization', async () => {
    // Act
    const result = await listAccountsInScope(
      { organizations },
      { scope: scope([]), hubAccountId: hub, only: [c, '999988887777'] },
    );

    // Assert
    expect(result.accounts.map((x) => x.accountId)).toEqual([c]);
    expect(result.skipped).toEqual([
      { accountId: '999988887777', reason: 'account 999988887777 is not in the organization' },
    ]);
  });
});
