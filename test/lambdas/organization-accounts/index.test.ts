/**
 * The organization-accounts handler (lambdas/organization-accounts/index.ts): environment checked
 * at import, payload by schema, ids only in the output, `accounts` that cannot be audited refused
 * by name (AccountsNotInScope) with every reason.
 */
import {
  DescribeOrganizationCommand,
  ListAccountsCommand,
  ListRootsCommand,
} from '@aws-sdk/client-organizations';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { fakeContext, silenceLogs } from '../../support/lambda-fixtures.ts';

const HUB = '222222222222';
const ORG = 'o-abcdef1234';
const SCOPE = {
  include: { accounts: [], organizationalUnits: [] },
  exclude: { accounts: ['444444444444'], organizationalUnits: [] },
};

beforeAll(silenceLogs);
beforeEach(() => {
  vi.resetModules();
  vi.stubEnv('REKEY_HUB_ACCOUNT_ID', HUB);
  vi.stubEnv('REKEY_ORGANIZATION_ID', ORG);
  vi.stubEnv('REKEY_ORGANIZATION_SCOPE', JSON.stringify(SCOPE));
});
afterEach(() => {
  vi.unstubAllEnvs();
});

async function loadHandler() {
  const { handler, organizations } = await import('../../../lambdas/organization-accounts/index.ts');
  const orgMock = mockClient(organizations);
  orgMock.on(DescribeOrganizationCommand).resolves({ Organization: { Id: ORG, MasterAccountId: HUB } });
  orgMock.on(ListAccountsCommand).resolves({
    Accounts: [
      { Id: '333333333333', Name: 'workload-a', Status: 'ACTIVE' },
      { Id: '444444444444', Name: 'excluded', Status: 'ACTIVE' },
      { Id: HUB, Name: 'hub', Status: 'ACTIVE' },
      { Id: '555555555555', Name: 'gone', Status: 'SUSPENDED' },
    ],
  });
  return { handler, orgMock };
}

describe('the organization-accounts handler', () => {
  it('refuses to load without its scope', async () => {
    vi.stubEnv('REKEY_ORGANIZATION_SCOPE', '');
    await expect(loadHandler()).rejects.toMatchObject({ name: 'ConfigurationError' });
  });

  it('refuses to load with a scope that is not one', async () => {
    vi.stubEnv('REKEY_ORGANIZATION_SCOPE', '{"include":{}}');
    await expect(loadHandler()).rejects.toThrow(/REKEY_ORGANIZATION_SCOPE is not an account scope/);
  });

  it.each([[{ accounts: [] }], [{ accounts: ['12345'] }], [{ dryRun: true }], [null]])(
    'refuses the payload %j before any call',
    async (payload) => {
      const { handler, orgMock } = await loadHandler();
      await expect(handler(payload, fakeContext('rekey-organization-accounts'))).rejects.toMatchObject({
        name: 'InvalidPayload',
      });
      expect(orgMock).not.toHaveReceivedAnyCommand();
    },
  );

  it('returns the ids in scope, hub first, and how many were left out', async () => {
    // Prepare
    const { handler, orgMock } = await loadHandler();

    // Act
    const output = await handler({}, fakeContext('rekey-organization-accounts'));

    // Assert
    expect(output).toEqual({ accounts: [{ accountId: HUB }, { accountId: '333333333333' }], skipped: 2 });
    expect(orgMock.commandCalls(ListRootsCommand)).toHaveLength(0);
  });

  it('narrows to the requested accounts', async () => {
    // Prepare
    const { handler } = await loadHandler();

    // Act
    const output = await handler({ accounts: ['333333333333'] }, fakeContext('rekey-organization-accounts'));

    // Assert
    expect(output).toEqual({ accounts: [{ accountId: '333333333333' }], skipped: 0 });
  });

  it('refuses requested accounts that are unknown, suspended or out of scope, naming each with its reason', async () => {
    // Prepare
    const { handler } = await loadHandler();

    // Act
    const error = await handler(
      { accounts: ['333333333333', '444444444444', '555555555555', '666666666666'] },
      fakeContext('rekey-organization-accounts'),
    ).catch((e: unknown) => e);

    // Assert
    expect(error).toMatchObject({
      name: 'AccountsNotInScope',
      message:
        'not audited, out of scope: 444444444444 (account 444444444444 is excluded); ' +
        '555555555555 (account 555555555555 is SUSPENDED, not ACTIVE); ' +
        '666666666666 (account 666666666666 is not in the organization)',
    });
  });
});
