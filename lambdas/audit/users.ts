/**
 * What the credential report does not say: users' paths and tags (for scope and exemptions) and
 * the access key ids (the report has none).
 *
 * Paths and tags for every user come from GetAccountAuthorizationDetails filtered to users: up to
 * 1,000 users per page through the SDK paginator, so the scan stays at a constant handful of calls
 * (ListUsers gives no tags, and ListUserTags would be one call per user).
 *
 * Key ids: no IAM API lists the keys of all users at once (ListAccessKeys without a user name
 * lists the caller's own keys). So for each user that HAS a finding, and only those, the audit
 * makes one ListAccessKeys call and matches the report's key 1 / key 2 to a key by its creation
 * time (the report's last_rotated). These are the only per-user calls of an audit; they are
 * counted apart (CallCounter.perFindingCalls) and grow with the number of users with findings,
 * never with the number of users scanned. With the key-id cache (key-id-cache.ts), a user whose
 * report keys all have a valid cache entry costs no call at all: only keys the report shows as
 * new do, and the entries the lookup finds are written for the next run.
 */
import { type IAMClient, paginateGetAccountAuthorizationDetails } from '@aws-sdk/client-iam';
import { type AccessKeyInfo, listAccessKeys } from '../shared/keys.ts';
import type { CallCounter } from './calls.ts';
import type { CredentialReportRow } from './credential-report.ts';
import type { Finding, UserDetail } from './findings.ts';
import { type CachedKeyId, type KeyIdCache, type KeyRef, keyRefId, sameSecond } from './key-id-cache.ts';

/** The largest page GetAccountAuthorizationDetails allows. */
const DETAILS_PAGE_SIZE = 1000;
/**
 * ListAccessKeys lookups run a few at a time: IAM's control plane throttles at modest request
 * rates shared by the whole account, and the SDK retries the occasional throttle.
 */
export const KEY_LOOKUP_CONCURRENCY = 4;

export interface UsersDeps {
  iam: IAMClient;
  calls: CallCounter;
}

export async function listUserDetails(deps: UsersDeps): Promise<Map<string, UserDetail>> {
  const users = new Map<string, UserDetail>();
  const pages = paginateGetAccountAuthorizationDetails(
    { client: deps.iam, pageSize: DETAILS_PAGE_SIZE },
    { Filter: ['User'] },
  );
  try {
    for await (const page of pages) {
      deps.calls.add('GetAccountAuthorizationDetails');
      for (const u of page.UserDetailList ?? []) {
        if (!u.UserName) continue;
        users.set(u.UserName, {
          userName: u.UserName,
          path: u.Path ?? '/',
          tags: new Map((u.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])),
        });
      }
    }
  } catch (error) {
    // The request that failed was sent too.
    deps.calls.add('GetAccountAuthorizationDetails');
    throw error;
  }
  return users;
}

/** A report row's key that no longer matches a current active key (rotated or deactivated since). */
export interface StaleFinding {
  finding: Finding;
  why: string;
}

/**
 * The key behind a report slot: the key created at the slot's last_rotated (IAM reports both at
 * one-second precision; one second of tolerance for rounding). Two keys created within the same
 * second are told apart by their order (key 1 is the older), which is also the report's order.
 */
export function matchKey(
  keys: readonly AccessKeyInfo[],
  slot: 1 | 2,
  createDate: Date,
): AccessKeyInfo | undefined {
  const byAge = [...keys].sort((a, b) => a.createDate.getTime() - b.createDate.getTime());
  const candidates = byAge.filter((k) => sameSecond(k.createDate, createDate));
  if (candidates.length <= 1) return candidates[0];
  return slot === 1 ? candidates[0] : candidates[candidates.length - 1];
}

export interface ResolveDeps extends UsersDeps {
  /** The key-id cache; without it every user with a finding costs one ListAccessKeys. */
  cache?: KeyIdCache;
  /** The credential report's rows by user name: the keys the cache is asked for. */
  rows?: ReadonlyMap<string, CredentialReportRow>;
}

/** The keys of a report row that have a creation time, and whether the cache may be used for it. */
function reportKeys(row: CredentialReportRow | undefined): { active: KeyRef[]; cacheable: boolean } {
  if (!row) return { active: [], cacheable: false };
  const keys = row.keys.filter((k) => k.lastRotated !== null);
  const [a, b] = keys;
  // Two keys created within the same second are told apart by order only: not from the cache.
  const ambiguous = a?.lastRotated && b?.lastRotated && sameSecond(a.lastRotated, b.lastRotated);
  const active = keys
    .filter((k) => k.active)
    .map((k) => ({ userName: row.user, created: k.lastRotated as Date }));
  return { active, cacheable: !ambiguous && active.length > 0 };
}

