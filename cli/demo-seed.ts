/**
 * The demo's account: IAM users whose keys were created and last used on chosen days in the past
 * (moto's clock is moved while they are made, see cli/moto-clock.py), and the consumer
 * application that keeps calling AWS with its old key while rekey rotates it.
 */
import {
  CreateAccessKeyCommand,
  CreateUserCommand,
  type IAMClient,
  PutUserPolicyCommand,
  TagUserCommand,
  UpdateAccessKeyCommand,
} from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { MotoClockServer } from './emulator.ts';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface DemoKeySpec {
  createdDaysAgo: number;
  /** Days since its last use; undefined: never used. */
  usedDaysAgo?: number;
  inactive?: true;
}

export interface DemoUserSpec {
  userName: string;
  /** What this user stands for, in the report. */
  story: string;
  keys: DemoKeySpec[];
  tags?: Record<string, string>;
}

/** The identity the demo (and every handler) runs as once request signing is on. */
export const DEMO_ADMIN = 'rekey-demo-admin';
/** Keeps calling AWS with its old key while its rotation runs. */
export const CONSUMER_USER = 'billing-app';
export const EXEMPT_USER = 'smtp-relay';
export const PROTECTED_USER = 'break-glass';
export const TWO_KEYS_USER = 'ci-legacy';
export const EXEMPT_TAG_VALUE =
  'until=2099-12-31 vendor SMTP relay - cannot rotate until the vendor migrates';

const used = (createdDaysAgo: number, usedDaysAgo: number): DemoKeySpec => ({ createdDaysAgo, usedDaysAgo });

/** 23 users: every case the audit and the state machine tell apart. */
export const DEMO_USERS: readonly DemoUserSpec[] = [
  // Keys younger than 77 days, in daily use: nothing to report.
  { userName: 'web-frontend', story: 'fresh key, in use', keys: [used(10, 0)] },
  { userName: 'mobile-backend', story: 'fresh key, in use', keys: [used(30, 1)] },
  { userName: 'data-pipeline', story: 'fresh key, in use', keys: [used(45, 2)] },
  { userName: 'search-indexer', story: 'fresh key, in use', keys: [used(5, 1)] },
  { userName: 'metrics-agent', story: 'fresh key, in use', keys: [used(60, 1)] },
  { userName: 'backup-agent', story: 'fresh key, in use', keys: [used(20, 3)] },
  // Older than 90 days and in use: rotated.
  { userName: 'payments-api', story: 'old key, in use', keys: [used(95, 1)] },
  { userName: 'orders-worker', story: 'old key, in use', keys: [used(120, 2)] },
  { userName: 'crm-sync', story: 'old key, in use', keys: [used(150, 5)] },
  { userName: 'etl-nightly', story: 'old key, in use', keys: [used(200, 1)] },
  { userName: 'legacy-ftp', story: 'old key, in use', keys: [used(400, 10)] },
  { userName: 'partner-gateway', story: 'old key, in use', keys: [used(130, 3)] },
  { userName: 'slack-notifier', story: 'old key, in use', keys: [used(180, 7)] },
  { userName: 'marketing-export', story: 'old key, in use', keys: [used(100, 20)] },
  { userName: 'old-unused-bot', story: 'old key, never used', keys: [{ createdDaysAgo: 240 }] },
  {
    userName: 'ci-runner',
    story: 'old key + an inactive, never-used extra key',
    keys: [used(140, 1), { createdDaysAgo: 30, inactive: true }],
  },
  // Old, but the application behind it never switches to the new key: stopped safely.
  {
    userName: CONSUMER_USER,
    story: 'old key, its application keeps using it',
    keys: [used(160, 1)],
  },
  // Old, but rekey must not act.
  {
    userName: TWO_KEYS_USER,
    story: 'two active keys, both old',
    keys: [used(300, 2), used(110, 1)],
  },
  {
    userName: EXEMPT_USER,
    story: 'old key, exempt by tag',
    keys: [used(500, 1)],
    tags: { 'rekey:exempt': EXEMPT_TAG_VALUE },
  },
  { userName: PROTECTED_USER, story: 'old key, protected user (config)', keys: [{ createdDaysAgo: 365 }] },
  // Reported, not acted on: the audit alerts.
  { userName: 'idle-reporting', story: 'key unused for 60 days', keys: [{ createdDaysAgo: 60 }] },
  { userName: 'expiring-service', story: 'key turns old in 9 days', keys: [used(82, 1)] },
  { userName: 'console-only', story: 'a person: no access keys', keys: [] },
];

