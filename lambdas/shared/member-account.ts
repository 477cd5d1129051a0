/**
 * Acting in a member account of the organization (docs/organizations.md): `inAccount` runs a
 * step's work with every client of a service that acts in the account (contract/organization.ts
 * memberServices) signing as the Lambda's member role there, `<prefix><lambda>`, assumed with the
 * Lambda's own role. In the hub's own account, or with no account named, the work runs as it
 * always did, under the Lambda's own role.
 */

import { loadEnv, type RekeyEnv } from '../../contract/env.ts';
import { ConfigurationError, isAwsError, MemberRoleUnavailable, safeCause } from '../../contract/errors.ts';
import { MEMBER_ACCOUNT_ENV } from '../../contract/functions.ts';
import { type MemberLambda, memberRoleArn, memberServices } from '../../contract/organization.ts';
import { runInMemberAccount, type SessionCredentials } from './clients/account-context.ts';
import { currentInvocation } from './clients/invocation.ts';
import { loadOptInClient } from './opt-in.ts';

export interface AccountTarget {
  /** The account to act in; undefined: the hub's own. */
  readonly accountId: string | undefined;
  /** The Lambda acting: its member role is `<prefix><lambda>`. */
  readonly lambda: MemberLambda;
}

/** Session credentials are assumed again this long before they expire. */
const REFRESH_BEFORE_EXPIRY_MS = 5 * 60_000;
/** One hour: the longest a Lambda runs is 15 minutes, so one session serves a whole invocation. */
const SESSION_SECONDS = 3_600;

type OrganizationEnv = Pick<RekeyEnv, (typeof MEMBER_ACCOUNT_ENV)[number]>;

/** Read when first needed, so that a Lambda that never names an account needs none of it. */
function organizationEnv(): OrganizationEnv {
  return loadEnv(MEMBER_ACCOUNT_ENV);
}

/** Whether `accountId` is the hub's own account (undefined: it is). */
export function isHubAccount(accountId: string | undefined): boolean {
  return accountId === undefined || accountId === organizationEnv().REKEY_HUB_ACCOUNT_ID;
}

/** The partition of the Lambda's region (AWS_REGION): member role ARNs are in the same one. */
export function partitionOf(region: string | undefined): string {
  if (region?.startsWith('cn-')) return 'aws-cn';
  if (region?.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

interface Session {
  credentials: SessionCredentials;
  expiresAt: number;
}

/**
 * Sessions by the identity that assumed them and the role: deployed, one identity per container;
 * in a local run, the Lambdas share one process, each with its own emulated role.
 */
const sessions = new Map<string, Promise<Session>>();

/** Forgets every cached session (tests). */
export function forgetMemberSessions(): void {
  sessions.clear();
}

export async function inAccount<T>(target: AccountTarget, fn: () => Promise<T>): Promise<T> {
  if (isHubAccount(target.accountId)) return fn();
  const accountId = target.accountId as string;
  const env = organizationEnv();
  const prefix = env.REKEY_MEMBER_ROLE_PREFIX;
  if (!prefix) {
    throw new ConfigurationError(
      `account ${accountId} is not this deployment's own (${env.REKEY_HUB_ACCOUNT_ID ?? 'unknown'}), and the organization option is not set`,
    );
  }
  const roleArn = memberRoleArn(partitionOf(process.env.AWS_REGION), accountId, prefix, target.lambda);
  return runInMemberAccount(
    {
      accountId,
      roleArn,
      services: memberServices(env.REKEY_SECRETS_LOCATION ?? 'member'),
      credentials: () => memberCredentials(accountId, roleArn, target.lambda),
    },
    fn,
  );
}

async function memberCredentials(
  accountId: string,
  roleArn: string,
  lambda: MemberLambda,
): Promise<SessionCredentials> {
  const base = currentInvocation();
  const key = `${base?.step ?? ''}|${base?.credentials.accessKeyId ?? ''}|${roleArn}`;
  let session = sessions.get(key);
  if (session) {
    const known = await session.catch(() => undefined);
    if (!known || known.expiresAt - REFRESH_BEFORE_EXPIRY_MS <= Date.now()) session = undefined;
  }
  if (!session) {
    session = assume(accountId, roleArn, lambda);
    sessions.set(key, session);
    session.catch(() => sessions.delete(key));
  }
  return (await session).credentials;
}

/** The errors with which STS refuses to hand out a role's credentials: the role is missing or does not trust the caller. */
const REFUSALS = ['AccessDenied', 'AccessDeniedException', 'NoSuchEntity', 'NoSuchEntityException'];

async function assume(accountId: string, roleArn: string, lambda: MemberLambda): Promise<Session> {
  const { memberSts, AssumeRoleCommand } = await loadOptInClient('member-sts');
  try {
    const out = await memberSts.send(
      new AssumeRoleCommand({
        RoleArn: roleArn,
        RoleSessionName: `rekey-${lambda}`,
        DurationSeconds: SESSION_SECONDS,
      }),
    );
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error('AssumeRole returned no credentials');
    return {
      credentials: {
        accessKeyId: c.AccessKeyId,
        secretAccessKey: c.SecretAccessKey,
        ...(c.SessionToken ? { sessionToken: c.SessionToken } : {}),
      },
      expiresAt: c.Expiration?.getTime() ?? Date.now() + SESSION_SECONDS * 1000,
    };
  } catch (error) {
    // Throttling, timeouts and 5xx stay what they are: the state machine retries them.
    if (isAwsError(error, ...REFUSALS)) throw new MemberRoleUnavailable(accountId, roleArn, safeCause(error));
    throw error;
  }
}
