/**
 * The audit's cost does not grow with the number of users: one credential report and one pass
 * over the authorization details, whatever the account size. Measured at 1,000 and 10,000 users
 * (moto answers GetAccountAuthorizationDetails in one page however many users; real IAM pages
 * 1,000 users at a time, i.e. 10 calls at 10,000 users, still independent of findings).
 * The same 20 users have findings at both sizes, so the per-finding ListAccessKeys calls match too.
 *
 * Service-specific credentials are listed with one AllUsers pass per service, 1,000 a page: O(pages)
 * of credentials, never a call per user or per finding. moto lacks the operation, so a second run
 * at each size answers it inside the audit's IAM client, paged as IAM pages it, for an account
 * where every user has a Keyspaces credential and the ten `old-*` users an old CodeCommit one.
 */

import type { ServiceSpecificCredentialMetadata } from '@aws-sdk/client-iam';
import { GenerateCredentialReportCommand } from '@aws-sdk/client-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AuditWorld,
  pagedServiceCredentials,
  SCALE_FINDING_USERS,
  startAuditWorld,
} from '../../support/audit-world.ts';

const FINDING_USERS = SCALE_FINDING_USERS;
const CONFIG = { userPathPrefix: '/svc/' };

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

const DAY = 86_400_000;

/** Every one of `users` users has a fresh Keyspaces credential; the old-* users an old CodeCommit one. */
function serviceCredentialsOf(users: number) {
  const credential = (userName: string, service: string, id: string, days: number) => ({
    UserName: userName,
    ServiceName: service,
    ServiceSpecificCredentialId: id,
    Status: 'Active' as const,
    CreateDate: new Date(Date.now() - days * DAY),
  });
  const names = [
    ...FINDING_USERS.map((u) => u.userName),
    ...Array.from({ length: users - FINDING_USERS.length }, (_, i) => `bulk-${i}`),
  ];
  const byService: Record<string, ServiceSpecificCredentialMetadata[]> = {
    'cassandra.amazonaws.com': names.map((n, i) =>
      credential(n, 'cassandra.amazonaws.com', `ACCAK${String(i).padStart(16, '0')}`, 10),
    ),
    'codecommit.amazonaws.com': FINDING_USERS.filter((u) => u.userName.startsWith('old-')).map((u, i) =>
      credential(u.userName, 'codecommit.amazonaws.com', `ACCAG${String(i).padStart(16, '0')}`, 120),
    ),
  };
  return pagedServiceCredentials(byService);
}

/**
 * One cold audit run (the key-id cache emptied first), or with `warm` one that follows another;
 * with `serviceCredentialUsers`, also of that many users' service credentials.
 */
async function measure(serviceCredentialUsers?: number, { warm = false } = {}): Promise<Measured> {
  const withServiceCredentials = serviceCredentialUsers !== undefined;
  if (!warm) await world.clearKeyIdCache();
  const started = Date.now();
  const { summary, calls, requests } = await world.audit(
    CONFIG,
    withServiceCredentials ? { serviceCredentials: serviceCredentialsOf(serviceCredentialUsers) } : {},
  );
  const seconds = (Date.now() - started) / 1000;
  console.error(
    `audit of ${summary.usersScanned} users${withServiceCredentials ? ' with service-specific credentials' : ''}: ` +
      `${seconds.toFixed(1)} s, ${calls.total} IAM API calls ` +
      `(${calls.scanCalls} to scan, ${calls.perFindingCalls} per user with a finding): ${JSON.stringify(calls.toJSON())}`,
  );
  expect(summary.findings).toMatchObject({ OLD_KEY: withServiceCredentials ? 20 : 10, UNUSED_KEY: 10 });
  return {
    users: summary.usersScanned,
    seconds,
    calls: calls.toJSON(),
    requests: Object.fromEntries(requests),
  };
}

describe('the audit at scale', () => {
  it('makes the same number of IAM calls for 1,000 and 10,000 users, cold, and none per user warm; service credentials one per 1,000 of them', async () => {
    let t = Date.now();
    await world.bulkCreateUsers('bulk-', 0, 1000 - FINDING_USERS.length);
    console.error(`seeded 1,000 users in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const small = await measure();
    const smallWithServices = await measure(1_000);

    t = Date.now();
    await world.bulkCreateUsers('bulk-', 1000 - FINDING_USERS.length, 10_000 - FINDING_USERS.length);
    console.error(`seeded 9,000 more users in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const large = await measure();
    const largeWithServices = await measure(10_000);

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

    // Service-specific credentials: one page per 1,000 credentials and service, nothing per user.
    expect(smallWithServices.calls).toEqual({ ...small.calls, ListServiceSpecificCredentials: 1 + 1 });
    expect(largeWithServices.calls).toEqual({ ...small.calls, ListServiceSpecificCredentials: 10 + 1 });
    expect(smallWithServices.requests).toEqual(smallWithServices.calls);
    expect(largeWithServices.requests).toEqual(largeWithServices.calls);

    // Warm (the key ids of the run before in the cache, as the audit's role): nothing per user.
    const warm = await measure(undefined, { warm: true });
    expect(warm.calls).toEqual({
      GenerateCredentialReport: 1,
      GetCredentialReport: 1,
      GetAccountAuthorizationDetails: 1,
    });
    expect(warm.requests).toEqual(warm.calls);
  }, 900_000);
});
