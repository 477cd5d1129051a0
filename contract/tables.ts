/**
 * The DynamoDB attributes that infra/ declares and the Lambdas write, named once for both.
 */

/** The attribute holding a user lock's expiry (epoch seconds); DynamoDB TTL removes stale locks. */
export const LOCK_TTL_ATTRIBUTE = 'expiresAt';

/** The audit's key-id cache: the attribute DynamoDB TTL reads (epoch seconds). */
export const KEY_ID_CACHE_TTL_ATTRIBUTE = 'expiresAt';

/**
 * The organization audit's results table: one item per audit run and account, written by the
 * audit's `account` mode and read back by its `aggregate` mode (lambdas/audit/organization.ts).
 */
export const ORGANIZATION_RESULTS = {
  /** Partition key (S): the organization audit's execution name. */
  partitionKey: 'runId',
  /** Sort key (S): the audited account. */
  sortKey: 'accountId',
  /** (S) `audited` or `failed`. */
  status: 'status',
  /** (M) the account's counts: usersScanned, findings, rotationsStarted (N). */
  counts: 'counts',
  /** (B) the account's findings: gzip of their JSON array. */
  findings: 'findings',
  /** (B) the account's actions (rotations, deactivations, skips): gzip of their JSON array, for the digest. */
  actions: 'actions',
  /** (M) name and message (S) of the error that failed the account. */
  error: 'error',
  /** (N) epoch seconds; DynamoDB TTL removes the item after ORGANIZATION_RESULTS_TTL_DAYS. */
  ttl: 'expiresAt',
} as const;

/** How long a run's results are kept. */
export const ORGANIZATION_RESULTS_TTL_DAYS = 30;

/** The status of one account in one organization audit run. */
export const ORGANIZATION_RESULT_STATUSES = ['audited', 'failed'] as const;
export type OrganizationResultStatus = (typeof ORGANIZATION_RESULT_STATUSES)[number];