export interface SeededKey extends Credentials {
  userName: string;
  index: number;
  status: 'Active' | 'Inactive';
}

/** Runs `fn` over items, `concurrency` at a time. */
export async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

/**
 * With moto's request signing still off: creates the admin (allowed everything) and returns its
 * key. The demo then turns signing on, so every request is checked as in a real account.
 */
export async function createAdmin(iam: IAMClient): Promise<Credentials> {
  await iam.send(new CreateUserCommand({ UserName: DEMO_ADMIN }));
  await iam.send(
    new PutUserPolicyCommand({
      UserName: DEMO_ADMIN,
      PolicyName: 'allow-everything',
      PolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }],
      }),
    }),
  );
  const { AccessKey } = await iam.send(new CreateAccessKeyCommand({ UserName: DEMO_ADMIN }));
  if (!AccessKey?.AccessKeyId || !AccessKey.SecretAccessKey)
    throw new Error('CreateAccessKey returned no key');
  return { accessKeyId: AccessKey.AccessKeyId, secretAccessKey: AccessKey.SecretAccessKey };
}

/**
 * Creates the users and their keys, oldest keys first, one clock setting at a time; a key is
 * "used" by signing a request with it while the clock shows that day. The clock is back at real
 * time when this returns (also when it fails).
 */
export async function seedAccount(
  moto: MotoClockServer,
  iam: IAMClient,
  users: readonly DemoUserSpec[],
): Promise<SeededKey[]> {
  try {
    moto.setOffsetDays(0);
    await pool(users, 8, async (u) => {
      await iam.send(new CreateUserCommand({ UserName: u.userName }));
      if (u.tags) {
        await iam.send(
          new TagUserCommand({
            UserName: u.userName,
            Tags: Object.entries(u.tags).map(([Key, Value]) => ({ Key, Value })),
          }),
        );
      }
    });
    const keys = users.flatMap((user) => user.keys.map((spec, index) => ({ user, spec, index })));
    const created = new Map<string, SeededKey>();
    const id = (userName: string, index: number) => `${userName}#${index}`;
    for (const days of distinctDescending(keys.map((k) => k.spec.createdDaysAgo))) {
      moto.setOffsetDays(-days);
      // One user's keys in order, so its first key is its older one.
      const batch = keys.filter((k) => k.spec.createdDaysAgo === days);
      await pool(batch, 8, async ({ user, spec, index }) => {
        const { AccessKey } = await iam.send(new CreateAccessKeyCommand({ UserName: user.userName }));
        if (!AccessKey?.AccessKeyId || !AccessKey.SecretAccessKey)
          throw new Error('CreateAccessKey returned no key');
        created.set(id(user.userName, index), {
          userName: user.userName,
          index,
          accessKeyId: AccessKey.AccessKeyId,
          secretAccessKey: AccessKey.SecretAccessKey,
          status: spec.inactive ? 'Inactive' : 'Active',
        });
      });
    }
    const usedKeys = keys.filter((k) => k.spec.usedDaysAgo !== undefined);
    for (const days of distinctDescending(usedKeys.map((k) => k.spec.usedDaysAgo as number))) {
      moto.setOffsetDays(-days);
      await pool(
        usedKeys.filter((k) => k.spec.usedDaysAgo === days),
        8,
        async ({ user, index }) => {
          const key = created.get(id(user.userName, index));
          if (key) await callerIdentity(moto.endpoint, key);
        },
      );
    }
    moto.setOffsetDays(0);
    for (const key of created.values()) {
      if (key.status === 'Inactive') {
        await iam.send(
          new UpdateAccessKeyCommand({
            UserName: key.userName,
            AccessKeyId: key.accessKeyId,
            Status: 'Inactive',
          }),
        );
      }
    }
    return [...created.values()];
  } finally {
    moto.setOffsetDays(0);
  }
}

