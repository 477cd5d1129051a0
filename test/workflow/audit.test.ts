/**
 * The audit end to end against the moto emulator: 220 users whose keys were created and last used
 * at chosen days in the past (moto's clock moved by cli/moto-clock.py), covering every
 * finding type moto can produce and each boundary; then the audit runs with the real "now".
 *
 * moto's credential report has no `<root_account>` row, so ROOT_ACCESS_KEY is covered by the unit
 * tests (test/lambdas/audit/findings.test.ts) only.
 */

import { DeleteAccessKeyCommand, ListAccessKeysCommand, UpdateAccessKeyCommand } from '@aws-sdk/client-iam';
import { GetFindingsCommand } from '@aws-sdk/client-securityhub';
import { DescribeExecutionCommand, StartExecutionCommand, StopExecutionCommand } from '@aws-sdk/client-sfn';
import { CommanderError } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditCommand } from '../../cli/audit.ts';
import { executionNameFor, SfnRotationStarter } from '../../lambdas/audit/actions.ts';
import { AccessDenied } from '../../lambdas/shared/clients/invocation.ts';
import {
  type AuditWorld,
  pagedServiceCredentials,
  type SeededKey,
  startAuditWorld,
  type UserSpec,
} from '../../support/audit-world.ts';
import { ANY_CREDENTIALS, AwsEnv } from '../../support/aws.ts';
import { metricPoints } from '../support/emf.ts';
import { withoutAction } from '../support/role-mutations.ts';
import { expectNoSecrets } from '../support/secrets.ts';

/** A group of users with the same keys and the findings each of them must get. */
interface Group {
  name: string;
  count: number;
  keys: UserSpec['keys'];
  path?: string;
  tags?: Record<string, string>;
  expected: string[];
}

const USED_YESTERDAY = 1;
const GROUPS: Group[] = [
  // Age boundaries (every key used yesterday, so only its age counts).
  { name: 'age-76', count: 6, keys: [{ createdDaysAgo: 76, usedDaysAgo: USED_YESTERDAY }], expected: [] },
  {
    name: 'age-77',
    count: 6,
    keys: [{ createdDaysAgo: 77, usedDaysAgo: USED_YESTERDAY }],
    expected: ['EXPIRING_KEY'],
  },
  {
    name: 'age-89',
    count: 6,
    keys: [{ createdDaysAgo: 89, usedDaysAgo: USED_YESTERDAY }],
    expected: ['EXPIRING_KEY'],
  },
  {
    name: 'age-90',
    count: 6,
    keys: [{ createdDaysAgo: 90, usedDaysAgo: USED_YESTERDAY }],
    expected: ['EXPIRING_KEY'],
  },
  {
    name: 'age-91',
    count: 6,
    keys: [{ createdDaysAgo: 91, usedDaysAgo: USED_YESTERDAY }],
    expected: ['OLD_KEY'],
  },
  {
    name: 'age-200',
    count: 6,
    keys: [{ createdDaysAgo: 200, usedDaysAgo: USED_YESTERDAY }],
    expected: ['OLD_KEY'],
  },
  // Unused boundaries (young enough keys, so only idleness counts).
  { name: 'idle-44', count: 6, keys: [{ createdDaysAgo: 60, usedDaysAgo: 44 }], expected: [] },
  { name: 'idle-45', count: 6, keys: [{ createdDaysAgo: 60, usedDaysAgo: 45 }], expected: ['UNUSED_KEY'] },
  { name: 'never-44', count: 6, keys: [{ createdDaysAgo: 44 }], expected: [] },
  { name: 'never-46', count: 6, keys: [{ createdDaysAgo: 46 }], expected: ['UNUSED_KEY'] },
  { name: 'old-never-used', count: 4, keys: [{ createdDaysAgo: 120 }], expected: ['OLD_KEY', 'UNUSED_KEY'] },
  // Two active keys; one active and one inactive-by-never-created is the normal case above.
  {
    name: 'two-active',
    count: 5,
    keys: [
      { createdDaysAgo: 20, usedDaysAgo: USED_YESTERDAY },
      { createdDaysAgo: 5, usedDaysAgo: USED_YESTERDAY },
    ],
    expected: ['TWO_ACTIVE_KEYS'],
  },
  // Exemptions, protection and scope.
  {
    name: 'exempt',
    count: 5,
    keys: [{ createdDaysAgo: 150, usedDaysAgo: USED_YESTERDAY }],
    tags: { 'rekey:exempt': 'until=2099-12-31 vendor SMTP relay' },
    expected: ['OLD_KEY'],
  },
  {
    name: 'expired',
    count: 5,
    keys: [{ createdDaysAgo: 150, usedDaysAgo: USED_YESTERDAY }],
    tags: { 'rekey:exempt': 'until=2020-01-31 migration ticket' },
    expected: ['OLD_KEY'],
  },
  {
    name: 'protected',
    count: 2,
    keys: [{ createdDaysAgo: 150, usedDaysAgo: USED_YESTERDAY }],
    expected: ['OLD_KEY'],
  },
  {
    name: 'legacy',
    count: 3,
    path: '/legacy/',
    keys: [{ createdDaysAgo: 150, usedDaysAgo: USED_YESTERDAY }],
    expected: ['OLD_KEY'],
  },
  // Healthy users: recent keys, used recently.
  { name: 'healthy', count: 136, keys: [{ createdDaysAgo: 10, usedDaysAgo: USED_YESTERDAY }], expected: [] },
];

