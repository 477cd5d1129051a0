/**
 * Fixtures of the audit unit tests: credential report CSVs as IAM writes them, users, findings.
 * Not a test file (vitest only collects *.test.ts).
 */

import type { UserDetail } from '../../../lambdas/audit/findings.ts';
import { ACCOUNT, DAY, NOW } from '../../support/lambda-fixtures.ts';
import { expectNoSecrets } from '../../support/secrets.ts';

export { ACCOUNT, DAY, NOW };

export const HEADER =
  'user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,' +
  'mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,' +
  'access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,' +
  'access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,' +
  'cert_2_last_rotated';

/** IAM's date format in the report: seconds, explicit +00:00. */
export const reportDate = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, '+00:00');
export const ago = (days: number, hours = 0) => new Date(NOW.getTime() - days * DAY - hours * 3_600_000);

export interface KeySpec {
  active?: boolean;
  /** Days ago the key was created. */
  created: number;
  /** Days ago it was last used; undefined: never used. */
  used?: number;
}

export interface RowSpec {
  user: string;
  arn?: string;
  key1?: KeySpec;
  key2?: KeySpec;
}

function keyColumns(k: KeySpec | undefined): string[] {
  if (!k) return ['false', 'N/A', 'N/A', 'N/A', 'N/A'];
  const used = k.used === undefined ? null : ago(k.used);
  return [
    k.active === false ? 'false' : 'true',
    reportDate(ago(k.created)),
    used ? reportDate(used) : 'N/A',
    used ? 'us-east-1' : 'N/A',
    used ? 's3' : 'N/A',
  ];
}

export function reportRow(spec: RowSpec): string {
  const root = spec.user === '<root_account>';
  const arn =
    spec.arn ?? (root ? `arn:aws:iam::${ACCOUNT}:root` : `arn:aws:iam::${ACCOUNT}:user/${spec.user}`);
  return [
    spec.user,
    arn,
    reportDate(ago(400)),
    root ? 'not_supported' : 'false',
    root ? '2026-02-01T10:00:00+00:00' : 'N/A',
    root ? 'not_supported' : 'N/A',
    'not_supported',
    'true',
    ...keyColumns(spec.key1),
    ...keyColumns(spec.key2),
    'false',
    'N/A',
    'false',
    'N/A',
  ].join(',');
}

export const reportCsv = (rows: RowSpec[]) => `${[HEADER, ...rows.map(reportRow)].join('\n')}\n`;

export function userDetail(userName: string, tags: Record<string, string> = {}, path = '/'): UserDetail {
  return { userName, path, tags: new Map(Object.entries(tags)) };
}

export const usersOf = (...details: UserDetail[]) => new Map(details.map((d) => [d.userName, d]));

/** Made-up secret access keys: the tests prove none reaches a digest, an event or a finding. */
export const FAKE_SECRETS = [
  'tEsTsEcReT/DoNoTuSe+0123456789abcdefGHIJ',
  'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
];

/** The audit's unit tests' scan: the made-up keys, and anything shaped like a secret access key. */
export const expectNoSecretsInText = (text: string) =>
  expectNoSecrets({ secrets: FAKE_SECRETS, shaped: true }, { 'the output': text });
