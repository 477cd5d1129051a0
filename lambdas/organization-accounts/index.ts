/**
 * The organization audit's first state: the accounts in scope (accounts.ts), ids only, so that a
 * thousand accounts fit the state (about 30 KB). Payload `{}` or `{"accounts": [...]}` to audit
 * only those; one of them that cannot be audited refuses the run (AccountsNotInScope) before
 * any audit. Acts on Organizations in the hub only: not a member Lambda.
 */
import { OrganizationsClient } from '@aws-sdk/client-organizations';
import * as z from 'zod/mini';
import { loadEnv } from '../../contract/env.ts';
import { AccountsNotInScope, ConfigurationError } from '../../contract/errors.ts';
import { FUNCTIONS } from '../../contract/functions.ts';
import { AccountId, accountScopeFrom } from '../../contract/organization.ts';
import { clientConfig } from '../shared/clients/config.ts';
import { bindToInvocations } from '../shared/clients/invocation.ts';
import { makeHandler } from '../shared/handler.ts';
import { logger } from '../shared/logger.ts';
import { listAccountsInScope } from './accounts.ts';

export const OrganizationAccountsRequest = z.strictObject({
  accounts: z.optional(z.array(AccountId).check(z.minLength(1, 'accounts must name at least one account'))),
});

/** Module scope: one client per container, exported so unit tests can `mockClient()` it. */
export const organizations = new OrganizationsClient(clientConfig('organizations'));
bindToInvocations(organizations, 'organizations');

const env = loadEnv(FUNCTIONS['organization-accounts'].env);
const hubAccountId = env.REKEY_HUB_ACCOUNT_ID;
const scopeJson = env.REKEY_ORGANIZATION_SCOPE;
if (!hubAccountId || !scopeJson || !env.REKEY_ORGANIZATION_ID)
  throw new ConfigurationError(
    'the organization accounts need REKEY_HUB_ACCOUNT_ID, REKEY_ORGANIZATION_ID and REKEY_ORGANIZATION_SCOPE',
  );
const scope = accountScopeFrom(scopeJson);
const organizationId = env.REKEY_ORGANIZATION_ID;

export interface OrganizationAccounts {
  accounts: { accountId: string }[];
  /** How many accounts were left out (their ids and reasons are in the log). */
  skipped: number;
}

export const handler = makeHandler(
  OrganizationAccountsRequest,
  async (input): Promise<OrganizationAccounts> => {
    const listing = await listAccountsInScope(
      { organizations, log: (message) => logger.info(message) },
      { scope, hubAccountId, organizationId, ...(input.accounts ? { only: input.accounts } : {}) },
    );
    if (input.accounts && listing.skipped.length > 0) throw new AccountsNotInScope(listing.skipped);
    if (listing.skipped.length > 0) logger.info('accounts left out', { skipped: listing.skipped });
    logger.info('accounts in scope', { accounts: listing.accounts.length, skipped: listing.skipped.length });
    return {
      accounts: listing.accounts.map(({ accountId }) => ({ accountId })),
      skipped: listing.skipped.length,
    };
  },
);
