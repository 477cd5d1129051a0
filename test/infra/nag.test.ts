/**
 * cdk-nag: the AWS Solutions and NIST 800-53 rev 5 packs find nothing unacknowledged, for every
 * configuration that changes the template's shape. Every acknowledgement has a reason and
 * excuses a finding that really occurs (none is left over after the code it excused changed).
 * The per-rule tally of acknowledged findings is printed for the record.
 */
import { App, Validations } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import { AwsSolutionsChecks, type NagPack, NIST80053R5Checks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../infra/config.ts';
import { MEMBER_STACK_ID, RekeyMemberStack } from '../../infra/member-stack.ts';
import { RekeyStack } from '../../infra/rekey-stack.ts';
import { synth } from './helpers.ts';

const packs = (): NagPack[] => [new AwsSolutionsChecks(), new NIST80053R5Checks()];

interface Finding {
  rule: string;
  path: string;
}

function findings(scope: IConstruct, pack: NagPack): Finding[] {
  return pack
    .validateScope(scope)
    .violations.flatMap((v) =>
      v.violatingResources.map((r) => ({ rule: v.ruleName, path: r.constructPath ?? '' })),
    );
}

/** What the packs find with acknowledgements honoured: must be nothing. */
const unacknowledged = (scope: IConstruct) => packs().flatMap((pack) => findings(scope, pack));

/**
 * Everything the packs find, acknowledged or not. NagPack exposes no switch for this, so the
 * check for acknowledgements is replaced on these pack instances only.
 */
function everything(scope: IConstruct): Finding[] {
  return packs().flatMap((pack) => {
    (pack as unknown as { isAcknowledged: () => boolean }).isAcknowledged = () => false;
    return findings(scope, pack);
  });
}

interface Acknowledgement {
  id: string;
  path: string;
  reason: string;
}

function acknowledgements(scope: IConstruct): Acknowledgement[] {
  return scope.node.findAll().flatMap((c) =>
    c.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY && m.data)
      .flatMap((m) =>
        Object.entries(m.data as Record<string, string>).map(([key, reason]) => ({
          id: key.replace(/^annotation::/i, ''),
          path: c.node.path,
          reason,
        })),
      ),
  );
}

const excuses = (ack: Acknowledgement, f: Finding) =>
  f.rule === ack.id && (f.path === ack.path || f.path.startsWith(`${ack.path}/`));

const CONFIGS: Array<[string, Record<string, unknown>]> = [
  ['the defaults', {}],
  [
    'a path, a prefix and CloudTrail lookups',
    { cloudTrailLookup: true, userPathPrefix: '/ci/', secretPrefix: 'keys/' },
  ],
  [
    'scoping and consumers',
    {
      optInTag: 'rekey:opt-in',
      protectedUsers: ['break-glass'],
      consumerPrincipals: ['arn:aws:iam::210987654321:role/reader', 'arn:aws:iam::123456789012:role/ci'],
      notificationEmails: ['secops@example.com'],
    },
  ],
  [
    'every audit option',
    { deactivateUnused: true, securityHub: true, auditReports: true, protectedUsers: ['break-glass'] },
  ],
  ['no automatic rotation', { autoRotate: false }],
];

/** Organizations, both secrets modes: the hub stack and the member stack (docs/organizations.md). */
const organization = (secrets: 'member' | 'hub') => ({
  organizationId: 'o-exampleorg1',
  secrets,
  stackSetTargets: ['r-ab12'],
  stackSetRegions: ['us-east-1'],
});
const ORGANIZATION_CONFIGS: Array<[string, Record<string, unknown>]> = [
  ['an organization, secrets in the members', { organization: organization('member') }],
  [
    'an organization, secrets in the hub, every option',
    {
      // OU rules: the organization audit's listing walks the tree (its own grants).
      organization: {
        ...organization('hub'),
        include: { organizationalUnits: ['ou-ab12-cdefgh34'] },
        auditConcurrency: 25,
      },
      cloudTrailLookup: true,
      userPathPrefix: '/ci/',
      protectedUsers: ['break-glass'],
      deactivateUnused: true,
      securityHub: true,
    },
  ],
  [
    'an organization, secrets in the members, every option',
    {
      organization: organization('member'),
      cloudTrailLookup: true,
      optInTag: 'rekey:opt-in',
      protectedUsers: ['break-glass'],
      consumerPrincipals: ['arn:aws:iam::210987654321:role/reader'],
      deactivateUnused: true,
      securityHub: true,
    },
  ],
];

