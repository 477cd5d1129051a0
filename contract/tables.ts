/**
 * The DynamoDB attributes that infra/ declares and the Lambdas write, named once for both.
 */

/** The attribute holding a user lock's expiry (epoch seconds); DynamoDB TTL removes stale locks. */
export const LOCK_TTL_ATTRIBUTE = 'expiresAt';

/** The audit's key-id cache: the attribute DynamoDB TTL reads (epoch seconds). */
export const KEY_ID_CACHE_TTL_ATTRIBUTE = 'expiresAt';
