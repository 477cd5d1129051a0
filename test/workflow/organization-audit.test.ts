/**
 * The organization audit end to end on the local engine: the OrganizationAudit state machine
 * extracted from the template synthesized with organization (cli/definition.ts, asl-validator
 * included), run by aws-local-stepfunctions with the real handlers (organization-accounts, then
 * the audit in its account and aggregate modes), each Lambda under its deployed role and, inside
 * a member account, under its member role there; moto with request signing on.
 *
 * The organization: the hub and six members. A and B have the same users (some keys 100 days
 * old and never used, the others fresh), C only fresh keys, D is excluded by the scope, E is
 * suspended, F lacks the audit's member role. MaxConcurrency is 2.
 */
import { gunzipSync } from 'node:zlib';
import { EventBridgeClient, RemoveTargetsCommand } from '@aws-sdk/client-eventbridge';
import aslValidator from 'asl-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExecutionEvent, RotationResult } from '../../cli/local-runner.ts';
import { ORGANIZATION_AUDIT_STATE as STATE } from '../../contract/states.ts';
import { ORGANIZATION_RESULTS as COL } from '../../contract/tables.ts';
import { executionNameFor } from '../../lambdas/audit/actions.ts';
import { forgetMemberSessions } from '../../lambdas/shared/member-account.ts';
import {
  mapConcurrency,
  type RecordedCall,
  recordingRoles,
  resultsOf,
  rotationExecutions,
  runOrganizationAudit,
} from '../../support/organization-audit.ts';
import {
  expectNoSecretsIn,
  type Notification,
  startWorld,
  type World,
  type WorldAccount,
} from './harness.ts';

const CONCURRENCY = 2;
const USERS = 20;
/**
 * Few findings per account: moto delivers each matching event to the harness's SQS rule inside
 * the PutEvents request (about 0.35 s each), and two accounts' batches at once outran the SDK's
 * 4 s request timeout with 5 old keys each.
 */
const OLD = 2;
const OLD_DAYS = 100;
const DAY = 86_400;

let world: World;
let hub: WorldAccount;
let a: WorldAccount;
let b: WorldAccount;
let c: WorldAccount;
let d: WorldAccount;
let e: WorldAccount;
let f: WorldAccount;
const admin = () => ({ endpoint: world.moto.endpoint, region: 'us-east-1', credentials: world.admin });

/** A's and B's users: the first OLD with a key OLD_DAYS old, never used; the others fresh. */
const userNames = Array.from({ length: USERS }, (_, i) => `svc-${String(i).padStart(2, '0')}`);
const oldUsers = userNames.slice(0, OLD);
const oldKeyIds = new Map<string, string[]>();

/** Seeds every account at once: the old keys with the clock moved back, then the fresh ones. */
async function seedUsers(withOld: readonly WorldAccount[], fresh: readonly WorldAccount[]): Promise<void> {
  world.clock.advance(-OLD_DAYS * DAY);
  try {
    await Promise.all(
      withOld.map(async (account) => {
        const ids: string[] = [];
        for (const userName of oldUsers) {
          const [key] = await account.createUser(userName, { path: '/svc/' });
          ids.push(key?.accessKeyId ?? '');
        }
        oldKeyIds.set(account.accountId, ids);
      }),
    );
  } finally {
    world.clock.advance(OLD_DAYS * DAY);
  }
  await Promise.all(
    [...withOld, ...fresh].map(async (account) => {
      for (const userName of withOld.includes(account) ? userNames.slice(OLD) : userNames)
        await account.createUser(userName, { path: '/svc/' });
    }),
  );
}

