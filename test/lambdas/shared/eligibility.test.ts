import { GetUserCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { UserNotEligible, UserNotFound } from '../../../contract/errors.ts';
import { iam } from '../../../lambdas/shared/clients.ts';
import {
  type EligibilityEnv,
  type IamUser,
  readUser,
  refusalOf,
  requireEligible,
} from '../../../lambdas/shared/eligibility.ts';
import {
  awsError,
  ELIGIBILITY,
  fakeClock,
  inputsOf,
  NOW,
  rejectionOf,
  USER,
  USER_ARN,
} from '../../support/lambda-fixtures.ts';

const iamMock = mockClient(iam);

const ENV: EligibilityEnv = {
  ...ELIGIBILITY,
  REKEY_USER_PATH_PREFIX: '/ci/',
  REKEY_OPT_IN_TAG: 'rekey:opt-in',
};
const user = (over: Partial<IamUser> = {}): IamUser => ({
  userName: USER,
  arn: USER_ARN,
  path: '/ci/',
  tags: new Map([['rekey:opt-in', '']]),
  ...over,
});

beforeEach(() => iamMock.reset());

describe('refusalOf', () => {
  it('lets a user in scope, opted in and not exempt be rotated', () => {
    expect(refusalOf(user(), ENV, NOW)).toBeNull();
  });

  it.each([
    ['a protected user, in any case', user({ userName: 'breakglass' }), 'UserProtected', /protected user/],
    [
      'a user outside the path',
      user({ path: '/humans/' }),
      'UserOutOfScope',
      /outside the configured path \/ci\//,
    ],
    ['a user without the opt-in tag', user({ tags: new Map() }), 'UserOutOfScope', /opt-in tag rekey:opt-in/],
    [
      'an exempt user',
      user({
        tags: new Map([
          ['rekey:opt-in', ''],
          ['rekey:exempt', 'until=2099-12-31 vendor'],
        ]),
      }),
      'UserExempt',
      /exempt until 2099-12-31: vendor/,
    ],
  ])('refuses %s', (_what, candidate, reason, message) => {
    expect(refusalOf(candidate, ENV, NOW)).toEqual({ reason, message: expect.stringMatching(message) });
  });

  it('an expired exemption no longer refuses', () => {
    const expired = user({
      tags: new Map([
        ['rekey:opt-in', ''],
        ['rekey:exempt', 'until=2020-01-01 old'],
      ]),
    });
    expect(refusalOf(expired, ENV, NOW)).toBeNull();
  });
});

describe('readUser', () => {
  it("returns IAM's own spelling of the name", async () => {
    iamMock
      .on(GetUserCommand)
      .resolves({ User: { UserName: 'Alice', Arn: USER_ARN, Path: '/', Tags: [] } as never });

    const found = await readUser(iam, 'ALICE');

    expect(found).toEqual({ userName: 'Alice', arn: USER_ARN, path: '/', tags: new Map() });
    expect(inputsOf(iamMock.commandCalls(GetUserCommand))).toEqual([{ UserName: 'ALICE' }]);
  });

  it('names a user that does not exist', async () => {
    iamMock.on(GetUserCommand).rejects(awsError('NoSuchEntityException'));
    expect(await rejectionOf(readUser(iam, 'ghost'))).toBeInstanceOf(UserNotFound);
  });
});

describe('requireEligible (the re-check right before a key change)', () => {
  const deps = () => ({ iam, clock: fakeClock(), env: ENV });

  it('passes for a user still in scope', async () => {
    iamMock.on(GetUserCommand).resolves({
      User: { UserName: USER, Path: '/ci/', Tags: [{ Key: 'rekey:opt-in', Value: '' }] } as never,
    });
    await expect(requireEligible(deps(), USER, 'creating a key')).resolves.toBeUndefined();
  });

  it('throws the stop reason as its error name, saying what was not done', async () => {
    iamMock.on(GetUserCommand).resolves({
      User: {
        UserName: USER,
        Path: '/ci/',
        Tags: [
          { Key: 'rekey:opt-in', Value: '' },
          { Key: 'rekey:exempt', Value: 'vendor migration' },
        ],
      } as never,
    });

    const error = await rejectionOf(requireEligible(deps(), USER, 'deactivating AKIAOLD'));

    expect(error).toBeInstanceOf(UserNotEligible);
    expect(error).toMatchObject({
      name: 'UserExempt',
      message: `"${USER}" is exempt: vendor migration; stopped before deactivating AKIAOLD`,
    });
  });

  it('refuses a protected user without asking IAM', async () => {
    const error = await rejectionOf(requireEligible(deps(), 'BREAKGLASS', 'deleting AKIAOLD'));
    expect(error.name).toBe('UserProtected');
    expect(iamMock.calls()).toHaveLength(0);
  });
});
