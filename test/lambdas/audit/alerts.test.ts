import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import type { ActionOutcome, FailedAttempt } from '../../../lambdas/audit/actions.ts';
import {
  DIGEST_MAX_ROWS,
  digestSubject,
  digestText,
  EventsNotDelivered,
  eventDetail,
  FINDING_DETAIL_TYPE,
  findingEvents,
  publishAlerts,
  STILL_FAILING_DETAIL_TYPE,
  stillFailingEvents,
} from '../../../lambdas/audit/alerts.ts';
import { fakeClock, rejectionOf, TOPIC_ARN } from '../../support/lambda-fixtures.ts';
import {
  ACTIONS,
  CASSANDRA,
  CODECOMMIT,
  FINDINGS,
  finding,
  KEYS,
  report,
  serviceCredentialRun,
  serviceFinding,
} from './fixtures.ts';
import { ACCOUNT, expectNoSecretsInText } from './helpers.ts';

const sns = new SNSClient({ region: 'us-east-1' });
const eventBridge = new EventBridgeClient({ region: 'us-east-1' });
const snsMock = mockClient(sns);
const ebMock = mockClient(eventBridge);

beforeEach(() => {
  snsMock.reset();
  ebMock.reset();
  snsMock.on(PublishCommand).resolves({ MessageId: 'm-1' });
});

describe('the digest', () => {
  it('has a short ASCII subject with the counts', () => {
    const subject = digestSubject(report());
    expect(subject).toBe(
      '[rekey] Access key audit: 7 findings (1 root key, 3 old, 1 unused, 1 two active, 1 expiring)',
    );
    expect(subject.length).toBeLessThanOrEqual(100);
    expect(subject).toMatch(/^[\x20-\x7e]+$/);
  });

  it('reads as an email: counts per type, a fixed-width table, actions, exemptions', () => {
    const text = digestText(report());
    const lines = text.split('\n');

    expect(text).toContain('Account:            123456789012');
    expect(text).toContain('old after 90 days, warning 14 days before, unused after 45 days');
    expect(text).toMatch(/Findings: 7 \(1 of them exempt\)/);
    expect(lines).toContain('  OLD_KEY               3');
    expect(lines).toContain('  ROOT_ACCESS_KEY       1');
    expect(text).toMatch(/rotations started: +1 \(at most 25 starts per run, retries included\)/);
    expect(text).toMatch(/rotations retried: +0 \(at most 3 attempts each\)/);
    expect(text).toMatch(/rotations already running: +1/);
    expect(text).toMatch(/rotations still failing: +0 \(given up: no more retries\)/);
    expect(text).not.toContain('Rotations still failing');
    expect(text).toMatch(/keys deactivated as unused: +0 \(policy off\)/);
    // The table: one header, every row the same column layout.
    const header = lines.find((l) => l.startsWith('TYPE'));
    expect(header).toBe(
      'TYPE            USER                             ACCESS KEY            AGE  LAST USED   ACTION',
    );
    const aliceRow = lines.find((l) => l.includes(KEYS.alice));
    expect(aliceRow).toBe(
      `OLD_KEY         alice                            ${KEYS.alice}  120  2026-02-28  rotation already running or done`,
    );
    expect(lines.find((l) => l.includes(KEYS.lapsed))).toContain('rotation started');
    expect(lines.find((l) => l.startsWith('ROOT_ACCESS_KEY'))).toContain('(key 1)');
    expect(lines.find((l) => l.startsWith('TWO_ACTIVE_KEYS'))).toContain(
      `deactivate one of ${KEYS.dave1} / ${KEYS.dave2}`,
    );
    expect(lines.find((l) => l.startsWith('UNUSED_KEY'))).toMatch(/ never +alert only/);
    // Exempt users have their own section with the reason; expired exemptions are called out.
    expect(text).toContain('Exempt (reported, never acted on)');
    expect(text).toContain('  vendor: SMTP relay, SEC-12 (until 2026-12-31)');
    expect(text).toContain('  lapsed: expired 2026-01-31, migration');
    expect(text).toContain(`  rotate vendor ${KEYS.vendor}: exempt until 2026-12-31: SMTP relay, SEC-12`);
    for (const id of Object.values(KEYS)) expect(text).toContain(id);
    expectNoSecretsInText(text);
  });

  it('says so on a dry run, and caps the table', () => {
    const many = Array.from({ length: DIGEST_MAX_ROWS + 7 }, (_, i) =>
      finding({ type: 'OLD_KEY', userName: `u${i}`, accessKeyId: `AKIA${String(i).padStart(16, '0')}` }),
    );
    const text = digestText(report({ findings: many, actions: [], dryRun: true }));
    expect(text.split('\n')[0]).toBe('rekey access key audit (DRY RUN: nothing was started or changed)');
    expect(text).toContain('... and 7 more (every finding is also an EventBridge event)');
    expect(Buffer.byteLength(text)).toBeLessThan(256 * 1024);
  });
});

