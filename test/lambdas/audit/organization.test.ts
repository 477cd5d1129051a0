/**
 * The organization audit's modes (lambdas/audit/organization.ts) against mocked clients: the
 * account mode audits inside inAccount as the audit, writes one results item, names and starts
 * rotations per account and returns counts only; a failing account is recorded, then raised. The
 * aggregate reads every page of the run's results, sends one digest naming the accounts, then
 * fails with OrganizationAuditIncomplete for the failed and missing ones.
 */
import { gunzipSync } from 'node:zlib';
import { type AttributeValue, DynamoDBClient, PutItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import {
  GenerateCredentialReportCommand,
  GetAccountAuthorizationDetailsCommand,
  GetCredentialReportCommand,
  IAMClient,
  ListAccessKeysCommand,
} from '@aws-sdk/client-iam';
import { SecurityHubClient } from '@aws-sdk/client-securityhub';
import { DescribeExecutionCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { loadEnv } from '../../../contract/env.ts';
import { MemberRoleUnavailable } from '../../../contract/errors.ts';
import { AUDIT_ENV } from '../../../contract/functions.ts';
import { ORGANIZATION_RESULTS } from '../../../contract/tables.ts';
import { SfnRotationStarter } from '../../../lambdas/audit/actions.ts';
import { auditPolicyFromEnv } from '../../../lambdas/audit/audit.ts';
import type { Finding } from '../../../lambdas/audit/findings.ts';
import { aggregate, auditAccount, type OrganizationAuditDeps } from '../../../lambdas/audit/organization.ts';
import type { AccountTarget } from '../../../lambdas/shared/member-account.ts';
import { awsError, fakeClock, TOPIC_ARN } from '../../support/lambda-fixtures.ts';
import { ACCOUNT, ago, expectNoSecretsInText, FAKE_SECRETS, reportCsv } from './helpers.ts';

const HUB = ACCOUNT;
const MEMBER = '111122223333';
const OTHER = '444455556666';
const STATE_MACHINE_ARN = `arn:aws:states:us-east-1:${HUB}:stateMachine:rekey-rotation`;
const TABLE = 'rekey-organization-results';
const RUN = 'org-audit-2026-03-01';

const iam = new IAMClient({ region: 'us-east-1' });
const sns = new SNSClient({ region: 'us-east-1' });
const eventBridge = new EventBridgeClient({ region: 'us-east-1' });
const securityHub = new SecurityHubClient({ region: 'us-east-1' });
const sfn = new SFNClient({ region: 'us-east-1' });
const dynamodb = new DynamoDBClient({ region: 'us-east-1' });
const iamMock = mockClient(iam);
const snsMock = mockClient(sns);
const ebMock = mockClient(eventBridge);
const sfnMock = mockClient(sfn);
const ddbMock = mockClient(dynamodb);

const POLICY = auditPolicyFromEnv(
  loadEnv(AUDIT_ENV, {
    REKEY_STATE_MACHINE_ARN: STATE_MACHINE_ARN,
    REKEY_TOPIC_ARN: TOPIC_ARN,
    REKEY_AUDIT_SERVICE_CREDENTIALS: 'false',
  }),
);

/** The results table: `runId#accountId` -> item, in insertion order. */
let table: Map<string, Record<string, AttributeValue>>;
let targets: AccountTarget[];

/** One account's IAM: alice with an old key, bob with a fresh one; the ARNs are that account's. */
function seedIam(accountId: string): void {
  const [secret] = FAKE_SECRETS as [string];
  const csv = reportCsv([
    { user: 'alice', arn: `arn:aws:iam::${accountId}:user/alice`, key1: { created: 120, used: 1 } },
    { user: 'bob', arn: `arn:aws:iam::${accountId}:user/bob`, key1: { created: 3, used: 0 } },
  ]);
  iamMock.on(GenerateCredentialReportCommand).resolves({ State: 'COMPLETE' });
  iamMock
    .on(GetCredentialReportCommand)
    .resolves({ Content: new TextEncoder().encode(csv), GeneratedTime: ago(0) });
  iamMock.on(GetAccountAuthorizationDetailsCommand).resolves({
    IsTruncated: false,
    UserDetailList: [
      { UserName: 'alice', Path: '/', Tags: [{ Key: 'legacy-secret', Value: secret }] },
      { UserName: 'bob', Path: '/' },
    ],
  });
  iamMock.on(ListAccessKeysCommand).callsFake((input: { UserName: string }) => ({
    AccessKeyMetadata: [
      {
        UserName: input.UserName,
        AccessKeyId: `AKIA${accountId.slice(0, 4)}${input.UserName.toUpperCase().padEnd(12, '0')}`,
        Status: 'Active',
        CreateDate: ago(input.UserName === 'alice' ? 120 : 3),
      },
    ],
  }));
}

function deps(overrides: Partial<OrganizationAuditDeps> = {}): OrganizationAuditDeps {
  return {
    audit: {
      iam,
      sns,
      eventBridge,
      securityHub,
      clock: fakeClock(),
      topicArn: TOPIC_ARN,
      eventBusName: 'default',
    },
    starter: new SfnRotationStarter(sfn, STATE_MACHINE_ARN),
    hub: { partition: 'aws', region: 'us-east-1', accountId: HUB },
    dynamodb,
    resultsTable: TABLE,
    inAccount: async (target, fn) => {
      targets.push(target);
      return fn();
    },
    ...overrides,
  };
}

beforeEach(() => {
  for (const m of [iamMock, snsMock, ebMock, sfnMock, ddbMock]) m.reset();
  table = new Map();
  targets = [];
  snsMock.on(PublishCommand).resolves({ MessageId: 'm' });
  ebMock.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => ({
    FailedEntryCount: 0,
    Entries: input.Entries.map(() => ({ EventId: 'e' })),
  }));
  sfnMock.on(DescribeExecutionCommand).rejects(awsError('ExecutionDoesNotExist'));
  sfnMock.on(StartExecutionCommand).callsFake((input: { name: string }) => ({
    executionArn: `arn:aws:states:us-east-1:${HUB}:execution:rekey-rotation:${input.name}`,
    startDate: new Date(),
  }));
  ddbMock.on(PutItemCommand).callsFake((input: { Item: Record<string, AttributeValue> }) => {
    table.set(`${input.Item.runId?.S}#${input.Item.accountId?.S}`, input.Item);
    return {};
  });
  // One item per page: the aggregate must follow LastEvaluatedKey.
  ddbMock.on(QueryCommand).callsFake((input) => {
    const run = input.ExpressionAttributeValues[':run'].S;
    const items = [...table.values()].filter((i) => i.runId?.S === run);
    const start = input.ExclusiveStartKey
      ? items.findIndex((i) => i.accountId?.S === input.ExclusiveStartKey.accountId.S) + 1
      : 0;
    const page = items.slice(start, start + 1);
    const last = page[0];
    return {
      Items: page,
      ...(last && start + 1 < items.length
        ? { LastEvaluatedKey: { runId: { S: run }, accountId: last.accountId as AttributeValue } }
        : {}),
    };
  });
});

const findingsOf = (item: Record<string, AttributeValue> | undefined): Finding[] =>
  JSON.parse(gunzipSync(item?.[ORGANIZATION_RESULTS.findings]?.B as Uint8Array).toString('utf8'));

describe('the account mode', () => {
  it('audits a member account inside inAccount as the audit, stores its result and returns counts only', async () => {
    // Prepare
    seedIam(MEMBER);

    // Act
    const out = await auditAccount(deps(), POLICY, { runId: RUN, accountId: MEMBER, dryRun: false });

    // Assert
    expect(targets).toEqual([{ accountId: MEMBER, lambda: 'audit' }]);
    expect(out).toEqual({ accountId: MEMBER, usersScanned: 2, findings: 1, rotationsStarted: 1 });
    const item = table.get(`${RUN}#${MEMBER}`);
    expect(item?.status).toEqual({ S: 'audited' });
    expect(item?.counts?.M).toMatchObject({
      usersScanned: { N: '2' },
      findings: { N: '1' },
      rotationsStarted: { N: '1' },
    });
    expect(Number(item?.expiresAt?.N)).toBe(fakeClock().now().getTime() / 1000 + 30 * 86_400);
    const stored = findingsOf(item);
    expect(stored.map((f) => [f.accountId, f.type, f.userName])).toEqual([[MEMBER, 'OLD_KEY', 'alice']]);
    // No digest per account; the events go out, each naming the member account.
    expect(snsMock).not.toHaveReceivedCommand(PublishCommand);
    const events = ebMock.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries ?? []);
    expect(events.map((e) => JSON.parse(e.Detail as string).accountId)).toEqual([MEMBER]);
  });

  it('names a member rotation after its account and starts it with accountId; the hub keeps its names and input', async () => {
    // Prepare
    seedIam(MEMBER);
    await auditAccount(deps(), POLICY, { runId: RUN, accountId: MEMBER, dryRun: false });
    seedIam(HUB);

    // Act
    await auditAccount(deps(), POLICY, { runId: RUN, accountId: HUB, dryRun: false });

    // Assert
    const starts = sfnMock.commandCalls(StartExecutionCommand).map((c) => c.args[0].input);
    expect(starts.map((s) => [s.name, JSON.parse(s.input as string)])).toEqual([
      [
        `rekey-${MEMBER}-alice-AKIA1111ALICE0000000`,
        { accountId: MEMBER, userName: 'alice', reason: 'audit: OLD_KEY AKIA1111ALICE0000000 120 days' },
      ],
      [
        `rekey-alice-AKIA${HUB.slice(0, 4)}ALICE0000000`,
        { userName: 'alice', reason: `audit: OLD_KEY AKIA${HUB.slice(0, 4)}ALICE0000000 120 days` },
      ],
    ]);
    expect(findingsOf(table.get(`${RUN}#${HUB}`))[0]?.accountId).toBe(HUB);
  });

  it('records a lasting failure (MemberRoleUnavailable) as failed with its name and message, then raises it', async () => {
    // Prepare
    const refused = new MemberRoleUnavailable(
      MEMBER,
      `arn:aws:iam::${MEMBER}:role/rekey-member-audit`,
      'AccessDenied',
    );
    const d = deps({ inAccount: async () => Promise.reject(refused) });

    // Act
    const error = await auditAccount(d, POLICY, { runId: RUN, accountId: MEMBER, dryRun: false }).catch(
      (e: unknown) => e,
    );

    // Assert
    expect(error).toBe(refused);
    const item = table.get(`${RUN}#${MEMBER}`);
    expect(item?.status).toEqual({ S: 'failed' });
    expect(item?.error).toEqual({
      M: { name: { S: 'MemberRoleUnavailable' }, message: { S: refused.message } },
    });
    expect(item?.findings).toBeUndefined();
  });

  it('records nothing for a transient error (throttling): the state machine retries it', async () => {
    // Prepare
    seedIam(MEMBER);
    iamMock.on(GetAccountAuthorizationDetailsCommand).rejects(awsError('Throttling'));

    // Act
    const error = await auditAccount(deps(), POLICY, { runId: RUN, accountId: MEMBER, dryRun: false }).catch(
      (e: unknown) => e,
    );

    // Assert
    expect((error as Error).name).toBe('Throttling');
    expect(table.size).toBe(0);
  });

  it('records an account whose rotation could not start as failed, findings kept, then raises AuditActionsFailed', async () => {
    // Prepare
    seedIam(MEMBER);
    sfnMock.on(StartExecutionCommand).rejects(awsError('AccessDeniedException'));

    // Act
    const error = await auditAccount(deps(), POLICY, { runId: RUN, accountId: MEMBER, dryRun: false }).catch(
      (e: unknown) => e,
    );

    // Assert
    expect((error as Error).name).toBe('AuditActionsFailed');
    const item = table.get(`${RUN}#${MEMBER}`);
    expect(item?.status).toEqual({ S: 'failed' });
    expect(item?.error?.M?.name).toEqual({ S: 'AuditActionsFailed' });
    expect(findingsOf(item)).toHaveLength(1);
  });

  it('keys the key-id cache per account: the hub bare, a member under its id', async () => {
    // Prepare
    const asked: (string | undefined)[] = [];
    const keyIdCacheFor = vi.fn((member: string | undefined) => {
      asked.push(member);
      return {
        stats: { hits: 0, misses: 0, written: 0, failures: 0, requests: 0 },
        lookup: async () => new Map(),
        store: async () => {},
      };
    });
    seedIam(MEMBER);

    // Act
    await auditAccount(deps({ keyIdCacheFor }), POLICY, { runId: RUN, accountId: MEMBER, dryRun: true });
    await auditAccount(deps({ keyIdCacheFor }), POLICY, { runId: RUN, accountId: HUB, dryRun: true });

    // Assert
    expect(asked).toEqual([MEMBER, undefined]);
  });

  it('returns no secret and no finding list, and stores none of the secrets either', async () => {
    // Prepare
    seedIam(MEMBER);

    // Act
    const out = await auditAccount(deps(), POLICY, { runId: RUN, accountId: MEMBER, dryRun: false });

    // Assert
    expect(Object.keys(out).sort()).toEqual(['accountId', 'findings', 'rotationsStarted', 'usersScanned']);
    expectNoSecretsInText(JSON.stringify(out));
    expectNoSecretsInText(JSON.stringify(findingsOf(table.get(`${RUN}#${MEMBER}`))));
  });
});

