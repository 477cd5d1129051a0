import { LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import { GetAccessKeyLastUsedCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { hubPathCalls } from '../../../../contract/functions.ts';
import { Adoption } from '../../../../contract/schemas.ts';
import {
  type AdoptionDeps,
  checkLastUsed,
} from '../../../../lambdas/rotation/check-last-used/check-last-used.ts';
import { cloudTrail, iam } from '../../../../lambdas/shared/clients.ts';
import {
  awsError,
  callOrder,
  DAY,
  daysAgo,
  fakeClock,
  inputsOf,
  mockLastUse,
  NEW_KEY_CREATED,
  NOW,
  OLD_KEY_CREATED,
  OLD_KEY_ID,
  QUIET_SINCE,
  silenceLogs,
  stateWithNewKey,
  USER,
} from '../../../support/lambda-fixtures.ts';
import {
  NEW_CREATED,
  NEW_ID,
  OLD_ID,
  SERVICE,
  serviceStateWithNewKey,
} from '../../../support/service-credential-fixtures.ts';

const iamMock = mockClient(iam);
const ctMock = mockClient(cloudTrail);

function deps(env: Partial<AdoptionDeps['env']> = {}): AdoptionDeps {
  return {
    iam,
    cloudTrail,
    clock: fakeClock(),
    env: {
      REKEY_MAX_ADOPTION_CHECKS: 3,
      REKEY_LAST_USED_GRACE_SECONDS: 60,
      REKEY_CLOUDTRAIL_LOOKUP: false,
      ...env,
    },
  };
}

const usedAt = (date: Date | null, service = 's3', region = 'eu-west-1') =>
  mockLastUse(iamMock, { id: OLD_KEY_ID, created: OLD_KEY_CREATED, lastUsed: date, service, region });

const withChecks = (checks: number) => ({
  ...stateWithNewKey(),
  adoption: {
    checks,
    inUse: true,
    lastUsedDate: daysAgo(1).toISOString(),
    lastUsedService: 's3',
    lastUsedRegion: 'eu-west-1',
    mayWaitAgain: true,
    quietSince: QUIET_SINCE.toISOString(),
  },
});

function cloudTrailEvent(name: string, ip: string, agent: string) {
  return {
    EventName: name,
    CloudTrailEvent: JSON.stringify({ sourceIPAddress: ip, userAgent: agent, eventName: name }),
  };
}

beforeAll(silenceLogs);
beforeEach(() => {
  iamMock.reset();
  ctMock.reset();
});

describe('checkLastUsed', () => {
  it('reports "not in use" when the old key was last used before the new key was handed out', async () => {
    // Prepare
    const lastUsed = new Date(NEW_KEY_CREATED.getTime() - 61_000);
    usedAt(lastUsed);

    // Act
    const adoption = await checkLastUsed(deps(), stateWithNewKey());

    // Assess
    expect(adoption).toEqual({
      checks: 1,
      inUse: false,
      lastUsedDate: lastUsed.toISOString(),
      lastUsedService: 's3',
      lastUsedRegion: 'eu-west-1',
      mayWaitAgain: true,
      // Nothing found: Q stays where it was.
      quietSince: QUIET_SINCE.toISOString(),
    });
    expect(Adoption.parse(adoption)).toEqual(adoption);
    expect(inputsOf(iamMock.commandCalls(GetAccessKeyLastUsedCommand))).toEqual([
      { AccessKeyId: OLD_KEY_ID },
    ]);
  });

  it('reports "in use" when the old key was used after the hand-out', async () => {
    // Prepare
    usedAt(daysAgo(1), 'ses', 'us-east-1');

    // Act
    const adoption = await checkLastUsed(deps(), stateWithNewKey());

    // Assess
    expect(adoption).toEqual({
      checks: 1,
      inUse: true,
      lastUsedDate: daysAgo(1).toISOString(),
      lastUsedService: 'ses',
      lastUsedRegion: 'us-east-1',
      mayWaitAgain: true,
      // Use found: Q moves to this check's time.
      quietSince: NOW.toISOString(),
    });
  });

  describe('the quiet-since instant Q', () => {
    it("compares with Q, not with the new key's creation", async () => {
      // Prepare: Q moved to a check two days after the hand-out; the key was last used in between.
      usedAt(new Date(NEW_KEY_CREATED.getTime() + DAY));
      const state = {
        ...withChecks(1),
        quietSince: new Date(NEW_KEY_CREATED.getTime() + 2 * DAY).toISOString(),
      };

      // Act
      const adoption = await checkLastUsed(deps(), state);

      // Assess: the consumer switched before Q; Q stays.
      expect(adoption).toMatchObject({ checks: 2, inUse: false, quietSince: state.quietSince });
    });

    it("a use within the grace before a moved Q still counts (IAM's 15-minute resolution)", async () => {
      // Prepare
      const q = new Date(NEW_KEY_CREATED.getTime() + 2 * DAY);
      usedAt(new Date(q.getTime() - 900_000));
      const state = { ...withChecks(1), quietSince: q.toISOString() };

      // Act
      const adoption = await checkLastUsed(deps({ REKEY_LAST_USED_GRACE_SECONDS: 900 }), state);

      // Assess: still in use, and Q moves again, to this check.
      expect(adoption).toMatchObject({ checks: 2, inUse: true, quietSince: NOW.toISOString() });
    });

    it('takes its own time before reading last use, so a use the read cannot see yet is after Q', async () => {
      // Prepare: the clock moves on while GetAccessKeyLastUsed is answered.
      let now = NOW;
      const clock = { now: () => now, sleep: async () => {} };
      iamMock.on(GetAccessKeyLastUsedCommand).callsFake(() => {
        now = new Date(NOW.getTime() + 5_000);
        return { AccessKeyLastUsed: { LastUsedDate: daysAgo(1), ServiceName: 's3', Region: 'eu-west-1' } };
      });

      // Act
      const adoption = await checkLastUsed({ ...deps(), clock }, stateWithNewKey());

      // Assess
      expect(adoption.quietSince).toBe(NOW.toISOString());
    });
  });

  it('reports "in use" for a use within the grace period before the hand-out', async () => {
    // Prepare
    usedAt(new Date(NEW_KEY_CREATED.getTime() - 60_000));

    // Act & Assess
    await expect(checkLastUsed(deps(), stateWithNewKey())).resolves.toMatchObject({ inUse: true });
  });

  it('a never-used old key is not in use', async () => {
    // Prepare
    usedAt(null);

    // Act & Assess
    await expect(checkLastUsed(deps(), stateWithNewKey())).resolves.toMatchObject({
      inUse: false,
      lastUsedDate: null,
      lastUsedService: null,
      lastUsedRegion: null,
    });
  });

  it('increments the number of checks from the previous adoption', async () => {
    // Prepare
    usedAt(daysAgo(1));

    // Act
    const adoption = await checkLastUsed(deps(), withChecks(1));

    // Assess
    expect(adoption).toMatchObject({ checks: 2, mayWaitAgain: true });
  });

  it('does not allow another wait once the maximum number of checks is reached', async () => {
    // Prepare
    usedAt(daysAgo(1));

    // Act
    const adoption = await checkLastUsed(deps({ REKEY_MAX_ADOPTION_CHECKS: 3 }), withChecks(2));

    // Assess
    expect(adoption).toMatchObject({ checks: 3, inUse: true, mayWaitAgain: false });
  });

  it('with a maximum of one check, the first check already forbids another wait', async () => {
    // Prepare
    usedAt(daysAgo(1));

    // Act & Assess
    await expect(
      checkLastUsed(deps({ REKEY_MAX_ADOPTION_CHECKS: 1 }), stateWithNewKey()),
    ).resolves.toMatchObject({
      checks: 1,
      mayWaitAgain: false,
    });
  });

  describe('CloudTrail lookup', () => {
    it('when enabled and the key is in use, looks up recent events signed with it (who and where)', async () => {
      // Prepare
      usedAt(daysAgo(1));
      ctMock.on(LookupEventsCommand).resolves({
        Events: [
          cloudTrailEvent('ListBuckets', '203.0.113.7', 'aws-cli/2.15.0'),
          cloudTrailEvent('ListBuckets', '203.0.113.7', 'aws-cli/2.15.0'),
          cloudTrailEvent('SendEmail', '198.51.100.2', 'Boto3/1.34'),
        ],
      });

      // Act
      const adoption = await checkLastUsed(deps({ REKEY_CLOUDTRAIL_LOOKUP: true }), stateWithNewKey());

      // Assess
      expect(adoption.recentCallers).toEqual([
        'ListBuckets from 203.0.113.7 (aws-cli/2.15.0)',
        'SendEmail from 198.51.100.2 (Boto3/1.34)',
      ]);
      expect(inputsOf(ctMock.commandCalls(LookupEventsCommand))).toEqual([
        {
          LookupAttributes: [{ AttributeKey: 'AccessKeyId', AttributeValue: OLD_KEY_ID }],
          // From Q less the grace: the earliest use that still counts.
          StartTime: new Date(QUIET_SINCE.getTime() - 60_000),
          EndTime: NOW,
          MaxResults: 20,
        },
      ]);
    });

    it('is not called when enabled but the key is not in use', async () => {
      // Prepare
      usedAt(daysAgo(30));

      // Act
      const adoption = await checkLastUsed(deps({ REKEY_CLOUDTRAIL_LOOKUP: true }), stateWithNewKey());

      // Assess
      expect(ctMock.calls()).toHaveLength(0);
      expect(adoption).not.toHaveProperty('recentCallers');
    });

    it('is not called when disabled, even if the key is in use', async () => {
      // Prepare
      usedAt(daysAgo(1));

      // Act
      const adoption = await checkLastUsed(deps({ REKEY_CLOUDTRAIL_LOOKUP: false }), stateWithNewKey());

      // Assess
      expect(ctMock.calls()).toHaveLength(0);
      expect(adoption).not.toHaveProperty('recentCallers');
    });

    it('a CloudTrail failure yields no callers and leaves the decision unchanged', async () => {
      // Prepare
      usedAt(daysAgo(1));
      ctMock.on(LookupEventsCommand).rejects(awsError('ThrottlingException', 'Rate exceeded'));

      // Act
      const adoption = await checkLastUsed(deps({ REKEY_CLOUDTRAIL_LOOKUP: true }), stateWithNewKey());

      // Assess
      expect(adoption).toEqual({
        checks: 1,
        inUse: true,
        lastUsedDate: daysAgo(1).toISOString(),
        lastUsedService: 's3',
        lastUsedRegion: 'eu-west-1',
        recentCallers: [],
        mayWaitAgain: true,
        quietSince: NOW.toISOString(),
      });
    });

    it('an unreadable CloudTrail event yields no callers rather than failing the check', async () => {
      // Prepare
      usedAt(daysAgo(1));
      ctMock.on(LookupEventsCommand).resolves({ Events: [{ EventName: 'X', CloudTrailEvent: '{not json' }] });

      // Act & Assess
      await expect(
        checkLastUsed(deps({ REKEY_CLOUDTRAIL_LOOKUP: true }), stateWithNewKey()),
      ).resolves.toMatchObject({ inUse: true, recentCallers: [] });
    });

    it('fills unknown fields of an event with placeholders', async () => {
      // Prepare
      usedAt(daysAgo(1));
      ctMock.on(LookupEventsCommand).resolves({ Events: [{ CloudTrailEvent: '{}' }] });

      // Act & Assess
      await expect(
        checkLastUsed(deps({ REKEY_CLOUDTRAIL_LOOKUP: true }), stateWithNewKey()),
      ).resolves.toMatchObject({ recentCallers: ['? from ? (unknown agent)'] });
    });
  });
});

describe('checkLastUsed: a service-specific credential', () => {
  const deps = (lookup: boolean) => ({
    iam,
    cloudTrail,
    clock: fakeClock(),
    env: { REKEY_MAX_ADOPTION_CHECKS: 3, REKEY_LAST_USED_GRACE_SECONDS: 60, REKEY_CLOUDTRAIL_LOOKUP: lookup },
  });
  const event = (accessKeyId: string | undefined, source: string = SERVICE) => ({
    EventName: 'GitPull',
    EventSource: source,
    EventTime: daysAgo(2),
    CloudTrailEvent: JSON.stringify({
      sourceIPAddress: '203.0.113.7',
      userAgent: 'git/2.45',
      userIdentity: { type: 'IAMUser', userName: USER, ...(accessKeyId ? { accessKeyId } : {}) },
    }),
  });

  it('reports no last-used data, not "unused", and calls neither IAM nor CloudTrail by default', async () => {
    const adoption = await checkLastUsed(deps(false), serviceStateWithNewKey());

    expect(adoption).toEqual({
      checks: 1,
      inUse: false,
      lastUsedDate: null,
      lastUsedService: null,
      lastUsedRegion: null,
      mayWaitAgain: true,
      quietSince: NEW_CREATED.toISOString(),
      lastUseTracked: false,
    });
    expect(iamMock.calls()).toHaveLength(0);
    expect(ctMock.calls()).toHaveLength(0);
  });

  it('with CloudTrail: an event of the service naming the OLD credential after the hand-out is use', async () => {
    ctMock
      .on(LookupEventsCommand)
      .resolves({ Events: [event(OLD_ID), event(undefined, 's3.amazonaws.com')] });

    const adoption = await checkLastUsed(deps(true), serviceStateWithNewKey());

    expect(adoption).toMatchObject({
      inUse: true,
      lastUsedDate: daysAgo(2).toISOString(),
      lastUsedService: SERVICE,
      recentCallers: ['GitPull from 203.0.113.7 (git/2.45; the OLD credential)'],
      lastUseTracked: false,
    });
    expect(inputsOf(ctMock.commandCalls(LookupEventsCommand))).toEqual([
      {
        LookupAttributes: [{ AttributeKey: 'Username', AttributeValue: USER }],
        // From Q less the grace.
        StartTime: new Date(NEW_CREATED.getTime() - 60_000),
        EndTime: NOW,
        MaxResults: 20,
      },
    ]);
  });

  it('with CloudTrail: events it cannot pin to the old credential are listed, not counted as its use', async () => {
    ctMock.on(LookupEventsCommand).resolves({ Events: [event(undefined), event(NEW_ID)] });

    const adoption = await checkLastUsed(deps(true), serviceStateWithNewKey());

    expect(adoption.inUse).toBe(false);
    expect(adoption.recentCallers).toEqual([
      'GitPull from 203.0.113.7 (git/2.45; credential not recorded)',
      `GitPull from 203.0.113.7 (git/2.45; ${NEW_ID})`,
    ]);
  });
});

describe('the call budget its Lambda timeout is derived from', () => {
  it('check-last-used: its longest path (use found, CloudTrail asked who) makes exactly its hub-path calls (STEPS[check-last-used].calls less memberAccountCalls)', async () => {
    // Prepare
    usedAt(daysAgo(1));
    ctMock
      .on(LookupEventsCommand)
      .resolves({ Events: [cloudTrailEvent('SendEmail', '198.51.100.2', 'Boto3/1.34')] });

    // Act
    const adoption = await checkLastUsed(deps({ REKEY_CLOUDTRAIL_LOOKUP: true }), stateWithNewKey());

    // Assess
    expect(adoption.inUse).toBe(true);
    expect(callOrder(iamMock, ctMock)).toEqual(['GetAccessKeyLastUsed', 'LookupEvents']);
    expect(callOrder(iamMock, ctMock)).toHaveLength(hubPathCalls('check-last-used'));
  });
});
