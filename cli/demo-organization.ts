/**
 * The demo across accounts (issue 14): after the single-account run, the demo's organization (the
 * hub as its management account, the two member accounts of DEMO_MEMBERS, seeded by
 * cli/emulator-organization.ts with their member roles made from the synthesized member template)
 * is audited by the code of `rekey audit --organization` (cli/audit-organization.ts), each member
 * scanned as its `<prefix>audit` member role (the emulator does not check trust policies, so the
 * hub's administrator may assume it), and every due user of the members is rotated through the
 * synthesized state machine with `accountId` in its input: each hub Lambda's deployed role assumes
 * its member role there. The emulator is then read back per account, and the hub, which holds a
 * user of the same name, must be exactly as it was before.
 */
import { type IAMClient, ListAccessKeysCommand, paginateListUsers } from '@aws-sdk/client-iam';
import type { OrganizationsClient } from '@aws-sdk/client-organizations';
import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import type { STSClient } from '@aws-sdk/client-sts';
import { memberRoleName } from '../contract/organization.ts';
import { rotationReason } from '../lambdas/audit/actions.ts';
import type { FindingType } from '../lambdas/audit/findings.ts';
import { secretNameFor } from '../lambdas/shared/secret.ts';
import { auditOrganization } from './audit-organization.ts';
import type { LoadedDefinition } from './definition.ts';
import type { DemoCheck, DemoOutcome } from './demo.ts';
import { DEMO_MEMBERS, type DemoUserSpec, pool, SAME_NAMED_USER, type SeededKey } from './demo-seed.ts';
import type { DeployedRoles } from './deployed-roles.ts';
import type { OrganizationAccount } from './emulator-organization.ts';
import { outcomeOf, type RotationResult, runRotation } from './local-runner.ts';
import { finalDocument, maskKeyId, type Paint } from './progress.ts';

/** One user of a member account, as the run across accounts left it. */
export interface AccountUserReport {
  accountId: string;
  accountName: string;
  userName: string;
  story: string;
  findings: Array<{ type: FindingType; ageDays: number; accessKeyId: string | null }>;
  action: string;
  oldKeyId: string | null;
  newKeyId: string | null;
  outcome: DemoOutcome;
  why: string | null;
}

export interface AcrossAccountsReport {
  organizationId: string;
  hubAccountId: string;
  /** The accounts the audit scanned, as `rekey audit --organization --json` lists them. */
  accounts: Array<{
    accountId: string;
    name: string;
    usersScanned: number;
    findings: number;
    error?: string;
  }>;
  users: AccountUserReport[];
  checks: DemoCheck[];
  seconds: { total: number; rotations: number };
}

export interface AcrossAccountsDeps {
  organizationId: string;
  hub: OrganizationAccount;
  members: readonly OrganizationAccount[];
  /** The members' seeded keys, by account id. */
  seeded: ReadonlyMap<string, readonly SeededKey[]>;
  /** The hub administrator's clients (the caller of `rekey audit --organization`). */
  organizations: OrganizationsClient;
  sts: STSClient;
  /** An IAM client signing with the given credentials (a member's assumed audit role). */
  iamClient: (credentials: {
    accessKeyId: string;
    secretAccessKey: string;
    sessionToken?: string;
  }) => IAMClient;
  definition: LoadedDefinition;
  env: Record<string, string>;
  roles: DeployedRoles;
  concurrency: number;
  log: (line: string) => void;
  paint: Paint;
  checkAborted: () => void;
  /** How a run is described and marked in the progress lines (cli/demo.ts). */
  describeRun: (result: RotationResult) => string;
  progressMark: (result: RotationResult) => string;
  stopWords: Readonly<Record<string, string>>;
  keyIdAt: (document: unknown, field: 'oldKey' | 'newKey') => string | null;
}

interface OrganizationDocument {
  findings: Array<{
    accountId: string;
    type: FindingType;
    userName: string;
    accessKeyId: string | null;
    ageDays: number;
  }>;
  accounts: Array<{ accountId: string; usersScanned: number; findings: number; error?: { message: string } }>;
}

