/**
 * Owner routing in the audit: the owner tag becomes each finding's `owner` (or a note on a tag in
 * neither form), the events carry it, and besides the full digest (attribute owner `*`) each owner
 * gets a digest of its own findings only, with the message attribute `owner`.
 */
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { ownerFromTag } from '../../../contract/owner.ts';
import { publishAlerts } from '../../../lambdas/audit/alerts.ts';
import { evaluateFindings } from '../../../lambdas/audit/findings.ts';
import { ownerReports } from '../../../lambdas/audit/owners.ts';
import { fakeClock, TOPIC_ARN } from '../../support/lambda-fixtures.ts';
import { ACTIONS, FINDINGS, report } from './fixtures.ts';
import { ago, NOW, userDetail, usersOf } from './helpers.ts';

const sns = new SNSClient({ region: 'us-east-1' });
const eventBridge = new EventBridgeClient({ region: 'us-east-1' });
const snsMock = mockClient(sns);
const ebMock = mockClient(eventBridge);

beforeEach(() => {
  snsMock.reset();
  ebMock.reset();
  snsMock.on(PublishCommand).resolves({ MessageId: 'm-1' });
  ebMock.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => ({
    FailedEntryCount: 0,
    Entries: input.Entries.map(() => ({ EventId: 'e' })),
  }));
});

describe('ownerFromTag', () => {
  it.each(['team-a', 'platform:payments/ci', 'A.b_c-9', 'x'.repeat(64), 'alice@example.com'])(
    '%s is an owner',
    (v) => {
      expect(ownerFromTag('rekey:owner', v)).toEqual({ owner: v });
    },
  );

  it.each(['', 'a b', 'x'.repeat(65), '@example.com', 'team#1', 'alice@'])(
    '%j is a note, not an owner',
    (v) => {
      const { owner, note } = ownerFromTag('rekey:owner', v);
      expect(owner).toBeUndefined();
      expect(note).toMatch(/^the rekey:owner tag \(.*\) is neither an email address nor a team id/);
    },
  );

  it('no tag: neither an owner nor a note', () => {
    expect(ownerFromTag('rekey:owner', undefined)).toEqual({});
  });
});

describe('findings carry their user’s owner', () => {
  const row = (user: string) => ({
    user,
    arn: `arn:aws:iam::123456789012:user/${user}`,
    isRoot: false,
    keys: [
      { slot: 1 as const, active: true, lastRotated: ago(120), lastUsedDate: ago(1) },
      { slot: 2 as const, active: false, lastRotated: null, lastUsedDate: null },
    ],
  });

  it('from the configured tag; a tag in neither form is a note on every finding of that user', () => {
    const users = usersOf(
      userDetail('alice', { 'team:owner': 'team-a' }),
      userDetail('bob', { 'team:owner': 'not an owner' }),
      userDetail('carol', { 'rekey:owner': 'ignored: not the configured tag' }),
    );
    const findings = evaluateFindings([row('alice'), row('bob'), row('carol')] as never, users, {
      now: NOW,
      thresholds: { maxKeyAgeDays: 90, unusedDays: 45, warnDays: 14 },
      exemptTag: 'rekey:exempt',
      ownerTag: 'team:owner',
    });
    const byUser = Object.fromEntries(findings.map((f) => [f.userName, f]));
    expect(byUser.alice?.owner).toBe('team-a');
    expect(byUser.alice?.ownerNote).toBeUndefined();
    expect(byUser.bob?.owner).toBeUndefined();
    expect(byUser.bob?.ownerNote).toContain('the team:owner tag ("not an owner")');
    expect(byUser.carol).not.toHaveProperty('owner');
    expect(byUser.carol).not.toHaveProperty('ownerNote');
  });
});

describe('one digest per owner', () => {
  const [a, b, c, ...rest] = FINDINGS;
  if (!a || !b || !c) throw new Error('fixtures changed');
  const owned = [
    { ...a, owner: 'team-a' },
    { ...b, owner: 'bob@example.com' },
    { ...c, ownerNote: 'the rekey:owner tag ("??") is neither an email address nor a team id' },
    ...rest.map((f) => (f.userName === a.userName ? { ...f, owner: 'team-a' } : f)),
  ];
  const run = report({ findings: owned, actions: ACTIONS });

  it('narrows the findings, the actions and the cleared findings to that owner’s users', () => {
    const reports = ownerReports(run);
    expect(reports.map((r) => r.owner)).toEqual(['bob@example.com', 'team-a']);
    for (const r of reports) {
      const users = new Set(r.findings.map((f) => f.userName));
      expect(r.findings.every((f) => f.owner === r.owner)).toBe(true);
      expect(r.actions.every((x) => users.has(x.userName))).toBe(true);
    }
  });

  it('publishes the full digest (owner *) and each owner’s, and the events carry the owner', async () => {
    await publishAlerts(
      { sns, eventBridge, clock: fakeClock(), topicArn: TOPIC_ARN, eventBusName: 'default' },
      run,
    );

    const published = snsMock.commandCalls(PublishCommand).map((call) => call.args[0].input);
    expect(published.map((p) => p.MessageAttributes?.owner?.StringValue)).toEqual([
      '*',
      'bob@example.com',
      'team-a',
    ]);
    const [full, bob, team] = published;
    expect(full?.Subject).toMatch(/^\[rekey\] Access key audit: /);
    expect(full?.Message).toContain('Owner tags that name no owner');
    expect(full?.Message).toContain(`${c.userName}: the rekey:owner tag ("??")`);
    expect(bob?.Subject).toMatch(/^\[rekey\] Access key audit for bob@example.com: 1 finding /);
    expect(bob?.Message).toContain('Owner:              bob@example.com');
    expect(bob?.Message).toContain(b.userName);
    for (const other of owned.filter((f) => f.owner !== 'bob@example.com'))
      expect(bob?.Message).not.toContain(`${other.userName} `);
    expect(team?.Message).toContain(a.userName);
    expect(team?.Message).not.toContain(`${b.userName} `);

    const details = ebMock
      .commandCalls(PutEventsCommand)
      .flatMap((call) => call.args[0].input.Entries ?? [])
      .map((e) => JSON.parse(e.Detail ?? '{}') as Record<string, unknown>);
    expect(details.map((d) => [d.userName, d.owner])).toEqual(
      owned.map((f) => [f.userName, f.owner ?? null]),
    );
    expect(details.find((d) => d.userName === c.userName)?.ownerNote).toMatch(/neither an email address/);
  });
});