function distinctDescending(values: number[]): number[] {
  return [...new Set(values)].sort((a, b) => b - a);
}

/** sts:GetCallerIdentity signed with the given key: the cheapest call that counts as a use. */
async function callerIdentity(endpoint: string, credentials: Credentials): Promise<string> {
  const sts = new STSClient({ endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
  try {
    return (await sts.send(new GetCallerIdentityCommand({}))).Arn ?? '';
  } finally {
    sts.destroy();
  }
}

export interface Consumer {
  /** Resolves after the next successful call that started after this was called (or after timeoutMs). */
  nextCall(timeoutMs?: number): Promise<Date | null>;
  /** Ends the loop and reports what it did. */
  stop(): Promise<{ calls: number; failures: number; lastError: string | null }>;
}

/**
 * The consumer application: a loop of signed sts:GetCallerIdentity calls with the key it was
 * given (the old one; it never reads the new one), every `intervalMs`, until stopped.
 */
export function startConsumer(endpoint: string, credentials: Credentials, intervalMs = 200): Consumer {
  const sts = new STSClient({ endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
  let calls = 0;
  let failures = 0;
  let lastError: string | null = null;
  let stopped = false;
  let waiters: Array<{ since: number; resolve: (at: Date | null) => void }> = [];
  const loop = (async () => {
    while (!stopped) {
      const startedAt = Date.now();
      try {
        await sts.send(new GetCallerIdentityCommand({}));
        calls++;
        const ready = waiters.filter((w) => w.since <= startedAt);
        waiters = waiters.filter((w) => w.since > startedAt);
        for (const w of ready) w.resolve(new Date(startedAt));
      } catch (error) {
        failures++;
        lastError = error instanceof Error ? error.name : String(error);
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    nextCall(timeoutMs = 10_000) {
      return new Promise((resolve) => {
        const waiter = { since: Date.now(), resolve };
        waiters.push(waiter);
        setTimeout(() => {
          if (waiters.includes(waiter)) {
            waiters = waiters.filter((w) => w !== waiter);
            resolve(null);
          }
        }, timeoutMs).unref();
      });
    },
    async stop() {
      stopped = true;
      await loop;
      sts.destroy();
      for (const w of waiters) w.resolve(null);
      waiters = [];
      return { calls, failures, lastError };
    },
  };
}

/** A member account of the demo's organization and its users (seeded as its administrator). */
export interface DemoMemberSpec {
  name: string;
  users: readonly DemoUserSpec[];
}

/**
 * The user whose name is also one of the hub's (DEMO_USERS): each account's is its own user, and
 * the run across accounts must leave the hub's alone.
 */
export const SAME_NAMED_USER = 'payments-api';

/** The two member accounts of the demo's organization: old keys to rotate, fresh ones to leave. */
export const DEMO_MEMBERS: readonly DemoMemberSpec[] = [
  {
    name: 'workload-a',
    users: [
      { userName: SAME_NAMED_USER, story: 'old key, in use (same name as a hub user)', keys: [used(120, 1)] },
      { userName: 'orders-worker', story: 'old key, in use', keys: [used(150, 2)] },
      { userName: 'web-frontend', story: 'fresh key, in use', keys: [used(10, 0)] },
    ],
  },
  {
    name: 'workload-b',
    users: [
      { userName: SAME_NAMED_USER, story: 'old key, in use (same name as a hub user)', keys: [used(95, 1)] },
      { userName: 'data-lake-loader', story: 'old key, never used', keys: [{ createdDaysAgo: 210 }] },
      { userName: 'search-indexer', story: 'fresh key, in use', keys: [used(5, 1)] },
    ],
  },
];