/** The member stack of a configuration, in an app of its own. */
function memberStack(raw: Record<string, unknown>): RekeyMemberStack {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  return new RekeyMemberStack(app, MEMBER_STACK_ID, { config: loadConfig(raw) });
}

const STACKS: Array<[string, () => IConstruct]> = [
  ...[...CONFIGS, ...ORGANIZATION_CONFIGS].map(
    ([name, raw]) => [`RekeyStack, ${name}`, () => synth(raw).stack] as [string, () => IConstruct],
  ),
  ...ORGANIZATION_CONFIGS.map(
    ([name, raw]) => [`RekeyMemberStack, ${name}`, () => memberStack(raw)] as [string, () => IConstruct],
  ),
];

describe.each(STACKS)('cdk-nag on %s', (name, make) => {
  const stack = make();

  it('AwsSolutions and NIST 800-53 rev 5 find nothing unacknowledged', () => {
    expect(unacknowledged(stack).map((f) => `${f.rule} at ${f.path}`)).toEqual([]);
  });

  it('every acknowledgement gives a reason and excuses a finding that occurs', () => {
    const all = everything(stack);
    for (const ack of acknowledgements(stack)) {
      expect(ack.reason.length, `${ack.id} at ${ack.path}`).toBeGreaterThan(40);
      expect(
        all.some((f) => excuses(ack, f)),
        `${ack.id} at ${ack.path} excuses nothing`,
      ).toBe(true);
    }
    // The record: acknowledged findings per rule (logical ids generalised), with the reasons.
    const general = (rule: string) => rule.replace(/<[A-Za-z0-9]+\.(Arn|Name)>/g, '<$1 of a rekey resource>');
    const tally = new Map<string, { count: number; reasons: Set<string> }>();
    const acks = acknowledgements(stack);
    for (const f of all) {
      const entry = tally.get(general(f.rule)) ?? { count: 0, reasons: new Set<string>() };
      entry.count += 1;
      const ack = acks.filter((a) => excuses(a, f)).sort((a, b) => b.path.length - a.path.length)[0];
      if (ack) entry.reasons.add(ack.reason);
      tally.set(general(f.rule), entry);
    }
    console.info(
      `cdk-nag, ${name}: ${all.length} acknowledged findings\n${[...tally]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(
          ([rule, { count, reasons }]) =>
            `  ${count} x ${rule}\n${[...reasons].map((r) => `      - ${r}`).join('\n')}`,
        )
        .join('\n')}`,
    );
  });
});

describe('the gate itself', () => {
  it('reports a finding nobody acknowledged', () => {
    // Prepare: the stack plus a log group with no retention and no encryption.
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new RekeyStack(app, 'RekeyStack', { config: loadConfig({}) });
    new logs.LogGroup(stack, 'Stray', { retention: logs.RetentionDays.INFINITE });

    // Act
    const found = unacknowledged(stack);

    // Assess
    expect(found).toContainEqual({
      rule: 'NIST.800.53.R5-CloudWatchLogGroupEncrypted',
      path: 'RekeyStack/Stray/Resource',
    });
    expect(found).toContainEqual({
      rule: 'NIST.800.53.R5-CloudWatchLogGroupRetentionPeriod',
      path: 'RekeyStack/Stray/Resource',
    });
  });
});
