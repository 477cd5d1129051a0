/**
 * Scoping end to end (the synthesized state machine on the emulator, real handlers): with a user
 * path prefix, an opt-in tag and a protected user configured, a protected user and users out of
 * scope (wrong path, no opt-in tag) are refused by the plan, with zero mutating calls, no
 * notification, and no step after the plan. A user in scope is rotated, and its secret carries
 * the resource policy that lets only its own user, the consumers and the verify roles read it;
 * the consumers its consumer tag names are in its policy and in no other user's, and a tag
 * naming an account root stops the plan with an alert, before anything changes. Each step runs as
 * its deployed role, whose path scope, opt-in condition and Deny on protected users the harness
 * evaluates (cli/deployed-roles.ts); the secret's resource policy is only read back here, since
 * the emulator stores resource policies but does not evaluate them: what they allow is asserted
 * on the JSON.
 */
import { GetResourcePolicyCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitCodeFor } from '../../cli/local-runner.ts';
import { secretResourcePolicy } from '../../lambdas/shared/secret.ts';
import { ACCOUNT } from '../../support/constants.ts';
import { detailTypes, expectNoSecretsIn, outcomeStatus, startWorld, type World } from './harness.ts';

const OPT_IN = 'rekey:opt-in';
const CONSUMER = `arn:aws:iam::${ACCOUNT}:role/ci/deployer`;
/** What the `rekey:consumers` tag of the user `mailer` names: its readers only. */
const TAGGED = [
  `arn:aws:iam::${ACCOUNT}:role/apps/mail-relay`,
  `arn:aws:iam::${ACCOUNT}:user/ops/smtp-check`,
];
/** Stand-ins for the verify steps' roles, which the stack gives the create step. */
const VERIFY_ROLES = [
  `arn:aws:iam::${ACCOUNT}:role/RekeyStack-VerifyNewKeyRole`,
  `arn:aws:iam::${ACCOUNT}:role/RekeyStack-VerifyRotationRole`,
];

let world: World;

beforeAll(async () => {
  world = await startWorld({
    config: {
      protectedUsers: ['break-glass'],
      userPathPrefix: '/rotated/',
      optInTag: OPT_IN,
      consumerPrincipals: [CONSUMER],
    },
  });
  world.env.REKEY_SECRET_READER_ROLES = VERIFY_ROLES.join(',');
  const inScope = { path: '/rotated/', tags: { [OPT_IN]: 'yes' } };
  await world.createUser('break-glass', inScope);
  await world.createUser('outsider', { path: '/', tags: { [OPT_IN]: 'yes' } });
  // '/rotatedx/' starts with '/rotated' but is not under '/rotated/'.
  await world.createUser('neighbour', { path: '/rotatedx/', tags: { [OPT_IN]: 'yes' } });
  await world.createUser('untagged', { path: '/rotated/' });
  await world.createUser('wrong-tag', { path: '/rotated/', tags: { 'rekey:opt-out': 'yes' } });
  await world.createUser('in-scope', { path: '/rotated/team/', tags: { [OPT_IN]: '' } });
  await world.createUser('mailer', {
    path: '/rotated/',
    tags: { [OPT_IN]: 'yes', 'rekey:consumers': TAGGED.join(' ') },
  });
  await world.createUser('rooted', {
    path: '/rotated/',
    tags: { [OPT_IN]: 'yes', 'rekey:consumers': `${TAGGED[0]} arn:aws:iam::${ACCOUNT}:root` },
  });
  await world.drainNotifications();
});
afterAll(async () => {
  await world?.stop();
});

describe('refused: zero mutating calls', () => {
  it.each([
    ['a protected user', 'break-glass', 'UserProtected', /"break-glass" is a protected user/],
    ['a protected user, spelt in other case', 'BREAK-GLASS', 'UserProtected', /protected user/],
    [
      'a user outside the path',
      'outsider',
      'UserOutOfScope',
      /\(path \/\) is outside the configured path \/rotated\//,
    ],
    [
      'a user on a path that merely starts alike',
      'neighbour',
      'UserOutOfScope',
      /\(path \/rotatedx\/\) is outside/,
    ],
    [
      'a user without the opt-in tag',
      'untagged',
      'UserOutOfScope',
      /does not carry the opt-in tag rekey:opt-in/,
    ],
    ['a user with another tag only', 'wrong-tag', 'UserOutOfScope', /does not carry the opt-in tag/],
  ])('%s (%s)', async (_what, userName, reason, message) => {
    // Prepare
    const before = await world.snapshot();
    const keysBefore =
      userName === 'BREAK-GLASS' ? await world.keysOf('break-glass') : await world.keysOf(userName);

    // Act
    const result = await world.run({ userName });

    // Assess
    expect(result.status).toBe('SUCCEEDED');
    expect(outcomeStatus(result)).toBe('STOPPED');
    expect(exitCodeFor(result)).toBe(2);
    const outcome = (result.output as { outcome: { reason: string; message: string } }).outcome;
    expect(outcome.reason).toBe(reason);
    expect(outcome.message).toMatch(message);
    // Only the plan ran: no step that could change a key or a secret was ever invoked.
    expect(result.tasks.map((t) => t.step)).toEqual(['plan']);
    expect(await world.snapshot()).toBe(before);
    expect(keysBefore).toHaveLength(1);
    expect(await world.drainNotifications()).toEqual({ sns: [], events: [] });
  });
});

