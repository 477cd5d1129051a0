/**
 * Service-specific credentials (Amazon Keyspaces, CodeCommit) in the audit: the AllUsers listing
 * through the paginator, the findings, the actions on them, and how alerts and Security Hub show
 * them. moto does not implement ListServiceSpecificCredentials, so this is all aws-sdk-client-mock.
 */
import { IAMClient, ListServiceSpecificCredentialsCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { ServiceName } from '../../../contract/schemas.ts';
import {
  type ActionPolicy,
  applyActions,
  EXECUTION_NAME,
  executionNameFor,
  firstAttemptStarted,
  type RotationStarter,
} from '../../../lambdas/audit/actions.ts';
import { digestText, eventDetail, findingEvents } from '../../../lambdas/audit/alerts.ts';
import { CallCounter } from '../../../lambdas/audit/calls.ts';
import {
  contractView,
  DEFAULT_THRESHOLDS,
  evaluateServiceCredentials,
  type Finding,
  type ServiceCredential,
} from '../../../lambdas/audit/findings.ts';
import { findingIdFor, resolvedAsff, toAsff } from '../../../lambdas/audit/security-hub.ts';
import { listServiceCredentials } from '../../../lambdas/audit/service-credentials.ts';
import { awsError, fakeClock, rejectionOf } from '../../support/lambda-fixtures.ts';
import { finding, report } from './fixtures.ts';
import { ACCOUNT, ago, expectNoSecretsInText, NOW, userDetail, usersOf } from './helpers.ts';

const iam = new IAMClient({ region: 'us-east-1' });
const iamMock = mockClient(iam);
beforeEach(() => {
  iamMock.reset();
});

const CASSANDRA: ServiceName = 'cassandra.amazonaws.com';
const CODECOMMIT: ServiceName = 'codecommit.amazonaws.com';

/** An IAM ServiceSpecificCredentialMetadata (no secret: IAM returns none in a listing). */
const metadata = (
  userName: string,
  id: string,
  serviceName: string,
  createdDaysAgo: number,
  Status: 'Active' | 'Inactive' | 'Expired' = 'Active',
) => ({
  UserName: userName,
  ServiceName: serviceName,
  ServiceUserName: `${userName}-at-${ACCOUNT}`,
  ServiceSpecificCredentialId: id,
  Status,
  CreateDate: ago(createdDaysAgo),
});

describe('listServiceCredentials', () => {
  it('lists every user per service with AllUsers, 1,000 a page, following Marker across pages', async () => {
    // Prepare: the paginator reuses one input object, so copy each as sent.
    const sent: unknown[] = [];
    const pages: Record<string, object[]> = {
      [CASSANDRA]: [
        {
          IsTruncated: true,
          Marker: 'c2',
          ServiceSpecificCredentials: [metadata('alice', 'ACCAALICE0000000000001', CASSANDRA, 100)],
        },
        {
          IsTruncated: true,
          Marker: 'c3',
          ServiceSpecificCredentials: [metadata('bob', 'ACCABOB00000000000001', CASSANDRA, 10)],
        },
        {
          IsTruncated: false,
          ServiceSpecificCredentials: [metadata('carol', 'ACCACAROL000000000001', CASSANDRA, 5, 'Inactive')],
        },
      ],
      [CODECOMMIT]: [
        {
          IsTruncated: false,
          ServiceSpecificCredentials: [metadata('alice', 'ACCAALICEGIT000000001', CODECOMMIT, 200)],
        },
      ],
    };
    iamMock.on(ListServiceSpecificCredentialsCommand).callsFake((input: { ServiceName: string }) => {
      sent.push(structuredClone(input));
      return pages[input.ServiceName]?.shift();
    });
    const calls = new CallCounter();

    // Act
    const credentials = await listServiceCredentials({ iam, calls });

    // Assess
    expect(sent).toEqual([
      { AllUsers: true, ServiceName: CASSANDRA, MaxItems: 1000 },
      { AllUsers: true, ServiceName: CASSANDRA, MaxItems: 1000, Marker: 'c2' },
      { AllUsers: true, ServiceName: CASSANDRA, MaxItems: 1000, Marker: 'c3' },
      { AllUsers: true, ServiceName: CODECOMMIT, MaxItems: 1000 },
    ]);
    // No UserName: IAM refuses it together with AllUsers.
    for (const input of sent) expect(input).not.toHaveProperty('UserName');
    expect(credentials).toEqual([
      {
        userName: 'alice',
        serviceName: CASSANDRA,
        serviceSpecificCredentialId: 'ACCAALICE0000000000001',
        status: 'Active',
        createDate: ago(100),
      },
      {
        userName: 'bob',
        serviceName: CASSANDRA,
        serviceSpecificCredentialId: 'ACCABOB00000000000001',
        status: 'Active',
        createDate: ago(10),
      },
      {
        userName: 'carol',
        serviceName: CASSANDRA,
        serviceSpecificCredentialId: 'ACCACAROL000000000001',
        status: 'Inactive',
        createDate: ago(5),
      },
      {
        userName: 'alice',
        serviceName: CODECOMMIT,
        serviceSpecificCredentialId: 'ACCAALICEGIT000000001',
        status: 'Active',
        createDate: ago(200),
      },
    ]);
    expect(calls.toJSON()).toEqual({ ListServiceSpecificCredentials: 4 });
    // O(pages): these calls do not grow with findings.
    expect(calls.perFindingCalls).toBe(0);
  });

  it('keeps only the service asked for (an answer that ignored the filter adds nothing)', async () => {
    iamMock.on(ListServiceSpecificCredentialsCommand).resolves({
      ServiceSpecificCredentials: [
        metadata('alice', 'ACCAALICE0000000000001', CASSANDRA, 100),
        metadata('alice', 'ACCAALICEBEDROCK00001', 'bedrock.amazonaws.com', 100),
      ],
    });
    const credentials = await listServiceCredentials({ iam, calls: new CallCounter() }, [CASSANDRA]);
    expect(credentials.map((c) => c.serviceSpecificCredentialId)).toEqual(['ACCAALICE0000000000001']);
  });

  it('throws AccessDenied (counting the refused call): never an audit that silently skipped a kind', async () => {
    iamMock
      .on(ListServiceSpecificCredentialsCommand)
      .rejects(
        awsError('AccessDenied', 'User: x is not authorized to perform: iam:ListServiceSpecificCredentials'),
      );
    const calls = new CallCounter();
    const error = await rejectionOf(listServiceCredentials({ iam, calls }));
    expect(error.name).toBe('AccessDenied');
    expect(calls.toJSON()).toEqual({ ListServiceSpecificCredentials: 1 });
  });
});

const credential = (
  userName: string,
  id: string,
  createdDaysAgo: number,
  over: Partial<ServiceCredential> = {},
): ServiceCredential => ({
  userName,
  serviceName: CASSANDRA,
  serviceSpecificCredentialId: id,
  status: 'Active',
  createDate: ago(createdDaysAgo),
  ...over,
});
const ARNS = new Map([['alice', `arn:aws:iam::${ACCOUNT}:user/team/alice`]]);
const evaluate = (credentials: ServiceCredential[], users = usersOf()) =>
  evaluateServiceCredentials(credentials, users, ARNS, {
    now: NOW,
    thresholds: DEFAULT_THRESHOLDS,
    exemptTag: 'rekey:exempt',
  });

describe('evaluateServiceCredentials', () => {
  it.each([
    [76, []],
    [77, ['EXPIRING_KEY']],
    [90, ['EXPIRING_KEY']],
    [91, ['OLD_KEY']],
    [400, ['OLD_KEY']],
  ])('a credential %i days old is %j (the access keys boundaries)', (days, types) => {
    expect(evaluate([credential('alice', 'ACCA0000000000000001', days)]).map((f) => f.type)).toEqual(types);
  });

  it('90 days and 23 hours is still 90 days: compliant, expiring', () => {
    const c = credential('alice', 'ACCA0000000000000001', 0, {
      createDate: new Date(NOW.getTime() - 90 * 86_400_000 - 23 * 3_600_000),
    });
    expect(evaluate([c])).toMatchObject([{ type: 'EXPIRING_KEY', ageDays: 90 }]);
  });

  it('is never UNUSED_KEY, and says last use is unknown rather than "never"', () => {
    const [old] = evaluate([credential('alice', 'ACCA0000000000000001', 500)]);
    expect(old).toEqual({
      type: 'OLD_KEY',
      userName: 'alice',
      userArn: `arn:aws:iam::${ACCOUNT}:user/team/alice`,
      accessKeyId: null,
      keySlot: 1,
      ageDays: 500,
      lastUsedDate: null,
      idleDays: null,
      createDate: ago(500).toISOString(),
      serviceName: CASSANDRA,
      serviceSpecificCredentialId: 'ACCA0000000000000001',
      exemption: null,
    });
  });

  it('ignores inactive and expired credentials', () => {
    expect(
      evaluate([
        credential('alice', 'ACCA0000000000000001', 200, { status: 'Inactive' }),
        credential('alice', 'ACCA0000000000000002', 200, { status: 'Expired' }),
      ]),
    ).toEqual([]);
  });

  it('TWO_ACTIVE_KEYS per user AND service: on the older one, naming the other', () => {
    const findings = evaluate([
      credential('bob', 'ACCABOBNEW0000000001', 3),
      credential('bob', 'ACCABOBOLD0000000001', 30),
      // One per service is not two active.
      credential('carol', 'ACCACAROLK0000000001', 3),
      credential('carol', 'ACCACAROLG0000000001', 3, { serviceName: CODECOMMIT }),
    ]);
    expect(findings).toEqual([
      expect.objectContaining({
        type: 'TWO_ACTIVE_KEYS',
        userName: 'bob',
        serviceName: CASSANDRA,
        serviceSpecificCredentialId: 'ACCABOBOLD0000000001',
        keySlot: 1,
        ageDays: 30,
        other: {
          keySlot: 2,
          accessKeyId: null,
          ageDays: 3,
          serviceSpecificCredentialId: 'ACCABOBNEW0000000001',
        },
      }),
    ]);
  });

  it("carries the user's exemption (expired or not), as for access keys", () => {
    const users = usersOf(
      userDetail('vendor', { 'rekey:exempt': 'until=2026-12-31 Cassandra driver pinned' }),
      userDetail('lapsed', { 'rekey:exempt': 'until=2026-01-31 migration' }),
    );
    const findings = evaluate(
      [credential('vendor', 'ACCAVENDOR0000000001', 120), credential('lapsed', 'ACCALAPSED0000000001', 120)],
      users,
    );
    expect(findings.map((f) => [f.userName, f.exemption])).toEqual([
      ['lapsed', { reason: 'migration', until: '2026-01-31T23:59:59.999Z', expired: true }],
      ['vendor', { reason: 'Cassandra driver pinned', until: '2026-12-31T23:59:59.999Z', expired: false }],
    ]);
  });

  it('the --json view adds serviceName and the credential id only for service credentials', () => {
    const [f] = evaluate([credential('alice', 'ACCA0000000000000001', 120)]);
    expect(contractView(f as Finding)).toEqual({
      type: 'OLD_KEY',
      userName: 'alice',
      accessKeyId: null,
      ageDays: 120,
      lastUsedDate: null,
      serviceName: CASSANDRA,
      serviceSpecificCredentialId: 'ACCA0000000000000001',
    });
    expect(
      Object.keys(
        contractView(finding({ type: 'OLD_KEY', userName: 'bob', accessKeyId: 'AKIABOB0000000000002' })),
      ),
    ).toEqual(['type', 'userName', 'accessKeyId', 'ageDays', 'lastUsedDate']);
  });
});

/** A service credential's finding (the shape evaluateServiceCredentials makes). */
const serviceFinding = (
  over: Partial<Finding> & Pick<Finding, 'type' | 'userName' | 'serviceSpecificCredentialId'>,
): Finding => finding({ serviceName: CASSANDRA, lastUsedDate: null, idleDays: null, ...over });

const POLICY: ActionPolicy = {
  autoRotate: true,
  maxRotationsPerRun: 25,
  maxRotationAttempts: 3,
  deactivateUnused: true,
  deactivateUnusedAfterDays: 90,
  protectedUsers: ['break-glass'],
  userPathPrefix: '/',
};

function actionDeps() {
  const requests: Parameters<RotationStarter['start']>[0][] = [];
  const starter: RotationStarter = {
    start: vi.fn(async (request) => {
      requests.push(request);
      return firstAttemptStarted(request, `arn:x:${request.executionName}`);
    }),
  };
  return { requests, deps: { iam, starter, clock: fakeClock(), calls: new CallCounter() } };
}

describe('actions on service credentials', () => {
  it('rotates an OLD_KEY credential: serviceName in the request, the credential id in the name', async () => {
    const { requests, deps } = actionDeps();
    const outcomes = await applyActions(
      deps,
      [
        serviceFinding({
          type: 'OLD_KEY',
          userName: 'alice',
          serviceSpecificCredentialId: 'ACCAALICE0000000000001',
          ageDays: 120,
        }),
      ],
      usersOf(userDetail('alice')),
      POLICY,
      { dryRun: false },
    );
    expect(requests).toEqual([
      {
        executionName: 'rekey-alice-ACCAALICE0000000000001',
        userName: 'alice',
        accessKeyId: null,
        serviceName: CASSANDRA,
        serviceSpecificCredentialId: 'ACCAALICE0000000000001',
        reason: 'audit: OLD_KEY cassandra.amazonaws.com ACCAALICE0000000000001 120 days',
        maxAttempts: 3,
      },
    ]);
    expect(outcomes).toEqual([
      {
        kind: 'ROTATION',
        status: 'STARTED',
        userName: 'alice',
        accessKeyId: null,
        serviceName: CASSANDRA,
        serviceSpecificCredentialId: 'ACCAALICE0000000000001',
        executionName: 'rekey-alice-ACCAALICE0000000000001',
        executionArn: 'arn:x:rekey-alice-ACCAALICE0000000000001',
        attempt: 1,
        failedAttempts: [],
        detail: 'rotation started',
      },
    ]);
  });

  it('execution names: the access key names are unchanged, a credential id is kept whole in 80 characters', () => {
    expect(executionNameFor('alice', 'AKIAIOSFODNN7EXAMPLE')).toBe('rekey-alice-AKIAIOSFODNN7EXAMPLE');
    const long = executionNameFor(`${'x'.repeat(60)}.@+=`, 'ACCAEXAMPLE123EXAMPLE');
    expect(long.length).toBeLessThanOrEqual(80);
    expect(long).toMatch(EXECUTION_NAME);
    expect(long.endsWith('-ACCAEXAMPLE123EXAMPLE')).toBe(true);
  });

  it('never deactivates one, even if an UNUSED_KEY finding named it', async () => {
    const { deps } = actionDeps();
    const outcomes = await applyActions(
      deps,
      [
        serviceFinding({
          type: 'UNUSED_KEY',
          userName: 'alice',
          serviceSpecificCredentialId: 'ACCAALICE0000000000001',
          idleDays: 400,
        }),
      ],
      usersOf(userDetail('alice')),
      POLICY,
      { dryRun: false },
    );
    expect(outcomes).toEqual([]);
    expect(iamMock).not.toHaveReceivedAnyCommand();
    expect(deps.calls.total).toBe(0);
  });

  it('refuses protected, out-of-scope, not opted-in and exempt users, as for access keys', async () => {
    const { requests, deps } = actionDeps();
    const old = (userName: string, id: string, over: Partial<Finding> = {}) =>
      serviceFinding({ type: 'OLD_KEY', userName, serviceSpecificCredentialId: id, ...over });
    const outcomes = await applyActions(
      deps,
      [
        old('break-glass', 'ACCABREAK00000000001'),
        old('outsider', 'ACCAOUTSIDER00000001'),
        old('untagged', 'ACCAUNTAGGED00000001'),
        old('vendor', 'ACCAVENDOR0000000001', {
          exemption: { reason: 'pinned', until: null, expired: false },
        }),
      ],
      usersOf(
        userDetail('break-glass', { 'rekey:opt-in': 'yes' }, '/svc/'),
        userDetail('outsider', { 'rekey:opt-in': 'yes' }, '/other/'),
        userDetail('untagged', {}, '/svc/'),
        userDetail('vendor', { 'rekey:opt-in': 'yes' }, '/svc/'),
      ),
      { ...POLICY, userPathPrefix: '/svc/', optInTag: 'rekey:opt-in' },
      { dryRun: false },
    );
    expect(requests).toEqual([]);
    expect(outcomes.map((o) => [o.userName, o.status, o.serviceSpecificCredentialId, o.detail])).toEqual([
      ['break-glass', 'SKIPPED', 'ACCABREAK00000000001', 'protected user'],
      ['outsider', 'SKIPPED', 'ACCAOUTSIDER00000001', 'out of scope: path /other/ is outside /svc/'],
      ['untagged', 'SKIPPED', 'ACCAUNTAGGED00000001', 'out of scope: no opt-in tag rekey:opt-in'],
      ['vendor', 'SKIPPED', 'ACCAVENDOR0000000001', 'exempt: pinned'],
    ]);
  });

  it('two active credentials hold back that service only; two active keys hold back the keys only', async () => {
    const { requests, deps } = actionDeps();
    const outcomes = await applyActions(
      deps,
      [
        // bob: two active Keyspaces credentials, and an old access key.
        serviceFinding({
          type: 'OLD_KEY',
          userName: 'bob',
          serviceSpecificCredentialId: 'ACCABOBK000000000001',
        }),
        serviceFinding({
          type: 'TWO_ACTIVE_KEYS',
          userName: 'bob',
          serviceSpecificCredentialId: 'ACCABOBK000000000001',
          other: {
            keySlot: 2,
            accessKeyId: null,
            ageDays: 2,
            serviceSpecificCredentialId: 'ACCABOBK000000000002',
          },
        }),
        finding({ type: 'OLD_KEY', userName: 'bob', accessKeyId: 'AKIABOB0000000000001' }),
        // dave: two active access keys, and an old CodeCommit credential.
        finding({ type: 'OLD_KEY', userName: 'dave', accessKeyId: 'AKIADAVE000000000001' }),
        finding({
          type: 'TWO_ACTIVE_KEYS',
          userName: 'dave',
          accessKeyId: 'AKIADAVE000000000001',
          other: { keySlot: 2, accessKeyId: 'AKIADAVE000000000002', ageDays: 2 },
        }),
        serviceFinding({
          type: 'OLD_KEY',
          userName: 'dave',
          serviceName: CODECOMMIT,
          serviceSpecificCredentialId: 'ACCADAVEG00000000001',
        }),
      ],
      usersOf(userDetail('bob'), userDetail('dave')),
      POLICY,
      { dryRun: false },
    );
    expect(requests.map((r) => r.executionName).sort()).toEqual([
      'rekey-bob-AKIABOB0000000000001',
      'rekey-dave-ACCADAVEG00000000001',
    ]);
    expect(outcomes.filter((o) => o.status === 'SKIPPED').map((o) => o.detail)).toEqual([
      'two active cassandra.amazonaws.com credentials: rekey will not pick one; deactivate or delete one by hand',
      'two active keys: rekey will not pick one; deactivate or delete one by hand',
    ]);
  });

  it('maxRotationsPerRun counts service credentials and keys together, oldest first', async () => {
    const { requests, deps } = actionDeps();
    const outcomes = await applyActions(
      deps,
      [
        finding({ type: 'OLD_KEY', userName: 'a', accessKeyId: 'AKIAA000000000000001', ageDays: 100 }),
        serviceFinding({
          type: 'OLD_KEY',
          userName: 'b',
          serviceSpecificCredentialId: 'ACCAB000000000000001',
          ageDays: 300,
        }),
        serviceFinding({
          type: 'OLD_KEY',
          userName: 'c',
          serviceSpecificCredentialId: 'ACCAC000000000000001',
          ageDays: 200,
        }),
      ],
      usersOf(userDetail('a'), userDetail('b'), userDetail('c')),
      { ...POLICY, maxRotationsPerRun: 2 },
      { dryRun: false },
    );
    expect(requests.map((r) => r.userName)).toEqual(['b', 'c']);
    expect(outcomes.find((o) => o.userName === 'a')).toMatchObject({
      status: 'SKIPPED',
      detail: 'limit of 2 rotation starts per run reached (new rotations and retries)',
    });
  });
});

describe('alerts and Security Hub for service credentials', () => {
  const old = serviceFinding({
    type: 'OLD_KEY',
    userName: 'alice',
    serviceSpecificCredentialId: 'ACCAALICE0000000000001',
    ageDays: 120,
  });
  const two = serviceFinding({
    type: 'TWO_ACTIVE_KEYS',
    userName: 'bob',
    serviceName: CODECOMMIT,
    serviceSpecificCredentialId: 'ACCABOBG000000000001',
    ageDays: 30,
    other: { keySlot: 2, accessKeyId: null, ageDays: 2, serviceSpecificCredentialId: 'ACCABOBG000000000002' },
  });
  const started = {
    kind: 'ROTATION' as const,
    status: 'STARTED' as const,
    userName: 'alice',
    accessKeyId: null,
    serviceName: CASSANDRA,
    serviceSpecificCredentialId: 'ACCAALICE0000000000001',
    executionName: 'rekey-alice-ACCAALICE0000000000001',
    detail: 'rotation started',
  };
  const run = report({ findings: [old, two], actions: [started] });

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

  it('Security Hub: imported without a compliance claim (no control covers them), id per credential', () => {
    const ctx = { partition: 'aws', region: 'us-east-1', accountId: ACCOUNT };
    const asff = toAsff(old, { ctx, now: NOW, thresholds: DEFAULT_THRESHOLDS, actions: [started] });
    expect(asff.Id).toBe(`rekey/${ACCOUNT}/OLD_KEY/alice/ACCAALICE0000000000001`);
    expect(asff.Compliance).toBeUndefined();
    expect(asff.Title).toBe(
      'Service-specific credential ACCAALICE0000000000001 (cassandra.amazonaws.com) of alice is 120 days old (limit 90)',
    );
    expect(asff.Resources?.map((r) => [r.Type, r.Id])).toEqual([
      ['Other', 'AWS::IAM::ServiceSpecificCredential:ACCAALICE0000000000001'],
      ['AwsIamUser', `arn:aws:iam::${ACCOUNT}:user/alice`],
    ]);
    expect(asff.ProductFields).toMatchObject({
      'rekey/ServiceName': CASSANDRA,
      'rekey/ServiceSpecificCredentialId': 'ACCAALICE0000000000001',
    });
    // Two active per service and per access keys are two findings, never one id.
    const keys = finding({ type: 'TWO_ACTIVE_KEYS', userName: 'bob', accessKeyId: 'AKIABOB0000000000001' });
    expect(findingIdFor(ctx, two)).toBe(`rekey/${ACCOUNT}/TWO_ACTIVE_KEYS/bob/codecommit.amazonaws.com`);
    expect(findingIdFor(ctx, two)).not.toBe(findingIdFor(ctx, keys));
    // Resolved later: still no compliance claim.
    expect(resolvedAsff(asff, NOW)).not.toHaveProperty('Compliance');
    expect(resolvedAsff(asff, NOW)).toMatchObject({
      RecordState: 'ARCHIVED',
      Workflow: { Status: 'RESOLVED' },
    });
  });
});