describe('retried and given-up rotations', () => {
  const MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:rekey-rotation';
  const aliceName = `rekey-alice-${KEYS.alice}`;
  const lapsedName = `rekey-lapsed-${KEYS.lapsed}`;
  const attempt = (
    first: string,
    n: number,
    status: FailedAttempt['status'],
    error: string | null = null,
  ): FailedAttempt => {
    const executionName = n === 1 ? first : `${first}-${n}`;
    return {
      attempt: n,
      executionName,
      executionArn: `${MACHINE.replace(':stateMachine:', ':execution:')}:${executionName}`,
      status,
      error,
      stopDate: `2026-02-2${n}T06:30:00.000Z`,
    };
  };
  const aliceAttempts = [
    attempt(aliceName, 1, 'FAILED', 'States.TaskFailed'),
    attempt(aliceName, 2, 'ABORTED'),
    attempt(aliceName, 3, 'TIMED_OUT'),
  ];
  const givenUp: ActionOutcome = {
    kind: 'ROTATION',
    status: 'GIVEN_UP',
    userName: 'alice',
    accessKeyId: KEYS.alice,
    executionName: `${aliceName}-3`,
    executionArn: aliceAttempts[2]?.executionArn as string,
    attempt: 3,
    failedAttempts: aliceAttempts,
    detail: 'still failing after 3 attempts (FAILED, ABORTED, TIMED_OUT): not retried again',
  };
  const retried: ActionOutcome = {
    kind: 'ROTATION',
    status: 'RETRIED',
    userName: 'lapsed',
    accessKeyId: KEYS.lapsed,
    executionName: `${lapsedName}-2`,
    executionArn: `${MACHINE.replace(':stateMachine:', ':execution:')}:${lapsedName}-2`,
    attempt: 2,
    failedAttempts: [attempt(lapsedName, 1, 'FAILED', 'RotationFailed')],
    detail: `rotation retried: attempt 2 of 3, after ${lapsedName} FAILED (RotationFailed)`,
  };
  const vendorSkipped = ACTIONS[2] as ActionOutcome;
  const run = report({ actions: [givenUp, retried, vendorSkipped] });

  it('the digest puts the given-up rotations first, with every attempt and what to do, then the retried ones', () => {
    const text = digestText(run);
    const lines = text.split('\n');

    expect(digestSubject(run)).toBe(
      '[rekey] Access key audit: 7 findings, 1 rotation still failing (1 root key, 3 old, 1 unused, 1 two a',
    );
    expect(text).toMatch(/rotations retried: +1 \(at most 3 attempts each\)/);
    expect(text).toMatch(/rotations still failing: +1 \(given up: no more retries\)/);
    const at = lines.indexOf('Rotations still failing: rekey stopped retrying them (1)');
    expect(at).toBeGreaterThan(lines.indexOf('Actions:'));
    expect(at).toBeLessThan(lines.indexOf('Findings'));
    expect(lines.slice(at + 2, at + 16)).toEqual([
      `  alice ${KEYS.alice}: 3 attempts failed`,
      `    ${aliceName}    FAILED (States.TaskFailed) at 2026-02-21T06:30:00.000Z`,
      `    ${aliceName}-2  ABORTED at 2026-02-22T06:30:00.000Z`,
      `    ${aliceName}-3  TIMED_OUT at 2026-02-23T06:30:00.000Z`,
      '    input to start it by hand: {"userName":"alice"}',
      '',
      "  Why an attempt failed is in its execution's history (Step Functions console). Fix the cause, then",
      `  start the rotation by hand: aws stepfunctions start-execution --state-machine-arn ${MACHINE} \\`,
      "    --input '<the input above>'",
      '  A rotation is listed here at every run until its key is no longer old; exempting the user stops that.',
      '',
      'Rotations retried (an earlier attempt failed)',
      '',
      `  lapsed ${KEYS.lapsed}: attempt 2 of 3 ${lapsedName}-2, after ${lapsedName} FAILED (RotationFailed)`,
    ]);
    expect(lines.find((l) => l.startsWith('OLD_KEY') && l.includes(KEYS.alice))).toMatch(
      /STILL FAILING after 3 attempts: no more retries, a human must look$/,
    );
    expect(lines.find((l) => l.includes(KEYS.lapsed) && l.startsWith('OLD_KEY'))).toMatch(
      /rotation retried \(attempt 2\)$/,
    );
    expectNoSecretsInText(text);
  });

  it('a given-up service credential is started by hand with its serviceName', () => {
    const service: ActionOutcome = {
      ...givenUp,
      accessKeyId: null,
      serviceName: 'cassandra.amazonaws.com',
      serviceSpecificCredentialId: 'ACCAALICE0000000000001',
    };
    const text = digestText(report({ actions: [service] }));
    expect(text).toContain('  alice cassandra.amazonaws.com ACCAALICE0000000000001: 3 attempts failed');
    expect(text).toContain(
      '    input to start it by hand: {"userName":"alice","serviceName":"cassandra.amazonaws.com"}',
    );
  });

  it('one "Access Key Rotation Still Failing" event per given-up rotation, besides the finding events', async () => {
    ebMock.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => ({
      FailedEntryCount: 0,
      Entries: input.Entries.map(() => ({ EventId: 'e' })),
    }));

    const sent = await publishAlerts(
      { sns, eventBridge, clock: fakeClock(), topicArn: TOPIC_ARN, eventBusName: 'default' },
      run,
    );

    expect(sent).toEqual({ digestPublished: true, eventsPublished: FINDINGS.length + 1 });
    const entries = ebMock.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries ?? []);
    const failing = entries.filter((e) => e.DetailType === STILL_FAILING_DETAIL_TYPE);
    expect(failing).toEqual(stillFailingEvents(run, 'default'));
    expect(failing).toHaveLength(1);
    expect(failing[0]).toMatchObject({
      Source: 'rekey',
      DetailType: 'Access Key Rotation Still Failing',
      EventBusName: 'default',
      Resources: ['arn:aws:iam::123456789012:user/alice', ...aliceAttempts.map((a) => a.executionArn)],
    });
    expect(JSON.parse(failing[0]?.Detail ?? '{}')).toEqual({
      userName: 'alice',
      accessKeyId: KEYS.alice,
      ageDays: 120,
      owner: null,
      attempts: 3,
      maxRotationAttempts: 3,
      executions: aliceAttempts.map(
        ({ attempt: n, executionName, executionArn, status, error, stopDate }) => ({
          attempt: n,
          executionName,
          executionArn,
          status,
          error,
          stopDate,
        }),
      ),
      message: 'still failing after 3 attempts (FAILED, ABORTED, TIMED_OUT): not retried again',
      accountId: '123456789012',
      auditedAt: '2026-03-01T12:00:00.000Z',
    });
    // The finding's own event carries the outcome too.
    const aliceFinding = entries.find(
      (e) => e.DetailType === FINDING_DETAIL_TYPE && e.Detail?.includes(`"accessKeyId":"${KEYS.alice}"`),
    );
    expect(JSON.parse(aliceFinding?.Detail ?? '{}').action).toEqual({
      kind: 'ROTATION',
      status: 'GIVEN_UP',
      detail: givenUp.detail,
      executionName: `${aliceName}-3`,
    });
    for (const e of entries) expectNoSecretsInText(JSON.stringify(e));
  });

  it('no rotation given up, no such event', () => {
    expect(stillFailingEvents(report(), 'default')).toEqual([]);
    expect(stillFailingEvents(report({ actions: [retried] }), 'default')).toEqual([]);
  });
});