export async function runAcrossAccounts(deps: AcrossAccountsDeps): Promise<AcrossAccountsReport> {
  const started = Date.now();
  const { hub, members, env, log } = deps;
  const prefix = env.REKEY_MEMBER_ROLE_PREFIX ?? '';
  const nameOf = (accountId: string) => members.find((m) => m.accountId === accountId)?.name ?? accountId;
  const hubBefore = await accountKeys(hub.iam);
  const hubSecretBefore = await currentKeyId(
    hub.secrets,
    secretNameFor(env.REKEY_SECRET_PREFIX ?? '', SAME_NAMED_USER),
  );

  // 1. The audit across the accounts: `rekey audit --organization --accounts <members> --role-name <prefix>audit`.
  const roleName = memberRoleName(prefix, 'audit');
  let stdout = '';
  let exitCode = 0;
  const created: IAMClient[] = [];
  try {
    await auditOrganization(
      {
        organization: true,
        json: true,
        serviceCredentials: false,
        roleName,
        accounts: members.map((m) => m.accountId),
        concurrency: members.length,
      },
      {
        stdout: (text) => {
          stdout += text;
        },
        stderr: (text) => {
          for (const line of text.split('\n')) if (line) log(`  ${line}`);
        },
        setExitCode: (code) => {
          exitCode = code;
        },
        env,
        organizations: deps.organizations,
        sts: deps.sts,
        iamClient: (credentials) => {
          if (!credentials) return hub.iam;
          const client = deps.iamClient(credentials);
          created.push(client);
          return client;
        },
      },
    );
  } finally {
    for (const client of created) client.destroy();
  }
  const document = JSON.parse(stdout) as OrganizationDocument;
  log(
    `Audit across accounts (the code of \`rekey audit --organization\`, each member as its ${roleName} role): ` +
      document.accounts
        .map((a) => `${nameOf(a.accountId)} ${a.accountId} ${a.usersScanned} users, ${a.findings} findings`)
        .join('; '),
  );
  deps.checkAborted();

  // 2. The due users (OLD_KEY) of each member, rotated in their own account.
  const due = document.findings.filter((f) => f.type === 'OLD_KEY');
  log(
    `Rotating ${due.length} users of ${members.length} member accounts through the same state machine, ` +
      `"accountId" in each input: every step assumes its member role (${prefix}<step>) in that account`,
  );
  const runs = new Map<string, RotationResult>();
  const rotationsStarted = Date.now();
  await pool(due, deps.concurrency, async (finding) => {
    deps.checkAborted();
    const t0 = Date.now();
    const result = await runRotation({
      input: {
        userName: finding.userName,
        accountId: finding.accountId,
        reason: rotationReason({
          ...finding,
          serviceName: undefined,
          serviceSpecificCredentialId: undefined,
        }),
      },
      definition: deps.definition.definition,
      bindings: deps.definition.bindings,
      env,
      noWait: true,
      executionName: `rekey-${finding.accountId}-${finding.userName}`,
      roles: deps.roles,
    });
    runs.set(`${finding.accountId}/${finding.userName}`, result);
    log(
      `${deps.progressMark(result)} ${nameOf(finding.accountId)} ${finding.accountId} ${finding.userName}: ` +
        `${deps.describeRun(result)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
    );
  });
  const rotationSeconds = (Date.now() - rotationsStarted) / 1000;
  deps.checkAborted();

  // 3. Per account per user, what the run did; then what the emulator holds.
  const users: AccountUserReport[] = [];
  for (const member of members) {
    const spec = DEMO_MEMBERS.find((m) => m.name === member.name);
    for (const user of spec?.users ?? []) {
      const own = document.findings.filter(
        (f) => f.accountId === member.accountId && f.userName === user.userName,
      );
      users.push(userReport(member, user, own, runs.get(`${member.accountId}/${user.userName}`), deps));
    }
  }
  const checks = await verifyAcrossAccounts(deps, users, document, {
    keys: hubBefore,
    secretKeyId: hubSecretBefore,
    exitCode,
  });
  for (const check of checks)
    log(`${check.ok ? deps.paint('green', '✓') : deps.paint('red', '✗')} ${check.text}`);
  return {
    organizationId: deps.organizationId,
    hubAccountId: hub.accountId,
    accounts: document.accounts.map((a) => ({
      accountId: a.accountId,
      name: nameOf(a.accountId),
      usersScanned: a.usersScanned,
      findings: a.findings,
      ...(a.error ? { error: a.error.message } : {}),
    })),
    users,
    checks,
    seconds: { total: (Date.now() - started) / 1000, rotations: rotationSeconds },
  };
}

function userReport(
  member: OrganizationAccount,
  spec: DemoUserSpec,
  own: OrganizationDocument['findings'],
  run: RotationResult | undefined,
  deps: Pick<AcrossAccountsDeps, 'stopWords' | 'keyIdAt'>,
): AccountUserReport {
  const base = {
    accountId: member.accountId,
    accountName: member.name,
    userName: spec.userName,
    story: spec.story,
    findings: own.map((f) => ({ type: f.type, ageDays: f.ageDays, accessKeyId: f.accessKeyId })),
  };
  if (!run) {
    const oldest = own.find((f) => f.type === 'OLD_KEY') ?? own[0];
    return {
      ...base,
      action: own.length > 0 ? 'none: alert only' : 'none',
      oldKeyId: oldest?.accessKeyId ?? null,
      newKeyId: null,
      outcome: own.length > 0 ? 'reported' : 'nothing to do',
      why: null,
    };
  }
  const document = finalDocument(run);
  const outcome = outcomeOf(document);
  const rotated = run.status === 'SUCCEEDED' && outcome?.status === 'ROTATED';
  const stopped = run.status === 'SUCCEEDED' && outcome?.status === 'STOPPED';
  return {
    ...base,
    action: 'rotation',
    oldKeyId: deps.keyIdAt(document, 'oldKey'),
    newKeyId: deps.keyIdAt(document, 'newKey'),
    outcome: rotated ? 'rotated' : stopped ? 'stopped safely' : 'failed',
    why: rotated
      ? null
      : stopped
        ? (deps.stopWords[outcome?.reason ?? ''] ?? outcome?.reason ?? null)
        : `${run.error ?? 'unknown error'}${run.lastState ? ` at "${run.lastState}"` : ''}`,
  };
}

/** Every user's keys (id:status, sorted) in the account the client acts in. */
async function accountKeys(iam: IAMClient): Promise<Record<string, string[]>> {
  const keys: Record<string, string[]> = {};
  for await (const page of paginateListUsers({ client: iam }, {})) {
    for (const u of page.Users ?? []) {
      const userName = u.UserName ?? '';
      keys[userName] = await keysOf(iam, userName);
    }
  }
  return keys;
}

async function keysOf(iam: IAMClient, userName: string): Promise<string[]> {
  const out = await iam.send(new ListAccessKeysCommand({ UserName: userName }));
  return (out.AccessKeyMetadata ?? []).map((k) => `${k.AccessKeyId}:${k.Status}`).sort();
}

async function currentKeyId(secrets: SecretsManagerClient, secretId: string): Promise<string | null> {
  try {
    const out = await secrets.send(
      new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT' }),
    );
    return (JSON.parse(out.SecretString ?? '{}') as { AccessKeyId?: string }).AccessKeyId ?? null;
  } catch (error) {
    if (error instanceof ResourceNotFoundException) return null;
    throw error;
  }
}

async function verifyAcrossAccounts(
  deps: AcrossAccountsDeps,
  users: readonly AccountUserReport[],
  document: OrganizationDocument,
  hubBefore: { keys: Record<string, string[]>; secretKeyId: string | null; exitCode: number },
): Promise<DemoCheck[]> {
  const { hub, members, env } = deps;
  const prefix = env.REKEY_SECRET_PREFIX ?? '';
  const memberOf = (accountId: string) => members.find((m) => m.accountId === accountId);
  // With `secrets: member` a member's secret is in that account, under the hub's naming.
  const secretIn = (u: AccountUserReport) =>
    secretNameFor(prefix, u.userName, undefined, {
      accountId: u.accountId,
      hubAccountId: hub.accountId,
      secrets: env.REKEY_SECRETS_LOCATION === 'hub' ? 'hub' : 'member',
    });
  const secretsOf = (u: AccountUserReport) =>
    env.REKEY_SECRETS_LOCATION === 'hub' ? hub.secrets : (memberOf(u.accountId)?.secrets ?? hub.secrets);

  const scanned = document.accounts.filter((a) => !a.error);
  const tagged = document.findings.every((f) => members.some((m) => m.accountId === f.accountId));
  const rotated = users.filter((u) => u.outcome === 'rotated');
  let rotatedOk = 0;
  for (const u of rotated) {
    const iam = memberOf(u.accountId)?.iam;
    if (!iam) continue;
    const keys = await keysOf(iam, u.userName);
    if (
      keys.length === 1 &&
      keys[0] === `${u.newKeyId}:Active` &&
      (await currentKeyId(secretsOf(u), secretIn(u))) === u.newKeyId
    )
      rotatedOk++;
  }
  const others = users.filter((u) => u.outcome === 'reported' || u.outcome === 'nothing to do');
  let othersOk = 0;
  for (const u of others) {
    const member = memberOf(u.accountId);
    if (!member) continue;
    const seeded = (deps.seeded.get(u.accountId) ?? [])
      .filter((k) => k.userName === u.userName)
      .map((k) => `${k.accessKeyId}:${k.status}`)
      .sort();
    if (
      JSON.stringify(await keysOf(member.iam, u.userName)) === JSON.stringify(seeded) &&
      (await currentKeyId(secretsOf(u), secretIn(u))) === null
    )
      othersOk++;
  }
  const failed = users.filter((u) => u.outcome !== 'rotated' && u.action === 'rotation');
  const hubAfter = await accountKeys(hub.iam);
  const hubSecretAfter = await currentKeyId(hub.secrets, secretNameFor(prefix, SAME_NAMED_USER));
  const sameNamed = hubBefore.keys[SAME_NAMED_USER];
  const sameNamedRotated = users.filter((u) => u.userName === SAME_NAMED_USER && u.outcome === 'rotated');
  const hubUntouched =
    JSON.stringify(hubAfter) === JSON.stringify(hubBefore.keys) && hubSecretAfter === hubBefore.secretKeyId;
  const hubKey = sameNamed?.[0]?.split(':')[0];
  return [
    {
      ok:
        hubBefore.exitCode === 0 &&
        scanned.length === members.length &&
        tagged &&
        document.findings.length > 0,
      text:
        `${scanned.length} of ${members.length} member accounts audited; each of the ${document.findings.length} ` +
        'findings names its account',
    },
    {
      ok: rotated.length > 0 && rotatedOk === rotated.length,
      text:
        `${rotatedOk} of ${rotated.length} rotated member users have exactly one key, the new one, active in ` +
        'their own account, and AWSCURRENT of their secret there holds it',
    },
    {
      ok: others.length > 0 && othersOk === others.length,
      text: `${othersOk} of ${others.length} member users without a due rotation are untouched`,
    },
    {
      ok: sameNamed !== undefined && sameNamedRotated.length === members.length && hubUntouched,
      text:
        `${SAME_NAMED_USER} was rotated in ${sameNamedRotated.length} member accounts; the hub's ${SAME_NAMED_USER} ` +
        `kept its key ${hubKey ? maskKeyId(hubKey) : '-'} and its secret, and all ${Object.keys(hubAfter).length} hub ` +
        `users' keys are as they were before the run across accounts${hubUntouched ? '' : ' (they are NOT)'}`,
    },
    { ok: failed.length === 0, text: `${failed.length} rotation(s) across accounts failed or stopped` },
  ];
}
