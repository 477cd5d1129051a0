/**
 * Shared by the organization rotation workflow files (test/workflow/organization-rotation.test.ts,
 * test/workflow/organization-rotation-hub-secrets.test.ts): one world per file, since the
 * handlers' module-scope clients keep the endpoint of the first emulator a file starts.
 */
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { expect } from 'vitest';
import type { RotationResult } from '../../cli/local-runner.ts';
import {
  type AccountState,
  type NotificationWithAttributes,
  type RecordedCall,
  recordCalls,
  type World,
  type WorldAccount,
} from './harness.ts';

/** A 12-digit id no account of the emulator's organization has. */
export const OUTSIDE = '999999999999';

/** A Lambda error's Cause, as Step Functions reports it: {"errorType", "errorMessage"}. */
export const causeOf = (r: RotationResult): { errorType?: string; errorMessage?: string } =>
  JSON.parse(r.cause ?? '{}');

/** The steps that failed, with their errors (a failed assertion's message says where a run went wrong). */
export const failures = (r: RotationResult): string =>
  JSON.stringify({
    error: r.error,
    cause: r.cause,
    tasks: r.tasks.filter((t) => t.error).map((t) => ({ state: t.state, error: t.error })),
  });

export interface LockRow {
  subject: string;
  owner: string | undefined;
}

/** The lock table's items: each subject and who holds it (undefined: released). */
export async function locksOf(world: World): Promise<LockRow[]> {
  const dynamodb = new DynamoDBClient({
    endpoint: world.moto.endpoint,
    region: 'us-east-1',
    credentials: world.admin,
  });
  try {
    const items =
      (await dynamodb.send(new ScanCommand({ TableName: world.env.REKEY_LOCK_TABLE }))).Items ?? [];
    return items.map((i) => ({ subject: i.userName?.S ?? '', owner: i.owner?.S }));
  } finally {
    dynamodb.destroy();
  }
}

/** Every account's state, by account id. */
export async function statesOf(accounts: readonly WorldAccount[]): Promise<Record<string, AccountState>> {
  const states: Record<string, AccountState> = {};
  for (const account of accounts) states[account.accountId] = await account.state();
  return states;
}

/** Runs the rotation with every call recorded. */
export async function recordedRun(
  world: World,
  input: Record<string, unknown>,
): Promise<{ result: RotationResult; calls: RecordedCall[] }> {
  const { roles, calls } = recordCalls(world.roles);
  const result = await world.run(input, { roles });
  return { result, calls };
}

/** The accounts (other than the hub) the calls acted in or assumed a role in. */
export const accountsCalled = (calls: readonly RecordedCall[], hubId: string): string[] => {
  const found = new Set<string>();
  for (const c of calls) {
    if (c.account !== undefined) found.add(c.account);
    const arn = String(c.input.RoleArn ?? '');
    if (c.action === 'sts:AssumeRole') found.add(arn.split(':')[4] ?? arn);
  }
  found.delete(hubId);
  return [...found].sort();
};

/**
 * What the account's state is after alice's only key was replaced by `newKeyId` and the new key
 * stored in `secretName` (a secret made by this rotation: one version, AWSCURRENT).
 */
export const rotatedState = (
  before: AccountState,
  newKeyId: string,
  secretName: string | undefined,
): AccountState => ({
  users: { ...before.users, alice: [{ id: newKeyId, status: 'Active' }] },
  secrets:
    secretName === undefined
      ? before.secrets
      : {
          ...before.secrets,
          [secretName]: [{ versionId: expect.any(String), stages: ['AWSCURRENT'], accessKeyId: newKeyId }],
        },
});

/** Every event and SNS message carries `accountId`, and the message text names it. */
export function expectAccountEverywhere(notifications: NotificationWithAttributes, accountId: string): void {
  expect(notifications.events.length).toBeGreaterThan(0);
  expect(notifications.sns.length).toBeGreaterThan(0);
  for (const event of notifications.events) expect(event.detail.accountId).toBe(accountId);
  expect(notifications.snsAttributes).toHaveLength(notifications.sns.length);
  for (const attributes of notifications.snsAttributes) expect(attributes.accountId).toBe(accountId);
  for (const body of notifications.sns) expect(body).toContain(accountId);
}
