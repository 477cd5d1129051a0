/**
 * Opt-in: the audit's findings as Security Hub findings in the AWS Security Finding Format
 * (ASFF), imported through the account's default product
 * (`arn:<partition>:securityhub:<region>:<account>:product/<account>/default`).
 *
 * - Each finding has a deterministic Id (account, type, user, key), so each run updates the same
 *   Security Hub finding rather than adding one; CreatedAt is kept from the first import.
 * - Compliance maps to the Security Hub controls and CIS items the condition fails: IAM.3
 *   (OLD_KEY, EXPIRING_KEY as a WARNING), IAM.8 and IAM.22 (UNUSED_KEY), IAM.4 (ROOT_ACCESS_KEY);
 *   TWO_ACTIVE_KEYS maps to CIS 1.13, which has no Security Hub control.
 * - A finding of an earlier run whose condition has cleared (the key was rotated, used again,
 *   deactivated, deleted) is re-imported with Compliance PASSED, RecordState ARCHIVED and
 *   Workflow RESOLVED. The open ones are found with GetFindings filtered by GeneratorId, record
 *   state and account (and filtered again here, so an emulator that ignores filters is harmless).
 * - An exempt user's findings are imported SUPPRESSED, with the exemption in the description.
 * - Service-specific credentials' findings (Amazon Keyspaces, CodeCommit) are imported too, but
 *   fail no control: IAM.3 and CIS 1.13/1.14 are about access keys, and no Security Hub control
 *   or CIS item covers service-specific credentials. They carry no Compliance (a compliance
 *   status would claim a control was checked), and their credential is an `Other` resource.
 */
import {
  type AwsSecurityFinding,
  BatchImportFindingsCommand,
  paginateGetFindings,
  type SecurityHubClient,
} from '@aws-sdk/client-securityhub';
import { ConfigurationError, RekeyError } from '../../contract/errors.ts';
import type { Clock } from '../shared/clock.ts';
import type { ActionOutcome } from './actions.ts';
import { actionText } from './alerts.ts';
import {
  credentialIdOf,
  type Finding,
  type FindingType,
  isActiveExemption,
  SEVERITY,
  type Thresholds,
} from './findings.ts';

export const GENERATOR_ID = 'rekey-audit';
export const SCHEMA_VERSION = '2018-10-08';
export const FINDING_TYPE_ASFF = 'Software and Configuration Checks/AWS Security Best Practices';
/** BatchImportFindings takes at most 100 findings per call. */
const IMPORT_BATCH = 100;

export class SecurityHubImportFailed extends RekeyError {
  constructor(
    failures: {
      Id?: string | undefined;
      ErrorCode?: string | undefined;
      ErrorMessage?: string | undefined;
    }[],
  ) {
    super(
      'SecurityHubImportFailed',
      `Security Hub refused ${failures.length} finding(s): ${failures
        .slice(0, 5)
        .map((f) => `${f.Id} (${f.ErrorCode}: ${f.ErrorMessage})`)
        .join('; ')}`,
    );
  }
}

export interface AccountContext {
  partition: string;
  region: string;
  accountId: string;
}

/**
 * partition, region and account of an ARN such as the state machine's; with `memberAccountId`
 * (the organization audit of a member account), that account instead: its findings are imported
 * into its own Security Hub, under its own AwsAccountId and default product ARN.
 */
export function accountContextFromArn(arn: string, memberAccountId?: string): AccountContext {
  const [prefix, partition, , region, accountId] = arn.split(':');
  if (prefix !== 'arn' || !partition || !region || !accountId || !/^\d{12}$/.test(accountId))
    throw new ConfigurationError(`cannot read partition, region and account from "${arn}"`);
  return { partition, region, accountId: memberAccountId ?? accountId };
}

export const productArnFor = (ctx: AccountContext) =>
  `arn:${ctx.partition}:securityhub:${ctx.region}:${ctx.accountId}:product/${ctx.accountId}/default`;