beforeAll(async () => {
  world = await startWorld({
    // moto lacks ListServiceSpecificCredentials (test/workflow/service-credentials.test.ts covers it).
    config: { userPathPrefix: '/svc/', auditServiceCredentials: false },
    organization: {
      members: [
        { name: 'old-a' },
        { name: 'old-b' },
        { name: 'fresh-c' },
        { name: 'excluded-d' },
        { name: 'suspended-e' },
        { name: 'no-role-f' },
      ],
      config: (seeded) => ({
        exclude: { accounts: [seeded.members[3]?.accountId ?? ''] },
        auditConcurrency: CONCURRENCY,
      }),
      withoutMemberRoles: { 5: ['audit'] },
    },
    organizationAudit: true,
    quiet: true,
  });
  [hub, a, b, c, d, e, f] = world.accounts as [
    WorldAccount,
    WorldAccount,
    WorldAccount,
    WorldAccount,
    WorldAccount,
    WorldAccount,
    WorldAccount,
  ];
  // The hub's users: fresh, under the path; D and E would have findings if they were audited.
  await seedUsers([a, b, d, e, f], [hub, c]);
  await world.organization?.suspend(e.accountId);
  // moto delivers each event a rule matches inside the PutEvents request (about 0.35 s each):
  // with the harness's rule to SQS, two accounts' batches at once outran the SDK's 4 s request
  // timeout on this loaded machine. The events are read from the calls instead (recordingRoles).
  const events = new EventBridgeClient(admin());
  await events.send(new RemoveTargetsCommand({ Rule: 'rekey-test', Ids: ['queue'] }));
  events.destroy();
  await world.drainNotifications();
}, 300_000);

afterAll(async () => {
  await world?.stop();
});

const audit = () => {
  const loaded = world.organizationAudit?.loaded;
  if (!loaded) throw new Error('no organization audit in the world');
  return loaded;
};

async function run(input: unknown, executionName: string) {
  const calls: RecordedCall[] = [];
  forgetMemberSessions();
  const result = await runOrganizationAudit({
    loaded: audit(),
    env: world.env,
    roles: recordingRoles(world.roles, calls),
    input: input as never,
    executionName,
  });
  return { result, calls, notifications: await world.drainNotifications() };
}

/** Every call of an account's audit, counted by action. */
const callsOf = (calls: readonly RecordedCall[], accountId: string) => {
  const counted: Record<string, number> = {};
  for (const call of calls.filter((x) => x.audited === accountId))
    counted[call.action] = (counted[call.action] ?? 0) + 1;
  return counted;
};

type Finding = { accountId?: string; userName: string; type: string };
const findingsOf = (item: Record<string, unknown> | undefined): Finding[] => {
  const bytes = (item?.[COL.findings] as { B?: Uint8Array } | undefined)?.B;
  return bytes ? (JSON.parse(gunzipSync(bytes).toString('utf8')) as Finding[]) : [];
};
const statusOf = (item: Record<string, unknown> | undefined) =>
  (item?.[COL.status] as { S?: string } | undefined)?.S;

describe('the organization audit definition', () => {
  it('is the synthesized OrganizationAudit, valid ASL, every Task bound to a standalone Lambda', () => {
    const { definition, bindings } = audit();
    const validation = aslValidator(structuredClone(definition), { checkArn: true, checkPaths: true });
    expect(validation.isValid, validation.errorsText('\n')).toBe(true);
    expect(bindings).toEqual({
      [STATE.listAccounts]: 'organization-accounts',
      [STATE.auditOneAccount]: 'audit',
      [STATE.sendDigest]: 'audit',
    });
    const map = definition.States[STATE.auditEachAccount] as { MaxConcurrency?: number };
    expect(map.MaxConcurrency).toBe(CONCURRENCY);
  });
});