describe('in scope: rotated', () => {
  it('rotates a tagged user under the path, and its secret lets only its user, the consumers and the verify roles read it', async () => {
    // Prepare
    const [old] = await world.keysOf('in-scope');

    // Act
    const result = await world.run({ userName: 'in-scope' });

    // Assess
    expect(outcomeStatus(result)).toBe('ROTATED');
    const keys = await world.keysOf('in-scope');
    expect(keys).toHaveLength(1);
    expect(keys[0]?.id).not.toBe(old?.id);
    const userArn = `arn:aws:iam::${ACCOUNT}:user/rotated/team/in-scope`;
    const stored = await world.secrets.send(new GetResourcePolicyCommand({ SecretId: 'rekey/in-scope' }));
    expect(JSON.parse(stored.ResourcePolicy ?? '{}')).toEqual(
      JSON.parse(secretResourcePolicy({ userArn, consumers: [CONSUMER], rekeyReaders: VERIFY_ROLES })),
    );
    expect(JSON.parse(stored.ResourcePolicy ?? '{}').Statement[0].Principal).toEqual({
      AWS: [userArn, CONSUMER],
    });
    const notifications = await world.drainNotifications();
    await expectNoSecretsIn(world, {
      'the execution history': result.events,
      'the task inputs and outputs': result.tasks,
      'the logs': world.logs.join(''),
      'the notifications': notifications,
    });
  });
});

describe('consumers named by a user tag', () => {
  it("rotates a user whose tag names its readers: they are in its secret's policy, and in no other's", async () => {
    // Act
    const result = await world.run({ userName: 'mailer' });

    // Assess
    expect(outcomeStatus(result)).toBe('ROTATED');
    const userArn = `arn:aws:iam::${ACCOUNT}:user/rotated/mailer`;
    const stored = await world.secrets.send(new GetResourcePolicyCommand({ SecretId: 'rekey/mailer' }));
    const policy = JSON.parse(stored.ResourcePolicy ?? '{}');
    expect(policy).toEqual(
      JSON.parse(
        secretResourcePolicy({ userArn, consumers: [CONSUMER, ...TAGGED], rekeyReaders: VERIFY_ROLES }),
      ),
    );
    expect(policy.Statement[0].Principal).toEqual({ AWS: [userArn, CONSUMER, ...TAGGED] });
    expect(policy.Statement[1].Condition.StringNotEquals['aws:PrincipalArn']).toEqual([
      userArn,
      CONSUMER,
      ...TAGGED,
      ...VERIFY_ROLES,
    ]);
    // Another user's secret (rotated above, or now) names neither of them.
    await world.run({ userName: 'in-scope' });
    const other = await world.secrets.send(new GetResourcePolicyCommand({ SecretId: 'rekey/in-scope' }));
    for (const arn of TAGGED) expect(other.ResourcePolicy).not.toContain(arn);
    await world.drainNotifications();
  });

  it('stops with InvalidConsumerTag and an alert when the tag names an account root, changing nothing', async () => {
    // Prepare
    const before = await world.snapshot();

    // Act
    const result = await world.run({ userName: 'rooted' });

    // Assess
    expect(outcomeStatus(result)).toBe('STOPPED');
    expect(exitCodeFor(result)).toBe(2);
    expect(result.tasks.map((t) => t.step)).toEqual(['plan', 'notify']);
    const outcome = (result.output as { outcome: { reason: string; message: string } }).outcome;
    expect(outcome.reason).toBe('InvalidConsumerTag');
    expect(outcome.message).toContain(`arn:aws:iam::${ACCOUNT}:root is an account root`);
    expect(await world.snapshot()).toBe(before);
    expect(detailTypes(await world.drainNotifications())).toEqual(['Access Key Rotation Stopped']);
  });
});