describe('the events', () => {
  it('one "Stale Access Key Found" event per finding, source rekey, with the contract fields', () => {
    const entries = findingEvents(report(), 'default');
    expect(entries).toHaveLength(FINDINGS.length);
    const alice = entries.find((e) => e.Detail?.includes(KEYS.alice) && e.Detail.includes('"OLD_KEY"'));
    expect(alice).toMatchObject({
      Source: 'rekey',
      DetailType: FINDING_DETAIL_TYPE,
      EventBusName: 'default',
      Resources: ['arn:aws:iam::123456789012:user/alice'],
    });
    expect(JSON.parse(alice?.Detail ?? '{}')).toMatchObject({
      type: 'OLD_KEY',
      userName: 'alice',
      accessKeyId: KEYS.alice,
      ageDays: 120,
      lastUsedDate: FINDINGS[1]?.lastUsedDate,
      severity: 'MEDIUM',
      exempt: false,
      action: {
        kind: 'ROTATION',
        status: 'ALREADY_STARTED',
        detail: 'rotation already started earlier',
        executionName: `rekey-alice-${KEYS.alice}`,
      },
    });
    const vendor = JSON.parse(entries.find((e) => e.Detail?.includes(KEYS.vendor))?.Detail ?? '{}');
    expect(vendor).toMatchObject({
      exempt: true,
      exemption: { reason: 'SMTP relay, SEC-12', expired: false },
    });
    for (const e of entries) expectNoSecretsInText(JSON.stringify(e));
  });
});

