/**
 * Who rekey may touch: not a protected user, under the configured path, carrying the opt-in tag
 * (when one is configured), not exempt. The plan decides with these rules, and the create,
 * deactivate and delete steps ask them again right before CreateAccessKey, UpdateAccessKey
 * (Inactive) and DeleteAccessKey: a rotation takes days, and an exemption added (or a user moved
 * out of scope) in the meantime must stop it before its next change, not after. One function for
 * both, so the rules cannot drift apart.
 */
import { GetUserCommand, type IAMClient } from '@aws-sdk/client-iam';
import type { RekeyEnv } from '../../contract/env.ts';
import { isAwsError, UserNotEligible, UserNotFound } from '../../contract/errors.ts';
import type { Clock } from './clock.ts';
import { parseExemption } from './exemption.ts';

export type EligibilityEnv = Pick<
  RekeyEnv,
  'REKEY_EXEMPT_TAG' | 'REKEY_PROTECTED_USERS' | 'REKEY_USER_PATH_PREFIX' | 'REKEY_OPT_IN_TAG'
>;

export interface EligibilityDeps {
  iam: IAMClient;
  clock: Clock;
  env: EligibilityEnv;
}

/** The user as IAM returns it: its name in IAM's own (canonical) case, whatever case it was asked in. */
export interface IamUser {
  userName: string;
  arn: string | null;
  path: string;
  tags: ReadonlyMap<string, string>;
}

export type Refusal = { reason: 'UserProtected' | 'UserOutOfScope' | 'UserExempt'; message: string };

/** IAM user names are unique case-insensitively: so is the list of protected users. */
export function protectedRefusal(userName: string, env: Pick<EligibilityEnv, 'REKEY_PROTECTED_USERS'>) {
  const lower = userName.toLowerCase();
  if (!env.REKEY_PROTECTED_USERS.some((u) => u.toLowerCase() === lower)) return null;
  return {
    reason: 'UserProtected',
    message: `"${userName}" is a protected user: rekey never touches it`,
  } satisfies Refusal;
}

export async function readUser(iam: IAMClient, userName: string): Promise<IamUser> {
  try {
    const user = (await iam.send(new GetUserCommand({ UserName: userName }))).User;
    return {
      userName: user?.UserName ?? userName,
      arn: user?.Arn ?? null,
      path: user?.Path ?? '/',
      tags: new Map((user?.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])),
    };
  } catch (error) {
    if (isAwsError(error, 'NoSuchEntity', 'NoSuchEntityException')) throw new UserNotFound(userName);
    throw error;
  }
}

/** Why rekey must leave this user alone, or null when it may rotate its credentials. */
export function refusalOf(user: IamUser, env: EligibilityEnv, now: Date): Refusal | null {
  const protectedUser = protectedRefusal(user.userName, env);
  if (protectedUser) return protectedUser;
  const { userName, path, tags } = user;
  if (!path.startsWith(env.REKEY_USER_PATH_PREFIX)) {
    return {
      reason: 'UserOutOfScope',
      message: `"${userName}" (path ${path}) is outside the configured path ${env.REKEY_USER_PATH_PREFIX}`,
    };
  }
  if (env.REKEY_OPT_IN_TAG && !tags.has(env.REKEY_OPT_IN_TAG)) {
    return {
      reason: 'UserOutOfScope',
      message: `"${userName}" does not carry the opt-in tag ${env.REKEY_OPT_IN_TAG}`,
    };
  }
  const exemptValue = tags.get(env.REKEY_EXEMPT_TAG);
  if (exemptValue !== undefined) {
    const exemption = parseExemption(exemptValue, now);
    if (!exemption.expired) {
      const until = exemption.until ? ` until ${exemption.until.toISOString().slice(0, 10)}` : '';
      return { reason: 'UserExempt', message: `"${userName}" is exempt${until}: ${exemption.reason}` };
    }
  }
  return null;
}

/**
 * The re-check right before a credential change: reads the user again and throws the refusal as
 * its named error (UserExempt, UserProtected, UserOutOfScope), which the state machine reports
 * as a safe stop. `before` names the change that was not made, for the message.
 */
export async function requireEligible(
  deps: EligibilityDeps,
  userName: string,
  before: string,
): Promise<void> {
  const refusal =
    protectedRefusal(userName, deps.env) ??
    refusalOf(await readUser(deps.iam, userName), deps.env, deps.clock.now());
  if (refusal) throw new UserNotEligible(refusal.reason, `${refusal.message}; stopped before ${before}`);
}