/**
 * Attaches key ids to the findings. A finding whose key no longer exists or is no longer active
 * (the report can be up to four hours old) has cleared and is returned as stale instead. The root
 * user's findings keep accessKeyId null: its keys cannot be listed by another principal.
 * With `cache`, a user's keys come from it when it holds every active key of the user's report row
 * (key-id-cache.ts says when an entry is trusted); the keys of the others are listed and stored.
 */
export async function resolveKeyIds(
  deps: ResolveDeps,
  findings: readonly Finding[],
): Promise<{ findings: Finding[]; stale: StaleFinding[] }> {
  const userNames = [...new Set(findings.filter((f) => f.type !== 'ROOT_ACCESS_KEY').map((f) => f.userName))];
  const keysByUser = new Map<string, AccessKeyInfo[]>();
  const { cache } = deps;
  const report = new Map(userNames.map((u) => [u, reportKeys(deps.rows?.get(u))]));
  let toList = userNames;
  if (cache) {
    const refs = userNames.flatMap((u) => (report.get(u)?.cacheable ? (report.get(u)?.active ?? []) : []));
    const cached = refs.length ? await cache.lookup(refs) : new Map<string, CachedKeyId>();
    toList = [];
    for (const userName of userNames) {
      const { active, cacheable } = report.get(userName) ?? { active: [], cacheable: false };
      const entries = cacheable ? active.map((ref) => cached.get(keyRefId(ref))) : [];
      const ids = new Set(entries.map((e) => e?.accessKeyId));
      if (cacheable && entries.every((e) => e !== undefined) && ids.size === entries.length) {
        // The report shows these keys active; the cache says which ids they have.
        keysByUser.set(
          userName,
          entries.map((e) => ({ accessKeyId: e.accessKeyId, status: 'Active', createDate: e.createDate })),
        );
        cache.stats.hits += 1;
      } else {
        toList.push(userName);
        cache.stats.misses += 1;
      }
    }
  }
  const toStore: CachedKeyId[] = [];
  let next = 0;
  const worker = async () => {
    while (next < toList.length) {
      const userName = toList[next++] as string;
      // A user has at most two keys: one ListAccessKeys page, one call.
      deps.calls.add('ListAccessKeys');
      try {
        const keys = await listAccessKeys(deps.iam, userName);
        keysByUser.set(userName, keys);
        const { active, cacheable } = report.get(userName) ?? { active: [], cacheable: false };
        if (!cache || !cacheable) continue;
        const row = deps.rows?.get(userName);
        for (const ref of active) {
          const slot = row?.keys.find((k) => k.lastRotated === ref.created)?.slot ?? 1;
          const key = matchKey(keys, slot, ref.created);
          if (key?.status === 'Active')
            toStore.push({ ...ref, accessKeyId: key.accessKeyId, createDate: key.createDate });
        }
      } catch (error) {
        // Deleted since the report was generated: its findings have cleared.
        if (error instanceof Error && ['NoSuchEntity', 'NoSuchEntityException'].includes(error.name))
          keysByUser.set(userName, []);
        else throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(KEY_LOOKUP_CONCURRENCY, toList.length) }, worker));
  if (cache && toStore.length) await cache.store(toStore);

  const resolved: Finding[] = [];
  const stale: StaleFinding[] = [];
  const activeKey = (keys: AccessKeyInfo[], slot: 1 | 2, createDate: string) => {
    const key = matchKey(keys, slot, new Date(createDate));
    return key && key.status === 'Active' ? key : undefined;
  };
  for (const f of findings) {
    if (f.type === 'ROOT_ACCESS_KEY') {
      resolved.push(f);
      continue;
    }
    const keys = keysByUser.get(f.userName) ?? [];
    const key = activeKey(keys, f.keySlot, f.createDate);
    if (!key) {
      stale.push({
        finding: f,
        why: `key ${f.keySlot} of "${f.userName}" (created ${f.createDate}) is no longer an active key`,
      });
      continue;
    }
    if (f.other) {
      const other = keys.find((k) => k !== key && k.status === 'Active');
      if (!other) {
        stale.push({ finding: f, why: `"${f.userName}" no longer has two active keys` });
        continue;
      }
      resolved.push({
        ...f,
        accessKeyId: key.accessKeyId,
        other: { ...f.other, accessKeyId: other.accessKeyId },
      });
      continue;
    }
    resolved.push({ ...f, accessKeyId: key.accessKeyId });
  }
  return { findings: resolved, stale };
}