describe('publishAlerts', () => {
  const deps = () => ({ sns, eventBridge, clock: fakeClock(), topicArn: TOPIC_ARN, eventBusName: 'default' });
  const many = (n: number) =>
    Array.from({ length: n }, (_, i) =>
      finding({ type: 'UNUSED_KEY', userName: `u${i}`, accessKeyId: `AKIA${String(i).padStart(16, '0')}` }),
    );

  it('publishes nothing when there are no findings', async () => {
    await expect(publishAlerts(deps(), report({ findings: [], actions: [] }))).resolves.toEqual({
      digestPublished: false,
      eventsPublished: 0,
    });
    expect(snsMock).not.toHaveReceivedCommand(PublishCommand);
    expect(ebMock).not.toHaveReceivedCommand(PutEventsCommand);
  });

  it('one digest, and events in batches of 10', async () => {
    ebMock.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => ({
      FailedEntryCount: 0,
      Entries: input.Entries.map((_, i) => ({ EventId: `e-${i}` })),
    }));
    const r = report({ findings: many(23), actions: [] });

    await expect(publishAlerts(deps(), r)).resolves.toEqual({ digestPublished: true, eventsPublished: 23 });

    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 1);
    expect(snsMock).toHaveReceivedCommandWith(PublishCommand, {
      TopicArn: TOPIC_ARN,
      Subject: '[rekey] Access key audit: 23 findings (23 unused)',
      Message: digestText(r),
      // The full digest: every owner's findings (none of these users has an owner tag).
      MessageAttributes: {
        event: { DataType: 'String', StringValue: 'AUDIT_DIGEST' },
        owner: { DataType: 'String', StringValue: '*' },
      },
    });
    const sizes = ebMock.commandCalls(PutEventsCommand).map((c) => c.args[0].input.Entries?.length);
    expect(sizes).toEqual([10, 10, 3]);
  });

  it('sends refused entries again, only those, then succeeds', async () => {
    ebMock
      .on(PutEventsCommand)
      .resolvesOnce({
        FailedEntryCount: 2,
        Entries: [
          { EventId: 'a' },
          { ErrorCode: 'ThrottlingException', ErrorMessage: 'slow down' },
          { EventId: 'c' },
          { ErrorCode: 'InternalFailure' },
        ],
      })
      .resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'b' }, { EventId: 'd' }] });
    const d = deps();

    await publishAlerts(d, report({ findings: many(4), actions: [] }));

    const calls = ebMock.commandCalls(PutEventsCommand).map((c) => c.args[0].input.Entries ?? []);
    expect(calls.map((entries) => entries.length)).toEqual([4, 2]);
    expect(calls[1]?.map((e) => JSON.parse(e.Detail ?? '{}').userName)).toEqual(['u1', 'u3']);
    expect(d.clock.sleep).toHaveBeenCalledWith(1000);
  });

  it('fails with EventsNotDelivered when entries are still refused after 3 attempts', async () => {
    ebMock
      .on(PutEventsCommand)
      .resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'InternalFailure' }] });
    const d = deps();

    const error = await rejectionOf(publishAlerts(d, report({ findings: many(1), actions: [] })));

    expect(error).toBeInstanceOf(EventsNotDelivered);
    expect(error.name).toBe('EventsNotDelivered');
    expect(error.message).toBe('EventBridge refused 1 audit event(s) after 3 attempts (InternalFailure)');
    expect(ebMock).toHaveReceivedCommandTimes(PutEventsCommand, 3);
    expect(d.clock.sleep.mock.calls.map(([ms]) => ms)).toEqual([1000, 2000]);
  });

  it('keeps the action of each finding in its event', () => {
    const entries = findingEvents(report(), 'rekey-bus');
    const started = entries
      .map((e) => JSON.parse(e.Detail ?? '{}'))
      .filter((d) => d.action?.status === 'STARTED');
    expect(started.map((d) => d.userName)).toEqual(['lapsed']);
    expect(ACTIONS).toHaveLength(3);
  });
});

