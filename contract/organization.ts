/**
 * AWS Organizations: the names and rules the hub stack, the member stack (deployed by a StackSet
 * into each member account), the Lambdas and the CLI share (docs/organizations.md).
 *
 * A hub account runs the state machine and the audit. Each member account holds one role per hub
 * Lambda that acts in it, named `<memberRolePrefix><lambda>` so that the hub can assume it by ARN,
 * each holding that Lambda's member-side actions only. A Lambda acts in a member account only
 * through its own member role, and only when the account is not the hub's own: there it uses its
 * own role, as in a single-account deployment.
 */
import * as z from 'zod/mini';
import { ConfigurationError } from './errors.ts';
import type { FunctionName } from './functions.ts';
import './zod-messages.ts';

/** An AWS account id: 12 digits. */
export const AccountId = z
  .string({ error: 'accountId must be a string of 12 digits' })
  .check(z.regex(/^\d{12}$/, 'accountId must be 12 digits'));
export type AccountId = z.infer<typeof AccountId>;

/** An organization id (`o-` and 10 to 32 lower-case letters or digits). */
export const ORGANIZATION_ID_PATTERN = /^o-[a-z0-9]{10,32}$/;
/** An organizational unit (`ou-...`) or the organization's root (`r-...`). */
export const ORGANIZATIONAL_UNIT_PATTERN = /^(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32})$/;

/** Where a member account's secrets live (the `organization.secrets` setting). */
export const SECRETS_LOCATIONS = ['member', 'hub'] as const;
export type SecretsLocation = (typeof SECRETS_LOCATIONS)[number];

export const DEFAULT_MEMBER_ROLE_PREFIX = 'rekey-member-';

/**
 * The Lambdas with a role in every member account: each step that acts on the account's IAM users
 * or secrets, and the audit. `notify` acts only on the hub's topic, bus and lock table.
 */
export const MEMBER_LAMBDAS = [
  'plan',
  'create-second-key',
  'verify-new-key',
  'check-last-used',
  'deactivate-old-key',
  'verify-rotation',
  'reactivate-old-key',
  'delete-key',
  'cleanup',
  'audit',
] as const satisfies readonly FunctionName[];
export type MemberLambda = (typeof MEMBER_LAMBDAS)[number];

export function isMemberLambda(name: string): name is MemberLambda {
  return (MEMBER_LAMBDAS as readonly string[]).includes(name);
}

/** The member role of `lambda`: a fixed name, so the hub can assume it by ARN. */
export function memberRoleName(prefix: string, lambda: MemberLambda): string {
  return `${prefix}${lambda}`;
}

export function memberRoleArn(
  partition: string,
  accountId: string,
  prefix: string,
  lambda: MemberLambda,
): string {
  return `arn:${partition}:iam::${accountId}:role/${memberRoleName(prefix, lambda)}`;
}

/**
 * Where a rotation acts: the account its request names, and the hub's own. The hub's own account
 * (or none named) is not a member account: its locks and secrets keep a single-account
 * deployment's names (lambdas/shared/lock.ts lockSubject, lambdas/shared/secret.ts secretNameFor).
 */
export interface AccountPlace {
  readonly accountId?: string | undefined;
  readonly hubAccountId?: string | undefined;
}

/** The member account `place` names; undefined for the hub's own account, or when none is named. */
export function memberAccountOf(place: AccountPlace | undefined): string | undefined {
  const accountId = place?.accountId;
  return accountId === undefined || accountId === place?.hubAccountId ? undefined : accountId;
}

/** Metadata key on each member role (AWS::IAM::Role) of the member template: its Lambda's name. */
export const MEMBER_ROLE_METADATA_KEY = 'rekey:member-role';

/**
 * The alias of the member stack's KMS key that encrypts the secrets kept in a member account
 * (`secrets: member`); a Lambda acting in that account names its key by this alias.
 */
export const MEMBER_SECRETS_KEY_ALIAS = 'alias/rekey-member-secrets';

/**
 * The services (IAM signing prefixes) whose calls act in the member account the request names:
 * the users, their keys and their last use, CloudTrail and Security Hub of that account, and its
 * secrets when they live there. Everything else (the lock table, topic, bus, state machine, report
 * bucket, key-id cache) is the hub's.
 */
export function memberServices(secrets: SecretsLocation): readonly string[] {
  const always = ['iam', 'cloudtrail', 'securityhub'];
  return secrets === 'member' ? [...always, 'secretsmanager', 'kms'] : always;
}

const AccountsAndUnitsSchema = z.object({
  accounts: z.array(AccountId),
  organizationalUnits: z.array(z.string().check(z.regex(ORGANIZATIONAL_UNIT_PATTERN))),
});
/** AccountScope, as the stack writes it into REKEY_ORGANIZATION_SCOPE. */
export const AccountScopeSchema = z.object({
  include: AccountsAndUnitsSchema,
  exclude: AccountsAndUnitsSchema,
});

/** The account scope in REKEY_ORGANIZATION_SCOPE; throws ConfigurationError naming what is wrong. */
export function accountScopeFrom(json: string): AccountScope {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new ConfigurationError('REKEY_ORGANIZATION_SCOPE is not JSON');
  }
  const parsed = z.safeParse(AccountScopeSchema, raw);
  if (!parsed.success) {
    throw new ConfigurationError(
      `REKEY_ORGANIZATION_SCOPE is not an account scope: ${z.prettifyError(parsed.error)}`,
    );
  }
  return parsed.data;
}

/** Which accounts of the organization rekey rotates and audits (the `organization` setting). */
export interface AccountScope {
  /** Accounts and OUs (or the root) to include; both empty means the whole organization. */
  readonly include: { readonly accounts: readonly string[]; readonly organizationalUnits: readonly string[] };
  /** Accounts and OUs to leave out; an exclusion wins over an inclusion. */
  readonly exclude: { readonly accounts: readonly string[]; readonly organizationalUnits: readonly string[] };
}

/**
 * Whether an account is in scope, given every OU above it up to and including the root
 * (`ancestors`, in any order). The hub's own account is decided by the caller.
 */
export function inScope(scope: AccountScope, accountId: string, ancestors: readonly string[]): boolean {
  if (scope.exclude.accounts.includes(accountId)) return false;
  if (ancestors.some((ou) => scope.exclude.organizationalUnits.includes(ou))) return false;
  const { accounts, organizationalUnits } = scope.include;
  if (accounts.length === 0 && organizationalUnits.length === 0) return true;
  return accounts.includes(accountId) || ancestors.some((ou) => organizationalUnits.includes(ou));
}

/** Why an account is out of scope, in the words an error or the CLI uses; undefined when in scope. */
export function outOfScopeReason(
  scope: AccountScope,
  accountId: string,
  ancestors: readonly string[],
): string | undefined {
  if (inScope(scope, accountId, ancestors)) return undefined;
  if (scope.exclude.accounts.includes(accountId)) return `account ${accountId} is excluded`;
  const ou = ancestors.find((o) => scope.exclude.organizationalUnits.includes(o));
  if (ou) return `account ${accountId} is in the excluded organizational unit ${ou}`;
  return `account ${accountId} is in none of the included accounts and organizational units`;
}