/**
 * Deterministic per account, type, user and key (per user for TWO_ACTIVE_KEYS; per root key slot).
 * A service credential's: per credential id (per user and service for TWO_ACTIVE_KEYS).
 */
export function findingIdFor(ctx: AccountContext, f: Finding): string {
  const key =
    f.type === 'TWO_ACTIVE_KEYS'
      ? f.serviceName
        ? `/${f.serviceName}`
        : ''
      : `/${credentialIdOf(f) ?? `key-${f.keySlot}`}`;
  return `rekey/${ctx.accountId}/${f.type}/${f.userName}${key}`;
}

const FSBP = 'standards/aws-foundational-security-best-practices/v/1.0.0';
const CIS_120 = 'ruleset/cis-aws-foundations-benchmark/v/1.2.0';
const CIS_140 = 'standards/cis-aws-foundations-benchmark/v/1.4.0';
const CIS_300 = 'standards/cis-aws-foundations-benchmark/v/3.0.0';

interface ControlMapping {
  related: string[];
  standards: string[];
}

/** From the Security Hub control reference (IAM controls) and the CIS AWS Foundations Benchmark. */
export const CONTROLS: Record<FindingType, ControlMapping> = {
  OLD_KEY: {
    related: [
      'Security Hub IAM.3',
      'CIS AWS Foundations Benchmark v1.4.0/1.14',
      'CIS AWS Foundations Benchmark v3.0.0/1.14',
    ],
    standards: [FSBP, CIS_140, CIS_300],
  },
  EXPIRING_KEY: {
    related: [
      'Security Hub IAM.3',
      'CIS AWS Foundations Benchmark v1.4.0/1.14',
      'CIS AWS Foundations Benchmark v3.0.0/1.14',
    ],
    standards: [FSBP, CIS_140, CIS_300],
  },
  UNUSED_KEY: {
    related: [
      'Security Hub IAM.8',
      'Security Hub IAM.22',
      'CIS AWS Foundations Benchmark v1.2.0/1.3',
      'CIS AWS Foundations Benchmark v1.4.0/1.12',
      'CIS AWS Foundations Benchmark v3.0.0/1.12',
    ],
    standards: [FSBP, CIS_120, CIS_140, CIS_300],
  },
  ROOT_ACCESS_KEY: {
    related: [
      'Security Hub IAM.4',
      'CIS AWS Foundations Benchmark v1.2.0/1.12',
      'CIS AWS Foundations Benchmark v1.4.0/1.4',
      'CIS AWS Foundations Benchmark v3.0.0/1.4',
    ],
    standards: [FSBP, CIS_120, CIS_140, CIS_300],
  },
  TWO_ACTIVE_KEYS: {
    related: ['CIS AWS Foundations Benchmark v1.4.0/1.13', 'CIS AWS Foundations Benchmark v3.0.0/1.13'],
    standards: [CIS_140, CIS_300],
  },
};

/** A service credential's finding, in words (there is no UNUSED_KEY or ROOT_ACCESS_KEY for them). */
function serviceTitleOf(f: Finding, t: Thresholds): string {
  const what = `Service-specific credential ${f.serviceSpecificCredentialId} (${f.serviceName}) of ${f.userName}`;
  switch (f.type) {
    case 'TWO_ACTIVE_KEYS':
      return `IAM user ${f.userName} has two active ${f.serviceName} credentials`;
    case 'EXPIRING_KEY':
      return `${what} must be rotated within ${t.maxKeyAgeDays + 1 - f.ageDays} days`;
    default:
      return `${what} is ${f.ageDays} days old (limit ${t.maxKeyAgeDays})`;
  }
}

