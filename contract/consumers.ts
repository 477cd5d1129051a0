/**
 * Consumer principals: who may read a credential secret besides its own IAM user. They come from
 * two places under one rule: the deployment's `consumerPrincipals` (every secret) and the user's
 * consumer tag (that user's secret only). Both end up in the secret's resource policy, whose Deny
 * refuses the value to every principal it does not name.
 *
 * Only IAM users and roles qualify. An account root (`arn:...:root`, or a bare account id, which
 * IAM reads as the root) stands for every principal of its account: naming one would make the
 * Deny spare that whole account, administrators included.
 */
import * as z from 'zod/mini';
import './zod-messages.ts';

/**
 * An IAM user or role ARN, path included: the characters IAM allows in path segments and names,
 * minus ',' (the deployment passes the list to the Lambdas comma-joined).
 */
const USER_OR_ROLE_ARN = /^arn:aws(-[a-z]+)*:iam::\d{12}:(user|role)(\/[\w+=.@-]+)+$/;
const ROOT = /^(arn:aws(-[a-z]+)*:iam::\d{12}:root|\d{12})$/;

/** Why `arn` cannot be a consumer principal, or null when it can. The one rule of config, env and tag. */
export function consumerPrincipalProblem(arn: string): string | null {
  if (ROOT.test(arn)) {
    return (
      `${arn} is an account root, which stands for every principal of its account and would void ` +
      "the secret's Deny: name the IAM roles or users that read the key"
    );
  }
  if (!USER_OR_ROLE_ARN.test(arn)) {
    return `${arn} is not an IAM user or role ARN (arn:<partition>:iam::<account>:user/... or :role/...)`;
  }
  return null;
}

/** A consumer principal, validated by consumerPrincipalProblem (the message names the ARN). */
export const ConsumerPrincipal = z.string().check(
  z.superRefine((arn, ctx) => {
    const problem = consumerPrincipalProblem(arn);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
);

/** `arn:<partition>:iam::<account>`: what a principal's account is compared by. */
const accountPrefix = (arn: string) => arn.split(':').slice(0, 5).join(':');

export type TagConsumers = { ok: true; consumers: string[] } | { ok: false; problem: string };

/**
 * The principals a user's consumer tag names. The value is a list of IAM user or role ARNs
 * separated by spaces: tag values allow spaces, ARNs never hold one, and tag values allow no ','.
 * Every entry must be a user or role of the user's own account (and partition): whoever can tag
 * a user can then grant its secret only inside the account, and the KMS key policy, written at
 * deploy time, lets only this account's users and roles decrypt through Secrets Manager.
 * Consumers in other accounts go in the deployment's `consumerPrincipals`, which the key policy
 * names one by one. Duplicates are dropped; an empty value names nobody.
 */
export function parseConsumerTag(value: string, userArn: string | null): TagConsumers {
  const entries = value.split(/\s+/).filter((entry) => entry.length > 0);
  if (entries.length === 0) return { ok: true, consumers: [] };
  if (!userArn)
    return { ok: false, problem: "the user's ARN is unknown, so the tag's account cannot be checked" };
  const problems: string[] = [];
  entries.forEach((entry, i) => {
    const problem =
      consumerPrincipalProblem(entry) ??
      (accountPrefix(entry) === accountPrefix(userArn)
        ? null
        : `${entry} is not in the user's account (${accountPrefix(userArn)}); consumers in other accounts ` +
          'belong in the configured consumerPrincipals');
    if (problem) problems.push(`entry ${i + 1}: ${problem}`);
  });
  if (problems.length > 0) return { ok: false, problem: problems.join('; ') };
  return { ok: true, consumers: [...new Set(entries)] };
}

/**
 * The consumers named by the tag `tagKey` among a user's tags. No tag key (the feature is off)
 * or no such tag: nobody.
 */
export function tagConsumers(
  tagKey: string | undefined,
  tags: ReadonlyMap<string, string>,
  userArn: string | null,
): TagConsumers {
  const value = tagKey === undefined ? undefined : tags.get(tagKey);
  return value === undefined ? { ok: true, consumers: [] } : parseConsumerTag(value, userArn);
}