describe('alerts for service credentials', () => {
  const { old, two, started, run } = serviceCredentialRun();

  it('events add serviceName and the credential ids; access-key events keep their shape', () => {
    expect(eventDetail(old, run)).toMatchObject({
      type: 'OLD_KEY',
      userName: 'alice',
      accessKeyId: null,
      serviceName: CASSANDRA,
      serviceSpecificCredentialId: 'ACCAALICE0000000000001',
      otherServiceSpecificCredentialId: null,
      lastUsedDate: null,
      idleDays: null,
      action: { kind: 'ROTATION', status: 'STARTED', executionName: 'rekey-alice-ACCAALICE0000000000001' },
      message: 'rotation started',
    });
    expect(eventDetail(two, run)).toMatchObject({
      otherAccessKeyId: null,
      otherServiceSpecificCredentialId: 'ACCABOBG000000000002',
      message: 'deactivate one of ACCABOBG000000000001 / ACCABOBG000000000002 by hand',
    });
    const keyEvent = eventDetail(
      finding({ type: 'OLD_KEY', userName: 'carol', accessKeyId: 'AKIACAROL00000000003' }),
      run,
    );
    expect(keyEvent).not.toHaveProperty('serviceName');
    expect(keyEvent).not.toHaveProperty('serviceSpecificCredentialId');
    expect(findingEvents(run, 'default')[0]).toMatchObject({
      DetailType: 'Stale Access Key Found',
      Resources: [`arn:aws:iam::${ACCOUNT}:user/alice`],
    });
  });

  it('an action is matched to its own credential, not to another of the same user', () => {
    const other = serviceFinding({
      type: 'OLD_KEY',
      userName: 'alice',
      serviceName: CODECOMMIT,
      serviceSpecificCredentialId: 'ACCAALICEGIT000000001',
    });
    expect(eventDetail(other, report({ findings: [old, other], actions: [started] })).action).toBeNull();
  });

  it('the digest lists them in a table of their own: service, credential id, age, action', () => {
    const text = digestText(
      report({
        findings: [
          finding({ type: 'OLD_KEY', userName: 'carol', accessKeyId: 'AKIACAROL00000000003' }),
          old,
          two,
        ],
        actions: [started],
      }),
    );
    const lines = text.split('\n');
    expect(lines).toContain('Service-specific credentials (Amazon Keyspaces, CodeCommit)');
    expect(lines.find((l) => l.includes('ACCAALICE0000000000001') && l.startsWith('OLD_KEY'))).toBe(
      'OLD_KEY         alice                            cassandra.amazonaws.com  ACCAALICE0000000000001    120  rotation started',
    );
    expect(lines.find((l) => l.startsWith('TWO_ACTIVE_KEYS'))).toContain('codecommit.amazonaws.com');
    expectNoSecretsInText(text);
  });
});