function titleOf(f: Finding, t: Thresholds): string {
  if (f.serviceName) return serviceTitleOf(f, t);
  switch (f.type) {
    case 'OLD_KEY':
      return `IAM access key ${f.accessKeyId} of ${f.userName} is ${f.ageDays} days old (limit ${t.maxKeyAgeDays})`;
    case 'EXPIRING_KEY':
      return `IAM access key ${f.accessKeyId} of ${f.userName} must be rotated within ${t.maxKeyAgeDays + 1 - f.ageDays} days`;
    case 'UNUSED_KEY':
      return `IAM access key ${f.accessKeyId} of ${f.userName} unused for ${f.idleDays} days`;
    case 'TWO_ACTIVE_KEYS':
      return `IAM user ${f.userName} has two active access keys`;
    case 'ROOT_ACCESS_KEY':
      return 'The root user has an active access key';
  }
}

function descriptionOf(f: Finding, t: Thresholds, actions: readonly ActionOutcome[]): string {
  const used = f.lastUsedDate ? `last used ${f.lastUsedDate}` : 'never used';
  const service = f.serviceName
    ? f.type === 'TWO_ACTIVE_KEYS'
      ? `IAM user ${f.userName} has two active ${f.serviceName} credentials, ${f.serviceSpecificCredentialId} and ${f.other?.serviceSpecificCredentialId}. rekey does not rotate them while both are active.`
      : `Active ${f.serviceName} credential ${f.serviceSpecificCredentialId} of IAM user ${f.userName} was created ${f.createDate} (${f.ageDays} days ago); IAM records no last use for it. rekey rotates credentials older than ${t.maxKeyAgeDays} days.`
    : null;
  const base: Record<FindingType, string> = {
    OLD_KEY: `Active access key ${f.accessKeyId} of IAM user ${f.userName} was created ${f.createDate} (${f.ageDays} days ago) and ${used}. Keys should be rotated every ${t.maxKeyAgeDays} days or less.`,
    EXPIRING_KEY: `Active access key ${f.accessKeyId} of IAM user ${f.userName} is ${f.ageDays} days old and becomes older than ${t.maxKeyAgeDays} days soon.`,
    UNUSED_KEY: `Active access key ${f.accessKeyId} of IAM user ${f.userName} was ${used} (${f.idleDays} days idle; limit ${t.unusedDays}). Unused credentials should be deactivated or removed.`,
    TWO_ACTIVE_KEYS: `IAM user ${f.userName} has two active access keys, ${f.accessKeyId} and ${f.other?.accessKeyId}. A user should have one active key; rekey does not rotate such a user.`,
    ROOT_ACCESS_KEY: `The root user has an active access key (key ${f.keySlot}, created ${f.createDate}, ${used}). Delete it.`,
  };
  const exemption = f.exemption
    ? f.exemption.expired
      ? ` The user's exemption expired ${f.exemption.until}: ${f.exemption.reason}.`
      : ` Exempt${f.exemption.until ? ` until ${f.exemption.until}` : ''}: ${f.exemption.reason}.`
    : '';
  return `${service ?? base[f.type]}${exemption} rekey: ${actionText(f, actions)}.`.slice(0, 1024);
}

