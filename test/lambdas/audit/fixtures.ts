/**
 * A small audit run (findings of every type, exempt and expired-exempt users, and the actions on
 * them) shared by the alert and Security Hub tests. Not a test file.
 */

import type { ServiceName } from '../../../contract/schemas.ts';
import type { ActionOutcome } from '../../../lambdas/audit/actions.ts';
import type { AuditReport } from '../../../lambdas/audit/alerts.ts';
import { DEFAULT_THRESHOLDS, type Finding, type ServiceCredential } from '../../../lambdas/audit/findings.ts';
import { ACCOUNT, ago, NOW } from './helpers.ts';

export function finding(over: Partial<Finding> & Pick<Finding, 'type' | 'userName'>): Finding {
  return {
    userArn: `arn:aws:iam::${ACCOUNT}:user/${over.userName}`,
    accessKeyId: null,
    keySlot: 1,
    ageDays: 100,
    lastUsedDate: ago(1).toISOString(),
    idleDays: 1,
    createDate: ago(100).toISOString(),
    exemption: null,
    ...over,
  };
}

export const KEYS = {
  alice: 'AKIAALICE00000000001',
  bob: 'AKIABOB0000000000002',
  carol: 'AKIACAROL00000000003',
  dave1: 'AKIADAVE000000000004',
  dave2: 'AKIADAVE000000000005',
  vendor: 'AKIAVENDOR0000000007',
  lapsed: 'AKIALAPSED0000000008',
} as const;

export const FINDINGS: Finding[] = [
  finding({
    type: 'ROOT_ACCESS_KEY',
    userName: '<root_account>',
    userArn: `arn:aws:iam::${ACCOUNT}:root`,
    ageDays: 800,
  }),
  finding({ type: 'OLD_KEY', userName: 'alice', accessKeyId: KEYS.alice, ageDays: 120 }),
  finding({
    type: 'OLD_KEY',
    userName: 'vendor',
    accessKeyId: KEYS.vendor,
    ageDays: 300,
    exemption: { reason: 'SMTP relay, SEC-12', until: '2026-12-31T23:59:59.999Z', expired: false },
  }),
  finding({
    type: 'OLD_KEY',
    userName: 'lapsed',
    accessKeyId: KEYS.lapsed,
    ageDays: 95,
    exemption: { reason: 'migration', until: '2026-01-31T23:59:59.999Z', expired: true },
  }),
  finding({
    type: 'UNUSED_KEY',
    userName: 'bob',
    accessKeyId: KEYS.bob,
    ageDays: 60,
    idleDays: 60,
    lastUsedDate: null,
    createDate: ago(60).toISOString(),
  }),
  finding({
    type: 'TWO_ACTIVE_KEYS',
    userName: 'dave',
    accessKeyId: KEYS.dave1,
    ageDays: 30,
    other: { keySlot: 2, accessKeyId: KEYS.dave2, ageDays: 2 },
  }),
  finding({ type: 'EXPIRING_KEY', userName: 'carol', accessKeyId: KEYS.carol, ageDays: 80 }),
];

export const ACTIONS: ActionOutcome[] = [
  {
    kind: 'ROTATION',
    status: 'STARTED',
    userName: 'lapsed',
    accessKeyId: KEYS.lapsed,
    detail: 'rotation started',
    executionName: `rekey-lapsed-${KEYS.lapsed}`,
  },
  {
    kind: 'ROTATION',
    status: 'ALREADY_STARTED',
    userName: 'alice',
    accessKeyId: KEYS.alice,
    detail: 'rotation already started earlier',
    executionName: `rekey-alice-${KEYS.alice}`,
  },
  {
    kind: 'ROTATION',
    status: 'SKIPPED',
    userName: 'vendor',
    accessKeyId: KEYS.vendor,
    detail: 'exempt until 2026-12-31: SMTP relay, SEC-12',
  },
];

export function report(over: Partial<AuditReport> = {}): AuditReport {
  return {
    auditedAt: NOW,
    accountId: ACCOUNT,
    reportGeneratedAt: new Date(NOW.getTime() - 3_600_000),
    usersScanned: 250,
    findings: FINDINGS,
    stale: [],
    actions: ACTIONS,
    thresholds: DEFAULT_THRESHOLDS,
    policy: {
      autoRotate: true,
      deactivateUnused: false,
      deactivateUnusedAfterDays: 90,
      maxRotationsPerRun: 25,
      maxRotationAttempts: 3,
    },
    dryRun: false,
    ...over,
  };
}

export const CASSANDRA: ServiceName = 'cassandra.amazonaws.com';
export const CODECOMMIT: ServiceName = 'codecommit.amazonaws.com';

/** A service-specific credential as the audit lists it. */
export const serviceCredential = (
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

/** A service credential's finding (the shape evaluateServiceCredentials makes). */
export const serviceFinding = (
  over: Partial<Finding> & Pick<Finding, 'type' | 'userName' | 'serviceSpecificCredentialId'>,
): Finding => finding({ serviceName: CASSANDRA, lastUsedDate: null, idleDays: null, ...over });

/** The service-credential findings and action the alerts and Security Hub tests share. */
export function serviceCredentialRun() {
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
  return { old, two, started, run };
}