const users: Array<UserSpec & { group: Group }> = GROUPS.flatMap((group) =>
  Array.from({ length: group.count }, (_, i) => ({
    userName: `${group.name}-${String(i).padStart(3, '0')}`,
    path: group.path ?? '/svc/',
    ...(group.tags ? { tags: group.tags } : {}),
    keys: group.keys,
    group,
  })),
);
const expectedFindings = users.flatMap((u) => u.group.expected.map((type) => `${type}:${u.userName}`)).sort();
/** The deployment configuration every audit below runs under (its role is made from it too). */
const CONFIG = { protectedUsers: ['protected-000', 'protected-001'], userPathPrefix: '/svc/' };
/** The OLD_KEY users the audit may rotate: not exempt, not protected, in scope. */
const ROTATABLE = users.filter(
  (u) =>
    u.group.expected.includes('OLD_KEY') &&
    ['age-91', 'age-200', 'old-never-used', 'expired'].includes(u.group.name),
);

/** The users whose events an EventBridge rule routes to a queue, as a Slack rule would. */
const ROUTED = ['age-91-000', 'exempt-000', 'two-active-000'];

let world: AuditWorld;
let keys: SeededKey[];
const keyOf = (userName: string) => keys.find((k) => k.userName === userName) as SeededKey;