function resourcesOf(ctx: AccountContext, f: Finding): NonNullable<AwsSecurityFinding['Resources']> {
  const common = { Partition: ctx.partition as 'aws', Region: ctx.region };
  if (f.type === 'ROOT_ACCESS_KEY')
    return [{ Type: 'AwsAccount', Id: `AWS::::Account:${ctx.accountId}`, ...common }];
  const user = {
    Type: 'AwsIamUser',
    Id: f.userArn,
    ...common,
    Details: { AwsIamUser: { UserName: f.userName } },
  };
  if (f.serviceName) {
    // ASFF has no resource type for these credentials: `Other`, named by service and id.
    const credential = (id: string | undefined) => ({
      Type: 'Other',
      Id: `AWS::IAM::ServiceSpecificCredential:${id}`,
      ...common,
      Details: { Other: { UserName: f.userName, ServiceName: f.serviceName as string, Id: id ?? '' } },
    });
    return [
      credential(f.serviceSpecificCredentialId),
      ...(f.other ? [credential(f.other.serviceSpecificCredentialId)] : []),
      user,
    ];
  }
  const keyResource = (accessKeyId: string | null, createDate?: string) => ({
    Type: 'AwsIamAccessKey',
    Id: `AWS::IAM::AccessKey:${accessKeyId}`,
    ...common,
    Details: {
      AwsIamAccessKey: {
        UserName: f.userName,
        Status: 'Active' as const,
        ...(createDate ? { CreatedAt: createDate } : {}),
        ...(accessKeyId ? { AccessKeyId: accessKeyId } : {}),
      },
    },
  });
  const keys =
    f.type === 'TWO_ACTIVE_KEYS'
      ? [keyResource(f.accessKeyId, f.createDate), keyResource(f.other?.accessKeyId ?? null)]
      : [keyResource(f.accessKeyId, f.createDate)];
  return [...keys, user];
}

export interface AsffOptions {
  ctx: AccountContext;
  now: Date;
  thresholds: Thresholds;
  actions: readonly ActionOutcome[];
  /** The finding as Security Hub holds it from an earlier run, if any. */
  existing?: AwsSecurityFinding | undefined;
}

export function toAsff(f: Finding, options: AsffOptions): AwsSecurityFinding {
  const { ctx, now, thresholds, existing } = options;
  const exempt = isActiveExemption(f.exemption);
  const mapping = CONTROLS[f.type];
  const nowIso = now.toISOString();
  // Workflow belongs to the people triaging: set it when the finding is new or its exemption changed.
  const suppressed = existing?.Workflow?.Status === 'SUPPRESSED';
  const workflow = !existing
    ? { Status: exempt ? 'SUPPRESSED' : 'NEW' }
    : exempt !== suppressed
      ? { Status: exempt ? 'SUPPRESSED' : 'NEW' }
      : undefined;
  return {
    SchemaVersion: SCHEMA_VERSION,
    Id: findingIdFor(ctx, f),
    ProductArn: productArnFor(ctx),
    GeneratorId: GENERATOR_ID,
    AwsAccountId: ctx.accountId,
    Types: [FINDING_TYPE_ASFF],
    CreatedAt: existing?.CreatedAt ?? nowIso,
    FirstObservedAt: existing?.FirstObservedAt ?? nowIso,
    LastObservedAt: nowIso,
    UpdatedAt: nowIso,
    Severity: { Label: SEVERITY[f.type] },
    Title: titleOf(f, thresholds).slice(0, 256),
    Description: descriptionOf(f, thresholds, options.actions),
    Resources: resourcesOf(ctx, f),
    ...(f.serviceName
      ? {}
      : {
          Compliance: {
            Status: f.type === 'EXPIRING_KEY' ? 'WARNING' : 'FAILED',
            RelatedRequirements: mapping.related,
            AssociatedStandards: mapping.standards.map((StandardsId) => ({ StandardsId })),
          },
        }),
    ...(workflow ? { Workflow: workflow as AwsSecurityFinding['Workflow'] } : {}),
    RecordState: 'ACTIVE',
    ProductFields: {
      'rekey/FindingType': f.type,
      'rekey/UserName': f.userName,
      ...(f.accessKeyId ? { 'rekey/AccessKeyId': f.accessKeyId } : {}),
      ...(f.serviceName
        ? {
            'rekey/ServiceName': f.serviceName,
            'rekey/ServiceSpecificCredentialId': f.serviceSpecificCredentialId ?? '',
          }
        : {}),
      'rekey/AgeDays': String(f.ageDays),
      'rekey/LastUsedDate': f.lastUsedDate ?? 'never',
    },
  };
}

