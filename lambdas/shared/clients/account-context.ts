/**
 * The member account a call acts in. Inside `inAccount` (lambdas/shared/member-account.ts) the
 * clients of the services that act in a member account (contract/organization.ts
 * memberServices: IAM, CloudTrail, Security Hub, and Secrets Manager and KMS where the secrets
 * live there) sign with the member role of that account; every other client (the lock table, the
 * topic, the bus, the state machine) keeps the Lambda's own role. Outside it, nothing changes.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface SessionCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface MemberAccountContext {
  readonly accountId: string;
  /** The member role the calls sign as. */
  readonly roleArn: string;
  /** The signing prefixes of the services whose calls act in this account. */
  readonly services: readonly string[];
  /** The member role's credentials: assumed on first use, then cached (member-account.ts). */
  credentials(): Promise<SessionCredentials>;
}

const accounts = new AsyncLocalStorage<MemberAccountContext>();

export function runInMemberAccount<T>(context: MemberAccountContext, fn: () => Promise<T>): Promise<T> {
  return accounts.run(context, fn);
}

/** The member account a call of `service` acts in, if the caller runs inside one and the service acts there. */
export function memberAccountFor(service: string): MemberAccountContext | undefined {
  const context = accounts.getStore();
  return context?.services.includes(service) ? context : undefined;
}

/**
 * Whether a failed call in a member account means its role is not there. AWS refuses the
 * AssumeRole itself (member-account.ts names that). The emulator instead hands out credentials
 * for a role that does not exist, and answers the first call signed with them with an HTML error
 * page (status 500): `body` is that answer's body, when the caller kept it.
 */
export function isMissingRoleAnswer(error: unknown, body?: string): boolean {
  if (!(error instanceof Error)) return false;
  const status = (error as Error & { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (status !== 500) return false;
  const html = /<html|<!doctype html/i;
  return html.test(body ?? '') || html.test(error.message) || /mismatched tags <html>/.test(error.message);
}
