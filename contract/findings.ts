/**
 * The audit's finding types, most severe first (the order of the digest, the events and the
 * CLI): what lambdas/audit/findings.ts decides, and the FindingType dimension of the Findings
 * metric the dashboard draws.
 */
export const FINDING_TYPES = [
  'ROOT_ACCESS_KEY',
  'OLD_KEY',
  'UNUSED_KEY',
  'TWO_ACTIVE_KEYS',
  'EXPIRING_KEY',
] as const;
export type FindingType = (typeof FINDING_TYPES)[number];
