import { describe, expect, it } from 'vitest';
import {
  ConsumerPrincipal,
  consumerPrincipalProblem,
  parseConsumerTag,
  tagConsumers,
} from '../../contract/consumers.ts';
import { ACCOUNT, USER_ARN } from '../support/lambda-fixtures.ts';

const ROLE = `arn:aws:iam::${ACCOUNT}:role/ci/deployer`;
const USER = `arn:aws:iam::${ACCOUNT}:user/apps/mailer`;
const OTHER_ACCOUNT = '210987654321';

describe('consumerPrincipalProblem', () => {
  it.each([
    ROLE,
    USER,
    `arn:aws:iam::${ACCOUNT}:role/app`,
    `arn:aws:iam::${ACCOUNT}:user/svc+smtp=1.x@y_z-w`,
    `arn:aws-us-gov:iam::${OTHER_ACCOUNT}:role/reader`,
    `arn:aws-cn:iam::${ACCOUNT}:role/a/b/c/reader`,
  ])('accepts the IAM user or role %s', (arn) => {
    expect(consumerPrincipalProblem(arn)).toBeNull();
    expect(ConsumerPrincipal.safeParse(arn).success).toBe(true);
  });

  it.each([
    `arn:aws:iam::${ACCOUNT}:root`,
    `arn:aws-us-gov:iam::${OTHER_ACCOUNT}:root`,
    // IAM reads a bare account id in a Principal as that account's root.
    ACCOUNT,
  ])('refuses the account root %s, saying why', (arn) => {
    expect(consumerPrincipalProblem(arn)).toBe(
      `${arn} is an account root, which stands for every principal of its account and would void ` +
        "the secret's Deny: name the IAM roles or users that read the key",
    );
    expect(ConsumerPrincipal.safeParse(arn).error?.issues[0]?.message).toMatch(/is an account root/);
  });

  it.each([
    '*',
    'alice',
    `arn:aws:iam::${ACCOUNT}:role/*`,
    `arn:aws:iam::${ACCOUNT}:role/`,
    `arn:aws:iam::${ACCOUNT}:role//x`,
    `arn:aws:iam::${ACCOUNT}:role/a,b`,
    `arn:aws:iam::${ACCOUNT}:group/admins`,
    `arn:aws:iam::${ACCOUNT}:user/a b`,
    `arn:aws:sts::${ACCOUNT}:assumed-role/app/session`,
    `arn:aws:iam::${ACCOUNT}:role/app `,
    'arn:aws:iam::12345678901:role/app',
    `arn:aws:iam::aws:policy/AdministratorAccess`,
  ])('refuses %j: not an IAM user or role ARN', (arn) => {
    expect(consumerPrincipalProblem(arn)).toBe(
      `${arn} is not an IAM user or role ARN (arn:<partition>:iam::<account>:user/... or :role/...)`,
    );
  });
});

describe('parseConsumerTag', () => {
  it('reads ARNs separated by spaces (one or more), dropping duplicates', () => {
    expect(parseConsumerTag(`  ${ROLE}   ${USER} ${ROLE} `, USER_ARN)).toEqual({
      ok: true,
      consumers: [ROLE, USER],
    });
  });

  it('names nobody when the value is empty or blank', () => {
    expect(parseConsumerTag('', USER_ARN)).toEqual({ ok: true, consumers: [] });
    expect(parseConsumerTag('   ', USER_ARN)).toEqual({ ok: true, consumers: [] });
  });

  it('refuses an account root, even the user’s own account', () => {
    expect(parseConsumerTag(`${ROLE} arn:aws:iam::${ACCOUNT}:root`, USER_ARN)).toEqual({
      ok: false,
      problem:
        `entry 2: arn:aws:iam::${ACCOUNT}:root is an account root, which stands for every principal of ` +
        "its account and would void the secret's Deny: name the IAM roles or users that read the key",
    });
  });

  it('refuses a principal of another account or partition: those belong in consumerPrincipals', () => {
    const other = `arn:aws:iam::${OTHER_ACCOUNT}:role/reader`;
    const gov = `arn:aws-us-gov:iam::${ACCOUNT}:role/reader`;
    expect(parseConsumerTag(`${other} ${gov}`, USER_ARN)).toEqual({
      ok: false,
      problem:
        `entry 1: ${other} is not in the user's account (arn:aws:iam::${ACCOUNT}); consumers in other ` +
        'accounts belong in the configured consumerPrincipals; ' +
        `entry 2: ${gov} is not in the user's account (arn:aws:iam::${ACCOUNT}); consumers in other ` +
        'accounts belong in the configured consumerPrincipals',
    });
  });

  it('refuses a comma-separated list (tag values allow no comma; a list uses spaces)', () => {
    const result = parseConsumerTag(`${ROLE},${USER}`, USER_ARN);
    expect(result).toEqual({
      ok: false,
      problem: `entry 1: ${ROLE},${USER} is not an IAM user or role ARN (arn:<partition>:iam::<account>:user/... or :role/...)`,
    });
  });

  it('refuses a wildcard', () => {
    expect(parseConsumerTag('*', USER_ARN)).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/^entry 1: \* is not/),
    });
  });

  it('cannot check the account without the user’s ARN: refused, unless the tag names nobody', () => {
    expect(parseConsumerTag(ROLE, null)).toEqual({
      ok: false,
      problem: "the user's ARN is unknown, so the tag's account cannot be checked",
    });
    expect(parseConsumerTag(' ', null)).toEqual({ ok: true, consumers: [] });
  });
});

describe('tagConsumers', () => {
  const tags = new Map([
    ['rekey:consumers', ROLE],
    ['team', 'mail'],
  ]);

  it('reads the configured tag', () => {
    expect(tagConsumers('rekey:consumers', tags, USER_ARN)).toEqual({ ok: true, consumers: [ROLE] });
  });

  it('names nobody when the user lacks the tag, or when per-user consumers are off', () => {
    expect(tagConsumers('readers', tags, USER_ARN)).toEqual({ ok: true, consumers: [] });
    expect(tagConsumers(undefined, tags, USER_ARN)).toEqual({ ok: true, consumers: [] });
  });
});