beforeAll(async () => {
  world = await startAuditWorld({ routedUsers: ROUTED });
  const started = Date.now();
  keys = await world.seed(users);
  console.error(
    `seeded ${users.length} users / ${keys.length} keys in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}, 300_000);
afterAll(async () => {
  await world?.stop();
});

const expectNoWorldSecrets = (what: string, text: string) =>
  expectNoSecrets({ secrets: world.secrets }, { [what]: text });

describe('the audit against the emulator', () => {
  it(`has ${users.length} users and expects ${expectedFindings.length} findings`, () => {
    expect(users.length).toBeGreaterThanOrEqual(200);
    expect(ROTATABLE).toHaveLength(21);
    expect(new Set(expectedFindings.map((f) => f.split(':')[0]))).toEqual(
      new Set(['OLD_KEY', 'EXPIRING_KEY', 'UNUSED_KEY', 'TWO_ACTIVE_KEYS']),
    );
  });

  it('finds exactly the expected findings, with key ids, ages and last use', async () => {
    const { summary, calls, requests } = await world.audit(CONFIG, { dryRun: true });

    expect(summary.usersScanned).toBe(users.length);
    expect(summary.dryRun).toBe(true);
    // The scan cost: one report, one authorization-details page, one ListAccessKeys per user with findings.
    const usersWithFindings = new Set(expectedFindings.map((f) => f.split(':')[1])).size;
    expect(calls.toJSON()).toEqual({
      GenerateCredentialReport: expect.any(Number),
      GetCredentialReport: 1,
      GetAccountAuthorizationDetails: 1,
      ListAccessKeys: usersWithFindings,
    });
    expect(Object.fromEntries(requests)).toEqual(calls.toJSON());
    expect(summary.rotations).toEqual({ WOULD_START: 21, SKIPPED: 5 + 2 + 3 });
  });

  it('a second run takes the key ids from the cache, as the audit role: no ListAccessKeys, the same findings', async () => {
    // Prepare: the run above (cold) wrote every key id it listed.
    const cold = await world.audit(CONFIG, { dryRun: true });

    // Act
    const warm = await world.audit(CONFIG, { dryRun: true });

    // Assert: the deployed role may read the table (a refused read would be a failure and a miss).
    expect(warm.summary.keyIdCache).toMatchObject({ misses: 0, failures: 0 });
    expect(warm.summary.keyIdCache?.hits).toBeGreaterThan(0);
    expect(warm.calls.toJSON()).not.toHaveProperty('ListAccessKeys');
    expect(warm.summary.findings).toEqual(cold.summary.findings);
    expect(warm.summary.rotations).toEqual(cold.summary.rotations);
  });

  it('without dynamodb:BatchGetItem on its role the cache fails open: every key listed again, the failure counted', async () => {
    // Act
    const run = await world.audit(CONFIG, {
      dryRun: true,
      mutate: withoutAction('audit', 'dynamodb:BatchGetItem'),
    });

    // Assert: the harness refused the read, and the audit fell back to IAM with the same findings.
    expect(run.summary.keyIdCache?.failures).toBeGreaterThan(0);
    expect(run.summary.keyIdCache?.hits).toBe(0);
    expect(run.calls.toJSON().ListAccessKeys).toBeGreaterThan(0);
  });

  it('the CLI runs the same scan, as the audit role: --json, and --fail-on exits 3', async () => {
    let stdout = '';
    let stderr = '';
    // As a user runs it against a local moto: AWS_ENDPOINT_URL and their own credentials. The
    // command finds the emulator and scans as the audit Lambda's role (signing stays off here
    // outside world.audit, so rekey's own check of the role is what refuses a call).
    const shell = new AwsEnv(world.moto.endpoint, ANY_CREDENTIALS).apply();
    try {
      const command = auditCommand({ stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
      // moto does not implement ListServiceSpecificCredentials: access keys only.
      await command.parseAsync(['--json', '--no-service-credentials'], { from: 'user' });
    } finally {
      shell.restore();
    }
    expect(stderr).toContain(
      `Emulator at ${world.moto.endpoint}: the scan runs as the audit Lambda's deployed role`,
    );
    const document = JSON.parse(stdout) as {
      findings: Array<{
        type: string;
        userName: string;
        accessKeyId: string;
        ageDays: number;
        lastUsedDate: string | null;
      }>;
    };
    expect(document.findings.map((f) => `${f.type}:${f.userName}`).sort()).toEqual(expectedFindings);

    const byUser = (type: string, userName: string) =>
      document.findings.find((f) => f.type === type && f.userName === userName);
    expect(byUser('OLD_KEY', 'age-91-000')).toMatchObject({
      accessKeyId: keyOf('age-91-000').accessKeyId,
      ageDays: 91,
    });
    expect(byUser('EXPIRING_KEY', 'age-90-000')?.ageDays).toBe(90);
    expect(byUser('EXPIRING_KEY', 'age-77-000')?.ageDays).toBe(77);
    const lastUsed = new Date(byUser('UNUSED_KEY', 'idle-45-000')?.lastUsedDate ?? 0);
    expect(Math.round((Date.now() - lastUsed.getTime()) / 86_400_000)).toBe(45);
    expect(byUser('UNUSED_KEY', 'never-46-000')).toMatchObject({ ageDays: 46, lastUsedDate: null });
    expect(byUser('OLD_KEY', 'exempt-000')).toMatchObject({ exemption: { expired: false } });
    expect(byUser('OLD_KEY', 'expired-000')).toMatchObject({
      exemption: { reason: 'migration ticket', expired: true },
    });
    const two = byUser('TWO_ACTIVE_KEYS', 'two-active-000');
    expect(two?.accessKeyId).toBe(keys.find((k) => k.userName === 'two-active-000')?.accessKeyId);
    expectNoWorldSecrets('the CLI output', stdout);

    const failing = auditCommand({ iam: world.iam, stdout: () => {}, stderr: () => {} });
    const error = await failing
      .parseAsync(['--fail-on', 'TWO_ACTIVE_KEYS', '--no-service-credentials'], { from: 'user' })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(CommanderError);
    expect((error as CommanderError).exitCode).toBe(3);
  });

  it('starts at most maxRotationsPerRun new rotations per run, and a re-run starts no duplicate', async () => {
    // Act: four runs in a row with a limit of 8 new rotations per run.
    const config = { ...CONFIG, maxRotationsPerRun: 8 };
    const runs = [];
    const executions = [];
    for (let i = 0; i < 4; i++) {
      runs.push((await world.audit(config)).summary.rotations);
      executions.push(await world.executionNames());
    }

    // Assess: 10 refusals every time (5 exempt, 2 protected, 3 out of scope), 8 + 8 + 5 new starts.
    expect(runs).toEqual([
      { STARTED: 8, SKIPPED: 10 + 13 },
      { ALREADY_STARTED: 8, STARTED: 8, SKIPPED: 10 + 5 },
      { ALREADY_STARTED: 16, STARTED: 5, SKIPPED: 10 },
      { ALREADY_STARTED: 21, SKIPPED: 10 },
    ]);
    expect(executions.map((e) => e.length)).toEqual([8, 16, 21, 21]);
    const expectedNames = ROTATABLE.map((u) =>
      executionNameFor(u.userName, keyOf(u.userName).accessKeyId),
    ).sort();
    expect([...(executions[3] ?? [])].sort()).toEqual(expectedNames);
    await world.drainDigests();
    await world.drainEvents();
    world.drainSentEvents();
  });

  it('the emulator keeps execution names unique as Step Functions does (the starter relies on it)', async () => {
    // Same name and input: the running execution comes back (which is why the starter asks first).
    const start = (input: string) =>
      world.sfn.send(
        new StartExecutionCommand({ stateMachineArn: world.stateMachineArn, name: 'probe', input }),
      );
    const first = await start('{"userName":"probe"}');
    const again = await start('{"userName":"probe"}');
    expect(again.executionArn).toBe(first.executionArn);
    // Same name, other input (e.g. a later day's age in the reason): ExecutionAlreadyExists.
    await expect(start('{"userName":"probe","reason":"later"}')).rejects.toMatchObject({
      name: 'ExecutionAlreadyExists',
    });
    const starter = new SfnRotationStarter(world.sfn, world.stateMachineArn);
    await expect(
      starter.start({
        executionName: 'probe',
        userName: 'probe',
        accessKeyId: 'AKIAPROBE',
        reason: 'x',
        maxAttempts: 3,
      }),
    ).resolves.toEqual({
      status: 'ALREADY_STARTED',
      attempt: 1,
      executionName: 'probe',
      executionArn: first.executionArn,
      failedAttempts: [],
    });
  });

  it('publishes one digest per run and one event per finding: key ids, never a secret', async () => {
    const { summary, stdout } = await world.audit(CONFIG);

    const digests = await world.drainDigests();
    const sent = world.drainSentEvents();
    const routed = await world.drainEvents();
    expect(summary).toMatchObject({ digestPublished: true, eventsPublished: expectedFindings.length });
    expect(digests).toHaveLength(1);
    const digest = digests[0] ?? '';
    expect(digest).toContain(`Credential report:  generated`);
    expect(digest).toMatch(new RegExp(`Findings: ${expectedFindings.length} \\(5 of them exempt\\)`));
    expect(digest).toContain(`rotations already running:   21`);
    expect(digest).toContain(keyOf('age-91-000').accessKeyId);
    expect(digest).toContain('protected-000');
    expect(digest).toContain('exempt-000: vendor SMTP relay (until 2099-12-31)');
    // Every finding was sent as an event (moto accepted them all: the run checks FailedEntryCount).
    expect(sent).toHaveLength(expectedFindings.length);
    expect(new Set(sent.map((e) => `${e.Source}|${e.DetailType}|${e.EventBusName}`))).toEqual(
      new Set(['rekey|Stale Access Key Found|default']),
    );
    const details = sent.map((e) => JSON.parse(e.Detail ?? '{}') as Record<string, unknown>);
    expect(details.map((d) => `${d.type}:${d.userName}`).sort()).toEqual(expectedFindings);
    // The rule routed exactly the chosen users' events, as delivered events.
    expect(routed.map((e) => `${e.detail.type}:${e.detail.userName}`).sort()).toEqual(
      expectedFindings.filter((f) => ROUTED.includes(f.split(':')[1] ?? '')),
    );
    const old = routed.find((e) => e.detail.userName === 'age-91-000');
    expect(old).toMatchObject({ source: 'rekey', 'detail-type': 'Stale Access Key Found' });
    expect(old?.detail).toMatchObject({
      type: 'OLD_KEY',
      accessKeyId: keyOf('age-91-000').accessKeyId,
      ageDays: 91,
      action: { kind: 'ROTATION', status: 'ALREADY_STARTED' },
    });
    const events = { sent, routed };
    expectNoWorldSecrets('the digest', digest);
    expectNoWorldSecrets('the events', JSON.stringify(events));

    // The run's metrics, as CloudWatch reads them from the EMF lines: account-wide counts, the
    // bounded dimensions only (no user, no account).
    const points = metricPoints(stdout);
    const service = { service: 'rekey' };
    const count = (type: string) => expectedFindings.filter((f) => f.startsWith(`${type}:`)).length;
    const duration = points.find((p) => p.name === 'AuditDuration');
    expect(points).toEqual([
      {
        namespace: 'rekey',
        name: 'KeysOverMaxAge',
        unit: 'Count',
        dimensions: service,
        value: count('OLD_KEY'),
      },
      { namespace: 'rekey', name: 'OldestActiveKeyAgeDays', unit: 'Count', dimensions: service, value: 200 },
      {
        namespace: 'rekey',
        name: 'UsersInScope',
        unit: 'Count',
        dimensions: service,
        value: users.filter((u) => (u.path ?? '/').startsWith('/svc/')).length,
      },
      {
        namespace: 'rekey',
        name: 'AuditDuration',
        unit: 'Milliseconds',
        dimensions: service,
        value: duration?.value,
      },
      ...['ROOT_ACCESS_KEY', 'OLD_KEY', 'UNUSED_KEY', 'TWO_ACTIVE_KEYS', 'EXPIRING_KEY'].map((type) => ({
        namespace: 'rekey',
        name: 'Findings',
        unit: 'Count',
        dimensions: { ...service, FindingType: type },
        value: count(type),
      })),
    ]);
    expect(count('OLD_KEY')).toBeGreaterThan(0);
    expect(duration?.value).toEqual(expect.any(Number));
  });

  it('Security Hub: imports the findings, then resolves those whose condition cleared', async () => {
    const config = { ...CONFIG, securityHub: true };
    const open = async () => {
      const out = await world.securityHub.send(new GetFindingsCommand({ MaxResults: 100 }));
      const all = [...(out.Findings ?? [])];
      let token = out.NextToken;
      while (token) {
        const page = await world.securityHub.send(
          new GetFindingsCommand({ MaxResults: 100, NextToken: token }),
        );
        all.push(...(page.Findings ?? []));
        token = page.NextToken;
      }
      return all.filter((f) => f.GeneratorId === 'rekey-audit');
    };

    const first = await world.audit(config);
    expect(first.summary.securityHub).toEqual({ imported: expectedFindings.length, resolved: 0 });
    const imported = await open();
    expect(imported.filter((f) => f.RecordState === 'ACTIVE')).toHaveLength(expectedFindings.length);
    const exempt = imported.find((f) => f.Id?.includes('/OLD_KEY/exempt-000/'));
    expect(exempt?.Workflow?.Status).toBe('SUPPRESSED');
    expectNoWorldSecrets('the Security Hub findings', JSON.stringify(imported));

    // The conditions of two findings clear: an old key is deleted, an unused one deactivated.
    const oldKey = keyOf('age-91-000');
    await world.iam.send(
      new DeleteAccessKeyCommand({ UserName: oldKey.userName, AccessKeyId: oldKey.accessKeyId }),
    );
    const idleKey = keyOf('idle-45-000');
    await world.iam.send(
      new UpdateAccessKeyCommand({
        UserName: idleKey.userName,
        AccessKeyId: idleKey.accessKeyId,
        Status: 'Inactive',
      }),
    );
    expect(
      (await world.iam.send(new ListAccessKeysCommand({ UserName: oldKey.userName }))).AccessKeyMetadata,
    ).toEqual([]);

    const second = await world.audit(config);

    expect(second.summary.securityHub).toEqual({ imported: expectedFindings.length - 2, resolved: 2 });
    const after = await open();
    const resolved = after.filter((f) => f.RecordState === 'ARCHIVED');
    expect(resolved.map((f) => f.Id).sort()).toEqual([
      `rekey/123456789012/OLD_KEY/age-91-000/${oldKey.accessKeyId}`,
      `rekey/123456789012/UNUSED_KEY/idle-45-000/${idleKey.accessKeyId}`,
    ]);
    for (const f of resolved) {
      expect(f.Compliance?.Status).toBe('PASSED');
      expect(f.Workflow?.Status).toBe('RESOLVED');
    }
    expect(after.filter((f) => f.RecordState === 'ACTIVE')).toHaveLength(expectedFindings.length - 2);
  });

  it('service-specific credentials: the listing answered as IAM would (moto lacks it), the rest through the emulator', async () => {
    // Prepare: old Keyspaces credentials of an in-scope, an exempt, a protected and an out-of-scope user.
    const old = (userName: string, id: string) => ({
      UserName: userName,
      ServiceName: 'cassandra.amazonaws.com',
      ServiceSpecificCredentialId: id,
      Status: 'Active' as const,
      CreateDate: new Date(Date.now() - 120 * 86_400_000),
    });
    const answer = pagedServiceCredentials({
      'cassandra.amazonaws.com': [
        old('healthy-000', 'ACCAHEALTHY000000001'),
        old('exempt-000', 'ACCAEXEMPT0000000001'),
        old('protected-000', 'ACCAPROTECTED0000001'),
        old('legacy-000', 'ACCALEGACY0000000001'),
      ],
    });
    world.drainSentEvents();
    await world.drainEvents();
    await world.drainDigests();

    // Act
    const { summary, calls, requests } = await world.audit(CONFIG, { serviceCredentials: answer });

    // Assess: four more OLD_KEY findings, one more rotation, through the real starter.
    expect(calls.count('ListServiceSpecificCredentials')).toBe(2);
    expect(Object.fromEntries(requests)).toEqual(calls.toJSON());
    expect(summary.findings.OLD_KEY).toBe(
      expectedFindings.filter((f) => f.startsWith('OLD_KEY:')).length - 1 + 4,
    );
    const name = 'rekey-healthy-000-ACCAHEALTHY000000001';
    expect(name).toBe(executionNameFor('healthy-000', 'ACCAHEALTHY000000001'));
    expect(await world.executionNames()).toContain(name);
    const execution = await world.sfn.send(
      new DescribeExecutionCommand({
        executionArn: `${world.stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`,
      }),
    );
    expect(JSON.parse(execution.input ?? '{}')).toEqual({
      userName: 'healthy-000',
      serviceName: 'cassandra.amazonaws.com',
      reason: 'audit: OLD_KEY cassandra.amazonaws.com ACCAHEALTHY000000001 120 days',
    });
    for (const refused of ['exempt-000', 'protected-000', 'legacy-000'])
      expect((await world.executionNames()).some((n) => n.startsWith(`rekey-${refused}-ACCA`))).toBe(false);
    // The exempt user's event went through EventBridge's rule with the service fields.
    const routed = await world.drainEvents();
    expect(routed.find((e) => e.detail.serviceName)?.detail).toMatchObject({
      type: 'OLD_KEY',
      userName: 'exempt-000',
      accessKeyId: null,
      serviceName: 'cassandra.amazonaws.com',
      serviceSpecificCredentialId: 'ACCAEXEMPT0000000001',
      exempt: true,
      lastUsedDate: null,
      idleDays: null,
    });
    const digest = (await world.drainDigests())[0] ?? '';
    expect(digest).toContain('Service-specific credentials (Amazon Keyspaces, CodeCommit)');
    expect(digest).toMatch(
      /rotate protected-000 cassandra\.amazonaws\.com ACCAPROTECTED0000001: protected user/,
    );
  });

  it('an execution stopped from the console (ABORTED) is retried as attempt 2 at the next run, once', async () => {
    // Prepare: the emulator can stop an execution (FAILED and TIMED_OUT are unit-tested with SFN mocked).
    const user = 'age-200-000';
    const { accessKeyId } = keyOf(user);
    const name = executionNameFor(user, accessKeyId);
    const executionArn = `${world.stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
    await world.sfn.send(new StopExecutionCommand({ executionArn }));
    await world.drainDigests();
    await world.drainEvents();
    world.drainSentEvents();

    // Act
    const { summary } = await world.audit(CONFIG);

    // Assess: attempt 2 started under its own name, with a reason that says so; counted and listed.
    expect(summary.rotations.RETRIED).toBe(1);
    expect(summary.retried).toEqual([
      {
        userName: user,
        credentialId: accessKeyId,
        attempt: 2,
        executionName: `${name}-2`,
        failed: [{ executionName: name, status: 'ABORTED', error: null }],
      },
    ]);
    expect(summary.givenUp).toEqual([]);
    const retry = await world.sfn.send(new DescribeExecutionCommand({ executionArn: `${executionArn}-2` }));
    expect(retry.status).toBe('RUNNING');
    expect(JSON.parse(retry.input ?? '{}')).toEqual({
      userName: user,
      reason: `audit: OLD_KEY ${accessKeyId} 200 days, attempt 2 of 3`,
    });
    const digest = (await world.drainDigests())[0] ?? '';
    expect(digest).toContain(`  ${user} ${accessKeyId}: attempt 2 of 3 ${name}-2, after ${name} ABORTED`);
    world.drainSentEvents();

    // The next run finds attempt 2 running and starts nothing.
    const again = await world.audit(CONFIG);
    expect(again.summary.rotations.RETRIED).toBeUndefined();
    expect(again.summary.rotations.STARTED).toBeUndefined();
    expect((await world.executionNames()).filter((n) => n.startsWith(name)).sort()).toEqual([
      name,
      `${name}-2`,
    ]);
    await world.drainDigests();
    await world.drainEvents();
    world.drainSentEvents();
  });

  // Mutation tests: the audit's role without one of its actions fails, naming action and Lambda.
  it('without iam:GetCredentialReport the audit fails, naming the action and the audit', async () => {
    // Control: the whole role scans (a dry run changes nothing).
    const control = await world.audit(CONFIG, { dryRun: true });
    expect(control.summary.usersScanned).toBe(users.length);

    const error = await world
      .audit(CONFIG, { dryRun: true, mutate: withoutAction('audit', 'iam:GetCredentialReport') })
      .then(
        () => new Error('not refused'),
        (e: unknown) => e as Error,
      );

    expect(error).toBeInstanceOf(AccessDenied);
    expect(error.message).toBe(
      "the audit Lambda's role does not allow iam:GetCredentialReport on *: no statement of the role has this action",
    );
  });

  it('without states:StartExecution the audit cannot start a rotation and fails, naming the action; so does its digest', async () => {
    // An old Keyspaces credential nobody rotated yet: the audit starts its rotation.
    const oldCredential = (id: string) =>
      pagedServiceCredentials({
        'cassandra.amazonaws.com': [
          {
            UserName: 'healthy-002',
            ServiceName: 'cassandra.amazonaws.com',
            ServiceSpecificCredentialId: id,
            Status: 'Active',
            CreateDate: new Date(Date.now() - 120 * 86_400_000),
          },
        ],
      });
    const control = await world.audit(CONFIG, { serviceCredentials: oldCredential('ACCAHEALTHY000000003') });
    expect(control.summary.rotations.FAILED).toBeUndefined();
    expect(await world.executionNames()).toContain(executionNameFor('healthy-002', 'ACCAHEALTHY000000003'));
    await world.drainDigests();

    const error = await world
      .audit(CONFIG, {
        serviceCredentials: oldCredential('ACCAHEALTHY000000004'),
        mutate: withoutAction('audit', 'states:StartExecution'),
      })
      .then(
        () => new Error('not refused'),
        (e: unknown) => e as Error,
      );

    // The run fails (after its digest went out), naming the action the role lacks.
    expect(error.name).toBe('AuditActionsFailed');
    expect(error.message).toContain(
      "ROTATION healthy-002 ACCAHEALTHY000000004: could not start the rotation: AccessDenied: the audit Lambda's role does not allow states:StartExecution",
    );
    const digest = (await world.drainDigests())[0] ?? '';
    expect(digest).toContain(
      'rotate healthy-002 cassandra.amazonaws.com ACCAHEALTHY000000004: FAILED, could not start the rotation: ' +
        "AccessDenied: the audit Lambda's role does not allow states:StartExecution " +
        `on ${world.stateMachineArn}: no statement of the role has this action`,
    );
    expect(await world.executionNames()).not.toContain(
      executionNameFor('healthy-002', 'ACCAHEALTHY000000004'),
    );
  });

  it('without sns:Publish the audit fails on its digest, naming the action and the topic', async () => {
    const error = await world.audit(CONFIG, { mutate: withoutAction('audit', 'sns:Publish') }).then(
      () => new Error('not refused'),
      (e: unknown) => e as Error,
    );

    expect(error).toBeInstanceOf(AccessDenied);
    expect(error.message).toBe(
      `the audit Lambda's role does not allow sns:Publish on ${world.topicArn}: no statement of the role has this action`,
    );
  });

  // Last: it deactivates keys, which would change the findings of the tests above.
  it('every toggle that adds permissions at once: deactivation, Security Hub, service credentials, rotations', async () => {
    // Prepare: the old, never-used keys in scope are idle for 120 days, more than the policy's 90.
    const config = { ...CONFIG, deactivateUnused: true, securityHub: true, autoRotate: true };
    const idle = users.filter((u) => u.group.name === 'old-never-used').map((u) => u.userName);
    const answer = pagedServiceCredentials({
      'cassandra.amazonaws.com': [
        {
          UserName: 'healthy-001',
          ServiceName: 'cassandra.amazonaws.com',
          ServiceSpecificCredentialId: 'ACCAHEALTHY000000002',
          Status: 'Active',
          CreateDate: new Date(Date.now() - 120 * 86_400_000),
        },
      ],
    });
    await world.drainDigests();

    // Act: as the audit's deployed role for exactly this configuration.
    const { summary } = await world.audit(config, { serviceCredentials: answer });

    // Assess: every permission-adding path ran, and nothing failed.
    expect(summary.deactivations).toEqual({ DEACTIVATED: idle.length });
    for (const userName of idle) {
      const keys = await world.iam.send(new ListAccessKeysCommand({ UserName: userName }));
      expect(
        keys.AccessKeyMetadata?.map((k) => k.Status),
        userName,
      ).toEqual(['Inactive']);
    }
    expect(summary.securityHub?.imported).toBeGreaterThan(0);
    expect(summary.rotations).toMatchObject({ STARTED: 1 });
    expect(summary.rotations.FAILED).toBeUndefined();
    expect(await world.executionNames()).toContain(executionNameFor('healthy-001', 'ACCAHEALTHY000000002'));
    expect(summary.digestPublished).toBe(true);
    const digest = (await world.drainDigests())[0] ?? '';
    expect(digest).not.toContain('FAILED');
  });
});