describe('the aggregate mode', () => {
  async function auditTwo(): Promise<void> {
    seedIam(HUB);
    await auditAccount(deps(), POLICY, { runId: RUN, accountId: HUB, dryRun: false });
    seedIam(MEMBER);
    await auditAccount(deps(), POLICY, { runId: RUN, accountId: MEMBER, dryRun: false });
    snsMock.resetHistory();
  }

  it('reads every page of the run, sends one digest over every account and returns totals', async () => {
    // Prepare
    await auditTwo();
    const publishMetrics = vi.fn();

    // Act
    const totals = await aggregate(deps({ publishMetrics }), POLICY, {
      runId: RUN,
      accountIds: [HUB, MEMBER],
      dryRun: false,
    });

    // Assert
    expect(totals).toEqual({ accounts: 2, audited: 2, failed: 0, findings: 2, rotationsStarted: 2 });
    expect(ddbMock.commandCalls(QueryCommand)).toHaveLength(2);
    expect(ddbMock.commandCalls(QueryCommand)[0]?.args[0].input.ConsistentRead).toBe(true);
    const digests = snsMock.commandCalls(PublishCommand).map((c) => c.args[0].input);
    expect(digests).toHaveLength(1);
    expect(digests[0]?.Subject).toBe('[rekey] Access key audit of 2 accounts: 2 findings (2 old)');
    const text = digests[0]?.Message as string;
    expect(text).toContain(`Accounts:           2 (organization audit ${RUN})`);
    expect(text).toMatch(new RegExp(`^  ${HUB} +2 +1 +1  audited$`, 'm'));
    expect(text).toMatch(new RegExp(`^  ${MEMBER} +2 +1 +1  audited$`, 'm'));
    expect(text).toMatch(
      new RegExp(`^${MEMBER} +OLD_KEY +alice +AKIA1111ALICE0000000 .*rotation started$`, 'm'),
    );
    expect(text).toMatch(
      new RegExp(`^${HUB} +OLD_KEY +alice +AKIA1234ALICE0000000 .*rotation started$`, 'm'),
    );
    expectNoSecretsInText(text);
    // The events went out from each account's audit, not again here.
    expect(ebMock.commandCalls(PutEventsCommand)).toHaveLength(2);
    const groups = publishMetrics.mock.calls[0]?.[0] as { values: { name: string; value: number }[] }[];
    expect(groups[0]?.values).toContainEqual(expect.objectContaining({ name: 'KeysOverMaxAge', value: 2 }));
    expect(groups[0]?.values).toContainEqual(expect.objectContaining({ name: 'UsersInScope', value: 4 }));
  });

  it('names the failed and the missing accounts in the digest, then raises OrganizationAuditIncomplete', async () => {
    // Prepare
    await auditTwo();
    const refused = new MemberRoleUnavailable(
      OTHER,
      `arn:aws:iam::${OTHER}:role/rekey-member-audit`,
      'AccessDenied',
    );
    await auditAccount(deps({ inAccount: async () => Promise.reject(refused) }), POLICY, {
      runId: RUN,
      accountId: OTHER,
      dryRun: false,
    }).catch(() => undefined);
    const missing = '777788889999';

    // Act
    const error = await aggregate(deps(), POLICY, {
      runId: RUN,
      accountIds: [HUB, MEMBER, OTHER, missing],
      dryRun: false,
    }).catch((e: unknown) => e);

    // Assert
    expect(error).toMatchObject({
      name: 'OrganizationAuditIncomplete',
      message: `the organization audit is incomplete (failed: ${OTHER}; no result: ${missing})`,
    });
    const text = snsMock.commandCalls(PublishCommand)[0]?.args[0].input.Message as string;
    expect(text).toContain(
      `${OTHER}       0        0         0  FAILED: MemberRoleUnavailable: ${refused.message}`,
    );
    expect(text).toContain(`${missing}       0        0         0  NO RESULT`);
  });

  it('sends a digest for failed accounts even without findings', async () => {
    // Prepare: no account was audited.

    // Act
    const error = await aggregate(deps(), POLICY, { runId: RUN, accountIds: [MEMBER], dryRun: false }).catch(
      (e: unknown) => e,
    );

    // Assert
    expect((error as Error).name).toBe('OrganizationAuditIncomplete');
    expect(snsMock.commandCalls(PublishCommand)).toHaveLength(1);
  });

  it('a dry run publishes nothing and still returns the totals', async () => {
    // Prepare
    await auditTwo();
    const publishMetrics = vi.fn();

    // Act
    const totals = await aggregate(deps({ publishMetrics }), POLICY, {
      runId: RUN,
      accountIds: [HUB, MEMBER],
      dryRun: true,
    });

    // Assert
    expect(totals.audited).toBe(2);
    expect(snsMock).not.toHaveReceivedCommand(PublishCommand);
    expect(publishMetrics).not.toHaveBeenCalled();
  });

  it('an owner digest holds only the findings of that owner in each account, not a namesake of another account', async () => {
    // Prepare: alice is owned by team-a in the hub only.
    seedIam(HUB);
    iamMock.on(GetAccountAuthorizationDetailsCommand).resolves({
      IsTruncated: false,
      UserDetailList: [
        { UserName: 'alice', Path: '/', Tags: [{ Key: 'rekey:owner', Value: 'team-a@example.com' }] },
        { UserName: 'bob', Path: '/' },
      ],
    });
    await auditAccount(deps(), POLICY, { runId: RUN, accountId: HUB, dryRun: false });
    seedIam(MEMBER);
    await auditAccount(deps(), POLICY, { runId: RUN, accountId: MEMBER, dryRun: false });

    // Act
    await aggregate(deps(), POLICY, { runId: RUN, accountIds: [HUB, MEMBER], dryRun: false });

    // Assert
    const owned = snsMock
      .commandCalls(PublishCommand)
      .map((c) => c.args[0].input)
      .find((i) => i.MessageAttributes?.owner?.StringValue === 'team-a@example.com');
    expect(owned?.Message).toContain(HUB);
    expect(owned?.Message).not.toContain('AKIA1111ALICE');
    // The member's alice and her rotation are another user's: one rotation in this owner's digest.
    expect(owned?.Message).toMatch(/^ {2}rotations started: +1 /m);
  });
});
