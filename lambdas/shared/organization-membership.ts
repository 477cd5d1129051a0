/**
 * Whether rekey may act in a member account a rotation request names (docs/organizations.md):
 * the account is in this deployment's organization and active, and inside the configured scope
 * (contract/organization.ts inScope), judged by every OU above it up to the root. Asked of
 * Organizations with the plan's own role, before any call into the account. It lives in the
 * plan's opt-in 'organizations' bundle with its client (lambdas/shared/clients/organizations.ts).
 */
import {
  DescribeAccountCommand,
  type OrganizationsClient,
  paginateListParents,
} from '@aws-sdk/client-organizations';
import { isAwsError } from '../../contract/errors.ts';
import { accountScopeFrom, outOfScopeReason } from '../../contract/organization.ts';

export interface MembershipEnv {
  /** The organization (`o-...`) whose member accounts may be named. */
  readonly REKEY_ORGANIZATION_ID?: string | undefined;
  /** contract/organization.ts AccountScope as JSON; unset, the whole organization. */
  readonly REKEY_ORGANIZATION_SCOPE?: string | undefined;
}

/** The organization id in an Organizations account ARN (`arn:aws:organizations::<mgmt>:account/o-.../<id>`). */
export function organizationOfArn(arn: string | undefined): string | undefined {
  return arn?.match(/:account\/(o-[a-z0-9]+)\/\d{12}$/)?.[1];
}

/**
 * Why rekey must not act in `accountId`, in the words of the AccountRefused error; undefined when
 * it may. Throttling and other failures of Organizations are thrown as they are (the state
 * machine retries the transient ones).
 */
export async function memberAccountRefusal(
  client: OrganizationsClient,
  accountId: string,
  env: MembershipEnv,
): Promise<string | undefined> {
  const organizationId = env.REKEY_ORGANIZATION_ID;
  if (!organizationId) return 'the organization option is not set, so only the hub account may be named';
  let account: { Status?: string; State?: string; Arn?: string } | undefined;
  try {
    account = (await client.send(new DescribeAccountCommand({ AccountId: accountId }))).Account;
  } catch (error) {
    if (isAwsError(error, 'AccountNotFoundException')) {
      return `account ${accountId} is not in the organization ${organizationId}`;
    }
    throw error;
  }
  if (!account) return `account ${accountId} is not in the organization ${organizationId}`;
  const inOrganization = organizationOfArn(account.Arn);
  if (inOrganization !== undefined && inOrganization !== organizationId) {
    return `account ${accountId} is in the organization ${inOrganization}, not ${organizationId}`;
  }
  // Status is ACTIVE, SUSPENDED or PENDING_CLOSURE; the newer State adds CLOSED and others.
  const status = account.State ?? account.Status;
  if (status !== undefined && status !== 'ACTIVE') {
    return `account ${accountId} is ${status.toLowerCase().replaceAll('_', ' ')}, not active`;
  }
  if (!env.REKEY_ORGANIZATION_SCOPE) return undefined;
  const scope = accountScopeFrom(env.REKEY_ORGANIZATION_SCOPE);
  return outOfScopeReason(scope, accountId, await ancestorsOf(client, accountId));
}

/** Every OU above `accountId`, and the root: ListParents from the account up (5 OU levels at most). */
async function ancestorsOf(client: OrganizationsClient, accountId: string): Promise<string[]> {
  const ancestors: string[] = [];
  let child = accountId;
  // An account sits at most five OUs below the root: six steps reach the root.
  for (let level = 0; level < 6; level++) {
    let parent: { Id?: string; Type?: string } | undefined;
    for await (const page of paginateListParents({ client }, { ChildId: child })) {
      parent ??= page.Parents?.[0];
    }
    if (!parent?.Id) break;
    ancestors.push(parent.Id);
    if (parent.Type === 'ROOT') break;
    child = parent.Id;
  }
  return ancestors;
}