/** An open finding whose condition cleared: PASSED, ARCHIVED, RESOLVED (fields copied by name). */
export function resolvedAsff(existing: AwsSecurityFinding, now: Date): AwsSecurityFinding {
  return {
    SchemaVersion: existing.SchemaVersion,
    Id: existing.Id,
    ProductArn: existing.ProductArn,
    GeneratorId: existing.GeneratorId,
    AwsAccountId: existing.AwsAccountId,
    Types: existing.Types,
    CreatedAt: existing.CreatedAt,
    ...(existing.FirstObservedAt ? { FirstObservedAt: existing.FirstObservedAt } : {}),
    UpdatedAt: now.toISOString(),
    // Security Hub's convention for a passed check.
    Severity: { Label: 'INFORMATIONAL' },
    Title: existing.Title,
    Description:
      `Resolved: the condition no longer holds (checked ${now.toISOString()}). Was: ${existing.Description ?? ''}`.slice(
        0,
        1024,
      ),
    Resources: existing.Resources,
    // A finding imported without Compliance (a service credential's: no control) stays without.
    ...(existing.Compliance
      ? {
          Compliance: {
            ...(existing.Compliance.RelatedRequirements
              ? { RelatedRequirements: existing.Compliance.RelatedRequirements }
              : {}),
            ...(existing.Compliance.AssociatedStandards
              ? { AssociatedStandards: existing.Compliance.AssociatedStandards }
              : {}),
            Status: 'PASSED',
          },
        }
      : {}),
    Workflow: { Status: 'RESOLVED' },
    RecordState: 'ARCHIVED',
    ...(existing.ProductFields ? { ProductFields: existing.ProductFields } : {}),
  } as AwsSecurityFinding;
}

export interface SecurityHubDeps {
  securityHub: SecurityHubClient;
  clock: Clock;
}

/** rekey's open findings in this account (GetFindings, paginated). */
export async function openFindings(
  deps: SecurityHubDeps,
  ctx: AccountContext,
): Promise<AwsSecurityFinding[]> {
  const found: AwsSecurityFinding[] = [];
  const productArn = productArnFor(ctx);
  const pages = paginateGetFindings(
    { client: deps.securityHub, pageSize: 100 },
    {
      Filters: {
        GeneratorId: [{ Value: GENERATOR_ID, Comparison: 'EQUALS' }],
        RecordState: [{ Value: 'ACTIVE', Comparison: 'EQUALS' }],
        AwsAccountId: [{ Value: ctx.accountId, Comparison: 'EQUALS' }],
        ProductArn: [{ Value: productArn, Comparison: 'EQUALS' }],
      },
    },
  );
  for await (const page of pages) {
    for (const f of page.Findings ?? []) {
      if (
        f.GeneratorId === GENERATOR_ID &&
        f.RecordState === 'ACTIVE' &&
        f.AwsAccountId === ctx.accountId &&
        f.ProductArn === productArn
      )
        found.push(f);
    }
  }
  return found;
}

export async function syncSecurityHub(
  deps: SecurityHubDeps,
  findings: readonly Finding[],
  options: Omit<AsffOptions, 'existing' | 'now'>,
): Promise<{ imported: number; resolved: number }> {
  const now = deps.clock.now();
  const open = new Map((await openFindings(deps, options.ctx)).map((f) => [f.Id, f]));
  const current = findings.map((f) =>
    toAsff(f, { ...options, now, existing: open.get(findingIdFor(options.ctx, f)) }),
  );
  const currentIds = new Set(current.map((f) => f.Id));
  const resolved = [...open.values()].filter((f) => !currentIds.has(f.Id)).map((f) => resolvedAsff(f, now));
  const all = [...current, ...resolved];
  for (let i = 0; i < all.length; i += IMPORT_BATCH) {
    const out = await deps.securityHub.send(
      new BatchImportFindingsCommand({ Findings: all.slice(i, i + IMPORT_BATCH) }),
    );
    if (out.FailedCount) throw new SecurityHubImportFailed(out.FailedFindings ?? []);
  }
  return { imported: current.length, resolved: resolved.length };
}
