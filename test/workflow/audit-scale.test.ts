/**
 * The audit's cost does not grow with the number of users: one credential report and one pass
 * over the authorization details, whatever the account size. Measured at 1,000 and 10,000 users
 * (moto answers GetAccountAuthorizationDetails in one page however many users; real IAM pages
 * 1,000 users at a time, i.e. 10 calls at 10,000 users, still independent of findings).
 * The same 20 users have findings at both sizes, so the per-finding ListAccessKeys calls match too.
 */
import { GenerateCredentialReportCommand } from '@aws-sdk/client-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditWorld, startAuditWorld, type UserSpec } from './audit-world.ts';

const FINDING_USERS: UserSpec[] = [
  ...Array.from({ length: 10 }, (_, i) => ({
    userName: `old-${i}`,
    path: '/svc/',
    keys: [{ createdDaysAgo: 100, usedDaysAgo: 1 }],
  })),
  ...Array.from({ length: 10 }, (_, i) => ({
    userName: `unused-${i}`,
    path: '/svc/',
    keys: [{ createdDaysAgo: 60 }],
  })),
];
const ENV = { REKEY_USER_PATH_PREFIX: '/svc/' };

let world: AuditWorld;

beforeAll(async () => {
  world = await startAuditWorld();
  await world.seed(FINDING_USERS);
  // As after any earlier audit: a report exists, so each run below asks once and gets COMPLETE.
  await world.iam.send(new GenerateCredentialReportCommand({}));
}, 120_000);
afterAll(async () => {
  await world?.stop();
});

interface Measured {
  users: number;
  seconds: number;
  calls: Record<string, number>;
  requests: Record<string, number>;
}

async function measure(): Promise<Measured> {
  const started = Date.now();
  const { summary, calls, requests } = await world.audit(ENV);
  const seconds = (Date.now() - started) / 1000;
  console.error(
    `audit of ${summary.usersScanned} users: ${seconds.toFixed(1)} s, ${calls.total} IAM API calls ` +
      `(${calls.scanCalls} to scan, ${calls.perFindingCalls} per user with a finding): ${JSON.stringify(calls.toJSON())}`,
  );
  expect(summary.findings).toMatchObject({ OLD_KEY: 10, UNUSED_KEY: 10 });
  return {
    users: summary.usersScanned,
    seconds,
    calls: calls.toJSON(),
    requests: Object.fromEntries(requests),
  };
}

describe('the audit at scale', () => {
  it('makes the same number of IAM calls for 1,000 and 10,000 users', async () => {
    let t = Date.now();
    await world.bulkCreateUsers('bulk-', 0, 1000 - FINDING_USERS.length);
    console.error(`seeded 1,000 users in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const small = await measure();

    t = Date.now();
    await world.bulkCreateUsers('bulk-', 1000 - FINDING_USERS.length, 10_000 - FINDING_USERS.length);
    console.error(`seeded 9,000 more users in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const large = await measure();

    expect(small.users).toBe(1_000);
    expect(large.users).toBe(10_000);
    expect(small.calls).toEqual({
      GenerateCredentialReport: 1,
      GetCredentialReport: 1,
      GetAccountAuthorizationDetails: 1,
      ListAccessKeys: 20,
    });
    expect(large.calls).toEqual(small.calls);
    // What left the IAM client agrees with the audit's own count.
    expect(small.requests).toEqual(small.calls);
    expect(large.requests).toEqual(large.calls);
  }, 600_000);
});
