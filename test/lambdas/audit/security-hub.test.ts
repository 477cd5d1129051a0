import {
  type AwsSecurityFinding,
  BatchImportFindingsCommand,
  GetFindingsCommand,
  SecurityHubClient,
} from '@aws-sdk/client-securityhub';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_THRESHOLDS, type Finding } from '../../../lambdas/audit/findings.ts';
import {
  type AccountContext,
  accountContextFromArn,
  findingIdFor,
  GENERATOR_ID,
  productArnFor,
  resolvedAsff,
  SecurityHubImportFailed,
  syncSecurityHub,
  toAsff,
} from '../../../lambdas/audit/security-hub.ts';
import { fakeClock, rejectionOf } from '../../support/lambda-fixtures.ts';
import { ACTIONS, CASSANDRA, FINDINGS, finding, KEYS, serviceCredentialRun } from './fixtures.ts';
import { ACCOUNT, expectNoSecretsInText, NOW } from './helpers.ts';

/**
 * The ASFF fields BatchImportFindings requires (Security Hub user guide, "Required top-level
 * attributes in ASFF"), with the constraints this code must meet.
 */
const REQUIRED_FIELDS = [
  'SchemaVersion',
  'Id',
  'ProductArn',
  'GeneratorId',
  'AwsAccountId',
  'Types',
  'CreatedAt',
  'UpdatedAt',
  'Severity',
  'Title',
  'Description',
  'Resources',
] as const;
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const TYPE_NAMESPACES = [
  'Software and Configuration Checks',
  'TTPs',
  'Effects',
  'Unusual Behaviors',
  'Sensitive Data Identifications',
];