describe('an organization audit run over every account in scope', () => {
  let result: RotationResult;
  let calls: RecordedCall[];
  let notifications: Notification;
  const RUN = 'org-audit-everything';

  beforeAll(async () => {
    ({ result, calls, notifications } = await run({}, RUN));
  }, 300_000);

  it('fails with OrganizationAuditIncomplete naming F, after the digest went out', () => {
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('OrganizationAuditIncomplete');
    expect(result.cause).toContain(`failed: ${f.accountId}`);
    const digest = result.tasks.filter((t) => t.state === STATE.sendDigest);
    expect(digest).toHaveLength(1);
    expect(digest[0]?.error?.name).toBe('OrganizationAuditIncomplete');
    // The digest's SNS Publish came before the error, from the aggregate itself.
    const aggregateCalls = calls.filter((x) => x.lambda === 'audit' && x.audited === undefined);
    expect(aggregateCalls.map((x) => x.action)).toContain('sns:Publish');
    expect(notifications.sns).toHaveLength(1);
  });

  it('audits the hub, A, B, C and F (listed in this order); never D (excluded) nor E (suspended)', () => {
    const listing = result.tasks.find((t) => t.state === STATE.listAccounts);
    const listed = [a, b, c, f].map((x) => x.accountId).sort();
    expect(listing?.output).toEqual({
      accounts: [hub.accountId, ...listed].map((accountId) => ({ accountId })),
      skipped: 2,
    });
    const audited = result.tasks.filter((t) => t.state === STATE.auditOneAccount);
    expect(audited.map((t) => (t.input as { accountId: string }).accountId).sort()).toEqual(
      [hub.accountId, ...listed].sort(),
    );
    // One attempt each: no retry made the calls below differ.
    expect(audited.filter((t) => t.error && t.error.name !== 'MemberRoleUnavailable')).toEqual([]);
    // No call of any Lambda acted in D or E, nor was made for them.
    for (const outside of [d, e]) {
      expect(calls.filter((x) => x.account === outside.accountId || x.audited === outside.accountId)).toEqual(
        [],
      );
    }
    // Calls were recorded in the audited members (the check above could not pass vacuously).
    expect(calls.some((x) => x.account === a.accountId && x.action.startsWith('iam:'))).toBe(true);
  });

  it("records A's and B's findings with their accountId in the results table", async () => {
    const results = await resultsOf(admin(), RUN);
    expect([...results.keys()].sort()).toEqual([hub, a, b, c, f].map((x) => x.accountId).sort());
    for (const member of [a, b]) {
      const item = results.get(member.accountId);
      expect(statusOf(item)).toBe('audited');
      const findings = findingsOf(item);
      expect(findings.map((x) => `${x.type}:${x.userName}`).sort()).toEqual(
        oldUsers.flatMap((u) => [`OLD_KEY:${u}`, `UNUSED_KEY:${u}`]).sort(),
      );
      expect(new Set(findings.map((x) => x.accountId))).toEqual(new Set([member.accountId]));
    }
    expect(findingsOf(results.get(c.accountId))).toEqual([]);
    expect(findingsOf(results.get(hub.accountId))).toEqual([]);
    const failed = results.get(f.accountId);
    expect(statusOf(failed)).toBe('failed');
    expect((failed?.[COL.error] as { M?: { name?: { S?: string } } } | undefined)?.M?.name?.S).toBe(
      'MemberRoleUnavailable',
    );
  });

  it('sends one digest over every account: their findings with their account, F named as failed', () => {
    const [digest = ''] = notifications.sns;
    for (const member of [a, b]) {
      for (const userName of oldUsers)
        expect(digest).toMatch(new RegExp(`${member.accountId}\\s+OLD_KEY\\s+${userName}\\b`));
    }
    expect(digest).toMatch(new RegExp(`${f.accountId}\\s+0\\s+0\\s+0\\s+FAILED: MemberRoleUnavailable`));
    expect(digest).toMatch(new RegExp(`${c.accountId}\\s+${USERS + 1}\\s+0\\s+0\\s+audited`));
    for (const outside of [d, e]) expect(digest).not.toContain(outside.accountId);
    // Each finding's event carries its account, and only A's and B's audits sent any.
    const sent = calls.filter((x) => x.action === 'events:PutEvents');
    const details = sent.flatMap((x) =>
      (x.entries as Array<{ Detail?: string }>).map((entry) => ({
        audited: x.audited,
        detail: JSON.parse(entry.Detail ?? '{}') as { accountId?: string; userName?: string },
      })),
    );
    for (const member of [a, b]) {
      const own = details.filter((x) => x.audited === member.accountId);
      expect(new Set(own.map((x) => x.detail.userName))).toEqual(new Set(oldUsers));
      expect(new Set(own.map((x) => x.detail.accountId))).toEqual(new Set([member.accountId]));
    }
    expect(details.filter((x) => x.audited !== a.accountId && x.audited !== b.accountId)).toEqual([]);
  });

  it("starts each old key's rotation in the hub's state machine under the member's execution name", async () => {
    const names = await rotationExecutions(admin(), world.organizationAudit?.stateMachineArn ?? '');
    const expected = [a, b].flatMap((member) =>
      oldUsers.map((userName, i) =>
        executionNameFor(userName, oldKeyIds.get(member.accountId)?.[i] ?? '', 1, member.accountId),
      ),
    );
    expect(names.sort()).toEqual(expected.sort());
  });

  it('keeps only ids and counts in the state: the Map discards its results', async () => {
    const counts = result.tasks
      .filter((t) => t.state === STATE.auditOneAccount && t.output !== undefined)
      .map((t) => t.output);
    expect(counts).toContainEqual({
      accountId: a.accountId,
      // The credential report also holds the account's administrator (outside the path).
      usersScanned: USERS + 1,
      findings: 2 * OLD,
      rotationsStarted: OLD,
    });
    for (const output of counts)
      expect(Object.keys(output as object).sort()).toEqual([
        'accountId',
        'findings',
        'rotationsStarted',
        'usersScanned',
      ]);
    const exited = result.events.filter((x) => x.type === 'StateExited') as Array<
      ExecutionEvent & { state: { name: string; output?: unknown } }
    >;
    const afterMap = exited.find((x) => x.state.name === STATE.auditEachAccount)?.state.output;
    expect(afterMap).toBeDefined();
    const text = JSON.stringify(result.events);
    expect(text).not.toContain('OLD_KEY');
    expect(text).not.toContain('svc-00');
    await expectNoSecretsIn(world, {
      'the execution history': result.events,
      'the task inputs and outputs': result.tasks,
      'the logs': world.logs.join(''),
      'the notifications': notifications,
      'the events sent': calls.filter((x) => x.entries),
    });
  });

  it(`audits at most ${CONCURRENCY} accounts at once, and does reach ${CONCURRENCY}`, () => {
    const { iterations, maxRunning } = mapConcurrency(result.events);
    expect(iterations).toBe(5);
    expect(maxRunning).toBe(CONCURRENCY);
  });

  it('makes the same calls in A as in B (same users, same findings)', () => {
    const inA = callsOf(calls, a.accountId);
    expect(Object.keys(inA).length).toBeGreaterThan(3);
    expect(callsOf(calls, b.accountId)).toEqual(inA);
  });
});

describe('an organization audit run naming its accounts, dry run', () => {
  it('succeeds with totals only in its output, the hub and F left out of the request', async () => {
    const { result, notifications } = await run(
      { accounts: [a.accountId, c.accountId], dryRun: true },
      'org-audit-named',
    );
    expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
    const listing = result.tasks.find((t) => t.state === STATE.listAccounts)?.output;
    expect(listing).toEqual({
      accounts: [a, c]
        .map((x) => x.accountId)
        .sort()
        .map((accountId) => ({ accountId })),
      skipped: 0,
    });
    // The execution's output is the aggregate's totals: counts only (a dry run counts the
    // rotations it would start).
    expect(result.output).toEqual({
      accounts: 2,
      audited: 2,
      failed: 0,
      findings: 2 * OLD,
      rotationsStarted: OLD,
    });
    expect(notifications.sns).toEqual([]);
  });

  it('refuses an excluded account before any audit (AccountsNotInScope)', async () => {
    const { result } = await run({ accounts: [d.accountId] }, 'org-audit-refused');
    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('AccountsNotInScope');
    expect(result.tasks.map((t) => t.state)).toEqual([STATE.listAccounts]);
  });
});