/** Every problem with a finding as BatchImportFindings would see it; [] when valid. */
function asffProblems(f: AwsSecurityFinding): string[] {
  const problems: string[] = [];
  const record = f as unknown as Record<string, unknown>;
  for (const field of REQUIRED_FIELDS)
    if (record[field] === undefined || record[field] === '') problems.push(`${field} missing`);
  if (f.SchemaVersion !== '2018-10-08') problems.push('SchemaVersion must be 2018-10-08');
  if ((f.Id?.length ?? 0) > 512) problems.push('Id longer than 512');
  if ((f.GeneratorId?.length ?? 0) > 512) problems.push('GeneratorId longer than 512');
  if (!/^\d{12}$/.test(f.AwsAccountId ?? '')) problems.push('AwsAccountId is not 12 digits');
  if (!/^arn:aws[a-z-]*:securityhub:[a-z0-9-]+:\d{12}:product\/\d{12}\/default$/.test(f.ProductArn ?? ''))
    problems.push('ProductArn is not the account default product');
  if (!f.Types?.length || f.Types.length > 50) problems.push('Types must have 1-50 entries');
  for (const t of f.Types ?? [])
    if (!TYPE_NAMESPACES.includes(t.split('/')[0] ?? '') || t.split('/').length > 3)
      problems.push(`bad type ${t}`);
  for (const d of ['CreatedAt', 'UpdatedAt', 'FirstObservedAt', 'LastObservedAt'] as const)
    if (f[d] !== undefined && !ISO_8601.test(f[d] ?? '')) problems.push(`${d} is not ISO 8601`);
  if (!['INFORMATIONAL', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL'].includes(f.Severity?.Label ?? ''))
    problems.push('Severity.Label invalid');
  if ((f.Title?.length ?? 0) > 256) problems.push('Title longer than 256');
  if ((f.Description?.length ?? 0) > 1024) problems.push('Description longer than 1024');
  if (!f.Resources?.length || f.Resources.length > 32) problems.push('Resources must have 1-32 entries');
  for (const r of f.Resources ?? []) if (!r.Type || !r.Id) problems.push('a resource lacks Type or Id');
  if (f.RecordState && !['ACTIVE', 'ARCHIVED'].includes(f.RecordState)) problems.push('RecordState invalid');
  if (f.Workflow?.Status && !['NEW', 'NOTIFIED', 'RESOLVED', 'SUPPRESSED'].includes(f.Workflow.Status))
    problems.push('Workflow.Status invalid');
  if (f.Compliance?.Status && !['PASSED', 'WARNING', 'FAILED', 'NOT_AVAILABLE'].includes(f.Compliance.Status))
    problems.push('Compliance.Status invalid');
  if ((f.Compliance?.RelatedRequirements?.length ?? 0) > 32) problems.push('too many RelatedRequirements');
  return problems;
}

const CTX: AccountContext = { partition: 'aws', region: 'eu-west-1', accountId: ACCOUNT };
const options = { ctx: CTX, now: NOW, thresholds: DEFAULT_THRESHOLDS, actions: ACTIONS };
const byType = (type: Finding['type']) => FINDINGS.find((f) => f.type === type) as Finding;

describe('toAsff', () => {
  it.each(FINDINGS.map((f) => [`${f.type} ${f.userName}`, f]))(
    '%s passes the ASFF required-field check',
    (_, f) => {
      const asff = toAsff(f as Finding, options);
      expect(asffProblems(asff)).toEqual([]);
      expectNoSecretsInText(JSON.stringify(asff));
    },
  );

  it('fills the required fields for an old key', () => {
    const asff = toAsff(byType('OLD_KEY'), options);
    expect(asff).toMatchObject({
      SchemaVersion: '2018-10-08',
      Id: `rekey/${ACCOUNT}/OLD_KEY/alice/${KEYS.alice}`,
      ProductArn: `arn:aws:securityhub:eu-west-1:${ACCOUNT}:product/${ACCOUNT}/default`,
      GeneratorId: GENERATOR_ID,
      AwsAccountId: ACCOUNT,
      Types: ['Software and Configuration Checks/AWS Security Best Practices'],
      CreatedAt: NOW.toISOString(),
      UpdatedAt: NOW.toISOString(),
      Severity: { Label: 'MEDIUM' },
      Title: `IAM access key ${KEYS.alice} of alice is 120 days old (limit 90)`,
      RecordState: 'ACTIVE',
      Workflow: { Status: 'NEW' },
      Compliance: { Status: 'FAILED' },
    });
    expect(asff.Description).toContain('Keys should be rotated every 90 days or less.');
    expect(asff.Description).toContain('rekey: rotation already running or done.');
    expect(asff.Resources?.map((r) => [r.Type, r.Id])).toEqual([
      ['AwsIamAccessKey', `AWS::IAM::AccessKey:${KEYS.alice}`],
      ['AwsIamUser', `arn:aws:iam::${ACCOUNT}:user/alice`],
    ]);
  });

  it('maps each type to its Security Hub controls and CIS items', () => {
    const related = (t: Finding['type']) => toAsff(byType(t), options).Compliance?.RelatedRequirements ?? [];
    expect(related('OLD_KEY')).toContain('Security Hub IAM.3');
    expect(related('EXPIRING_KEY')).toContain('Security Hub IAM.3');
    expect(related('UNUSED_KEY')).toEqual(
      expect.arrayContaining(['Security Hub IAM.8', 'Security Hub IAM.22']),
    );
    expect(related('ROOT_ACCESS_KEY')).toContain('Security Hub IAM.4');
    expect(related('TWO_ACTIVE_KEYS')).toContain('CIS AWS Foundations Benchmark v1.4.0/1.13');
    expect(toAsff(byType('EXPIRING_KEY'), options).Compliance?.Status).toBe('WARNING');
    const root = toAsff(byType('ROOT_ACCESS_KEY'), options);
    expect(root.Severity?.Label).toBe('CRITICAL');
    expect(root.Resources).toEqual([
      { Type: 'AwsAccount', Id: `AWS::::Account:${ACCOUNT}`, Partition: 'aws', Region: 'eu-west-1' },
    ]);
    expect(root.Id).toBe(`rekey/${ACCOUNT}/ROOT_ACCESS_KEY/<root_account>/key-1`);
    expect(toAsff(byType('OLD_KEY'), options).Compliance?.AssociatedStandards).toContainEqual({
      StandardsId: 'standards/aws-foundational-security-best-practices/v/1.0.0',
    });
  });

  it('ids are deterministic per type, user and key', () => {
    const f = byType('OLD_KEY');
    expect(findingIdFor(CTX, f)).toBe(findingIdFor(CTX, { ...f, ageDays: 121 }));
    expect(findingIdFor(CTX, f)).not.toBe(findingIdFor(CTX, { ...f, type: 'UNUSED_KEY' }));
    expect(findingIdFor(CTX, f)).not.toBe(findingIdFor(CTX, { ...f, accessKeyId: 'AKIAOTHER00000000000' }));
    expect(findingIdFor(CTX, byType('TWO_ACTIVE_KEYS'))).toBe(`rekey/${ACCOUNT}/TWO_ACTIVE_KEYS/dave`);
  });

  it("an exempt user's finding is suppressed, with the exemption in the description", () => {
    const vendor = toAsff(FINDINGS.find((f) => f.userName === 'vendor') as Finding, options);
    expect(vendor.Workflow).toEqual({ Status: 'SUPPRESSED' });
    expect(vendor.Description).toContain('Exempt until 2026-12-31T23:59:59.999Z: SMTP relay, SEC-12.');
    const lapsed = toAsff(FINDINGS.find((f) => f.userName === 'lapsed') as Finding, options);
    expect(lapsed.Workflow).toEqual({ Status: 'NEW' });
    expect(lapsed.Description).toContain("The user's exemption expired 2026-01-31T23:59:59.999Z: migration.");
  });

  it('an update keeps CreatedAt and leaves the triage workflow alone', () => {
    const existing = {
      ...toAsff(byType('OLD_KEY'), { ...options, now: new Date('2026-01-01T00:00:00Z') }),
      Workflow: { Status: 'NOTIFIED' as const },
    };
    const updated = toAsff(byType('OLD_KEY'), { ...options, existing });
    expect(updated.CreatedAt).toBe('2026-01-01T00:00:00.000Z');
    expect(updated.UpdatedAt).toBe(NOW.toISOString());
    expect(updated.Workflow).toBeUndefined();
  });

  it('reads partition, region and account from an ARN', () => {
    expect(accountContextFromArn('arn:aws-us-gov:states:us-gov-west-1:123456789012:stateMachine:r')).toEqual({
      partition: 'aws-us-gov',
      region: 'us-gov-west-1',
      accountId: '123456789012',
    });
    expect(productArnFor({ partition: 'aws-cn', region: 'cn-north-1', accountId: ACCOUNT })).toBe(
      `arn:aws-cn:securityhub:cn-north-1:${ACCOUNT}:product/${ACCOUNT}/default`,
    );
    expect(() => accountContextFromArn('not-an-arn')).toThrow(/cannot read partition/);
  });
});

describe('resolvedAsff', () => {
  it('re-imports a cleared finding as PASSED, ARCHIVED, RESOLVED, keeping its identity', () => {
    const open = toAsff(byType('OLD_KEY'), { ...options, now: new Date('2026-01-01T00:00:00Z') });
    const resolved = resolvedAsff(open, NOW);
    expect(asffProblems(resolved)).toEqual([]);
    expect(resolved).toMatchObject({
      Id: open.Id,
      ProductArn: open.ProductArn,
      CreatedAt: open.CreatedAt,
      UpdatedAt: NOW.toISOString(),
      RecordState: 'ARCHIVED',
      Workflow: { Status: 'RESOLVED' },
      Compliance: { Status: 'PASSED', RelatedRequirements: open.Compliance?.RelatedRequirements },
      Severity: { Label: 'INFORMATIONAL' },
    });
  });
});

describe('syncSecurityHub', () => {
  const securityHub = new SecurityHubClient({ region: 'eu-west-1' });
  const shMock = mockClient(securityHub);
  beforeEach(() => {
    shMock.reset();
    shMock.on(BatchImportFindingsCommand).resolves({ FailedCount: 0, SuccessCount: 1, FailedFindings: [] });
  });
  const deps = () => ({ securityHub, clock: fakeClock() });

  it("finds rekey's open findings, imports the current ones and resolves those that cleared", async () => {
    // Prepare: an earlier run left bob's UNUSED_KEY (still there) and erin's OLD_KEY (cleared) open.
    const earlier = new Date('2026-02-01T00:00:00Z');
    const stillOpen = toAsff(byType('UNUSED_KEY'), { ...options, now: earlier });
    const cleared = toAsff(
      { ...byType('OLD_KEY'), userName: 'erin', accessKeyId: 'AKIAERIN000000000006' },
      { ...options, now: earlier },
    );
    const foreign = { ...cleared, Id: 'someone-else', GeneratorId: 'other-tool' };
    shMock.on(GetFindingsCommand).resolves({ Findings: [stillOpen, cleared, foreign] });

    // Act
    const result = await syncSecurityHub(deps(), FINDINGS, {
      ctx: CTX,
      thresholds: DEFAULT_THRESHOLDS,
      actions: ACTIONS,
    });

    // Assess
    expect(result).toEqual({ imported: FINDINGS.length, resolved: 1 });
    expect(shMock).toHaveReceivedCommandWith(GetFindingsCommand, {
      Filters: {
        GeneratorId: [{ Value: GENERATOR_ID, Comparison: 'EQUALS' }],
        RecordState: [{ Value: 'ACTIVE', Comparison: 'EQUALS' }],
        AwsAccountId: [{ Value: ACCOUNT, Comparison: 'EQUALS' }],
        ProductArn: [{ Value: productArnFor(CTX), Comparison: 'EQUALS' }],
      },
      MaxResults: 100,
    });
    const imported = shMock
      .commandCalls(BatchImportFindingsCommand)
      .flatMap((c) => c.args[0].input.Findings ?? []);
    expect(imported).toHaveLength(FINDINGS.length + 1);
    for (const f of imported) expect(asffProblems(f)).toEqual([]);
    const bob = imported.find((f) => f.Id === stillOpen.Id);
    expect(bob?.CreatedAt).toBe(earlier.toISOString());
    const erin = imported.find((f) => f.Id === cleared.Id);
    expect(erin).toMatchObject({
      RecordState: 'ARCHIVED',
      Compliance: { Status: 'PASSED' },
      Workflow: { Status: 'RESOLVED' },
    });
    expect(imported.some((f) => f.Id === 'someone-else')).toBe(false);
    expectNoSecretsInText(JSON.stringify(imported));
  });

  it('imports in batches of 100', async () => {
    shMock.on(GetFindingsCommand).resolves({ Findings: [] });
    const many = Array.from({ length: 230 }, (_, i) => ({ ...byType('UNUSED_KEY'), userName: `u${i}` }));
    await syncSecurityHub(deps(), many, { ctx: CTX, thresholds: DEFAULT_THRESHOLDS, actions: [] });
    expect(
      shMock.commandCalls(BatchImportFindingsCommand).map((c) => c.args[0].input.Findings?.length),
    ).toEqual([100, 100, 30]);
  });

  it('fails with SecurityHubImportFailed when findings are refused', async () => {
    shMock.on(GetFindingsCommand).resolves({ Findings: [] });
    shMock.on(BatchImportFindingsCommand).resolves({
      FailedCount: 1,
      SuccessCount: 0,
      FailedFindings: [{ Id: 'x', ErrorCode: 'InvalidInput', ErrorMessage: 'bad' }],
    });
    const error = await rejectionOf(
      syncSecurityHub(deps(), [byType('OLD_KEY')], {
        ctx: CTX,
        thresholds: DEFAULT_THRESHOLDS,
        actions: [],
      }),
    );
    expect(error).toBeInstanceOf(SecurityHubImportFailed);
    expect(error.message).toBe('Security Hub refused 1 finding(s): x (InvalidInput: bad)');
  });
});

describe('Security Hub for service credentials', () => {
  const { old, two, started } = serviceCredentialRun();

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
