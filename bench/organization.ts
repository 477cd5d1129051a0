/**
 * (e) The organization audit at 1, 5 and 20 member accounts × 200 users: the OrganizationAudit
 * state machine synthesized with organization, run on the local engine with the real handlers
 * (support/organization-audit.ts), each Lambda under its deployed role and, in a member account,
 * its member role there, against one moto (request signing on while the audits run) holding an
 * organization of the largest size; each size audits the first N members (the request's
 * `accounts`). Per size: the AWS calls in all and per account (by service), and the wall time of
 * the configured MaxConcurrency next to MaxConcurrency 1 (the same definition synthesized with
 * auditConcurrency 1). Every run starts with an empty key-id cache, so that every account's audit
 * is a cold one and the calls per account can be compared: they must be equal across accounts.
 * Each account has a credential report before the first run (as after any earlier audit), and a
 * warm-up run (not measured) takes the handlers' imports out of the first size's time.
 */
import { DeleteTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateAccessKeyCommand,
  CreateUserCommand,
  GenerateCredentialReportCommand,
  IAMClient,
  PutUserPolicyCommand,
} from '@aws-sdk/client-iam';
import { STSClient } from '@aws-sdk/client-sts';
import type { LoadedOrganizationAuditDefinition } from '../cli/definition.ts';
import {
  connectEmulator,
  deployedRoles,
  synthesizeMemberTemplate,
  synthesizeTemplate,
} from '../cli/deployed-roles.ts';
import { startMotoWithClock } from '../cli/emulator.ts';
import { type OrganizationAccount, seedOrganization } from '../cli/emulator-organization.ts';
import { prepareLocalEnv } from '../cli/local-env.ts';
import { forgetMemberSessions } from '../lambdas/shared/member-account.ts';
import { createKeyIdCacheTable, pool } from '../support/audit-world.ts';
import {
  mapConcurrency,
  ORGANIZATION_AUDIT_RESOURCES,
  organizationAuditDefinition,
  prepareOrganizationAuditEnv,
  type RecordedCall,
  recordingRoles,
  runOrganizationAudit,
} from '../support/organization-audit.ts';
import { count, heading, print, progress, ratio, reproduce, seconds, table } from './report.ts';

export interface OrganizationBenchOptions {
  /** Member accounts audited, one run per size (and one more at MaxConcurrency 1). */
  accounts: number[];
  /** Users in each member account. */
  users: number;
  /** The configured MaxConcurrency (organization.auditConcurrency). */
  concurrency: number;
}

export const ORGANIZATION_DEFAULTS: OrganizationBenchOptions = {
  accounts: [1, 5, 20],
  users: 200,
  concurrency: 10,
};

const REGION = 'us-east-1';
/** Of each account's users, one in OLD_EVERY has a key OLD_DAYS old and never used (2 findings). */
const OLD_EVERY = 10;
const OLD_DAYS = 100;
const PATH = '/bench/';

interface Run {
  ms: number;
  calls: RecordedCall[];
  maxRunning: number;
}

interface SizeResult {
  accounts: number;
  configured: Run;
  baseline: Run;
  /** Calls per member account of the configured run, by service, and whether they are all equal. */
  perAccount: Record<string, number>;
  constant: boolean;
}

const serviceOf = (action: string) => action.split(':')[0] ?? action;

function byService(calls: readonly RecordedCall[]): Record<string, number> {
  const counted: Record<string, number> = {};
  for (const call of calls) counted[serviceOf(call.action)] = (counted[serviceOf(call.action)] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counted).sort(([x], [y]) => x.localeCompare(y)));
}

/** Each audited account's calls by action, as one comparable string. */
function callsByAccount(calls: readonly RecordedCall[], accountIds: readonly string[]): string[] {
  return accountIds.map((id) => {
    const counted: Record<string, number> = {};
    for (const call of calls.filter((c) => c.audited === id))
      counted[call.action] = (counted[call.action] ?? 0) + 1;
    return JSON.stringify(Object.entries(counted).sort(([x], [y]) => x.localeCompare(y)));
  });
}

export async function organizationBench(options: OrganizationBenchOptions): Promise<void> {
  const sizes = [...new Set(options.accounts)].sort((x, y) => x - y);
  const largest = sizes.at(-1) ?? 1;
  progress(`(e) organization audit: starting moto, an organization of ${largest} member accounts`);
  const moto = await startMotoWithClock();
  const saved = { ...process.env };
  const results: SizeResult[] = [];
  try {
    const bootstrap = new IAMClient({
      endpoint: moto.endpoint,
      region: REGION,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    await bootstrap.send(new CreateUserCommand({ UserName: 'rekey-admin' }));
    await bootstrap.send(
      new PutUserPolicyCommand({
        UserName: 'rekey-admin',
        PolicyName: 'everything',
        PolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }],
        }),
      }),
    );
    const key = (await bootstrap.send(new CreateAccessKeyCommand({ UserName: 'rekey-admin' }))).AccessKey;
    bootstrap.destroy();
    const admin = { accessKeyId: key?.AccessKeyId ?? '', secretAccessKey: key?.SecretAccessKey ?? '' };
    const organization = await seedOrganization({
      endpoint: moto.endpoint,
      region: REGION,
      admin,
      members: largest,
      secrets: 'member',
    });
    const members = organization.members;
    await seedUsers(moto, members, options.users);
    // As after any earlier audit: each account has a credential report, so every audit asks once
    // and gets it (the first audit of an account would otherwise make one more call than the rest).
    await pool(members, 8, async (m) => {
      await m.iam.send(new GenerateCredentialReportCommand({}));
    });
    await moto.enableAuth();
    Object.assign(process.env, {
      AWS_ENDPOINT_URL: moto.endpoint,
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: admin.accessKeyId,
      AWS_SECRET_ACCESS_KEY: admin.secretAccessKey,
    });
    delete process.env.AWS_PROFILE;
    delete process.env.AWS_SESSION_TOKEN;

    const configFor = (auditConcurrency: number) => ({
      userPathPrefix: PATH,
      // moto lacks ListServiceSpecificCredentials; no rotations, so that every run sees the same keys.
      auditServiceCredentials: false,
      autoRotate: false,
      organization: {
        organizationId: organization.organizationId,
        stackSetTargets: [organization.rootId],
        stackSetRegions: [REGION],
        auditConcurrency,
      },
    });
    const config = configFor(options.concurrency);
    const env = await prepareLocalEnv({ config, source: {}, log: () => {} });
    env.POWERTOOLS_LOG_LEVEL = 'ERROR';
    const adminAccess = { endpoint: moto.endpoint, region: REGION, credentials: admin };
    const audit = await prepareOrganizationAuditEnv(adminAccess, {
      config,
      hubAccountId: env.REKEY_HUB_ACCOUNT_ID ?? '',
      topicArn: env.REKEY_TOPIC_ARN ?? '',
    });
    Object.assign(env, audit.env);
    progress('(e) synthesizing the hub and member templates (configured and MaxConcurrency 1)');
    const [template, baselineTemplate, memberTemplate] = await Promise.all([
      synthesizeTemplate(config),
      synthesizeTemplate(configFor(1)),
      synthesizeMemberTemplate(config),
    ]);
    const configured = organizationAuditDefinition(template);
    const baseline = organizationAuditDefinition(baselineTemplate);
    const adminIam = new IAMClient({ endpoint: moto.endpoint, region: REGION, credentials: admin });
    const adminSts = new STSClient({ endpoint: moto.endpoint, region: REGION, credentials: admin });
    const emulator = await connectEmulator(
      { iam: adminIam, sts: adminSts },
      REGION,
      organization.emulatorOrganization(),
    );
    const roles = deployedRoles(emulator, { template, env, memberTemplate });
    await organization.installMemberRoles(roles);
    const dynamodb = new DynamoDBClient({ endpoint: moto.endpoint, region: REGION, credentials: admin });

    let runs = 0;
    const runOnce = async (loaded: LoadedOrganizationAuditDefinition, accountIds: string[]): Promise<Run> => {
      // A cold key-id cache for every run: each account's audit then makes the same calls.
      await dynamodb.send(
        new DeleteTableCommand({ TableName: ORGANIZATION_AUDIT_RESOURCES.keyIdCacheTable }),
      );
      await createKeyIdCacheTable(dynamodb, ORGANIZATION_AUDIT_RESOURCES.keyIdCacheTable);
      forgetMemberSessions();
      const calls: RecordedCall[] = [];
      const started = performance.now();
      const result = await runOrganizationAudit({
        loaded,
        env,
        roles: recordingRoles(roles, calls),
        input: { accounts: accountIds },
        executionName: `bench-${++runs}`,
      });
      const ms = performance.now() - started;
      if (result.status !== 'SUCCEEDED')
        throw new Error(`the organization audit ${result.status}: ${result.error}: ${result.cause}`);
      return { ms, calls, maxRunning: mapConcurrency(result.events).maxRunning };
    };
    try {
      // Not measured: the handlers' imports and the first member role sessions.
      progress('(e) a warm-up run (1 account)');
      await runOnce(
        configured,
        members.slice(0, 1).map((m) => m.accountId),
      );
      for (const size of sizes) {
        const accountIds = members.slice(0, size).map((m) => m.accountId);
        progress(`(e) ${size} account(s): MaxConcurrency ${options.concurrency}...`);
        const configuredRun = await runOnce(configured, accountIds);
        progress(`(e) ${size} account(s): ${seconds(configuredRun.ms)}; MaxConcurrency 1...`);
        const baselineRun = await runOnce(baseline, accountIds);
        progress(`(e) ${size} account(s): ${seconds(baselineRun.ms)} at MaxConcurrency 1`);
        const per = callsByAccount(configuredRun.calls, accountIds);
        const constant =
          new Set(per).size === 1 &&
          JSON.stringify(callsByAccount(baselineRun.calls, accountIds)) === JSON.stringify(per);
        const first = accountIds[0] ?? '';
        results.push({
          accounts: size,
          configured: configuredRun,
          baseline: baselineRun,
          perAccount: byService(configuredRun.calls.filter((c) => c.audited === first)),
          constant,
        });
      }
    } finally {
      dynamodb.destroy();
      adminIam.destroy();
      adminSts.destroy();
      organization.close();
    }
  } finally {
    await moto.stop();
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
  printOrganization(results, options);
  const varying = results.filter((r) => !r.constant);
  if (varying.length)
    throw new Error(
      `the calls per account differ across accounts at ${varying.map((r) => r.accounts).join(', ')} account(s)`,
    );
}

/** Every member's users, old keys first (the clock moved back), a bounded pool over all accounts. */
async function seedUsers(
  moto: Awaited<ReturnType<typeof startMotoWithClock>>,
  members: readonly OrganizationAccount[],
  users: number,
): Promise<void> {
  const started = performance.now();
  const all = members.flatMap((account) =>
    Array.from({ length: users }, (_, i) => ({ account, userName: `bench-${i}`, old: i % OLD_EVERY === 0 })),
  );
  let done = 0;
  const create = async (u: (typeof all)[number]) => {
    await u.account.iam.send(new CreateUserCommand({ UserName: u.userName, Path: PATH }));
    await u.account.iam.send(new CreateAccessKeyCommand({ UserName: u.userName }));
    if (++done % 500 === 0) progress(`(e) seeded ${count(done)} of ${count(all.length)} users`);
  };
  try {
    moto.setOffsetDays(-OLD_DAYS);
    await pool(
      all.filter((u) => u.old),
      16,
      create,
    );
  } finally {
    moto.setOffsetDays(0);
  }
  await pool(
    all.filter((u) => !u.old),
    16,
    create,
  );
  progress(
    `(e) seeded ${count(all.length)} users in ${members.length} accounts in ${seconds(performance.now() - started)}`,
  );
}

const services = (counted: Record<string, number>) =>
  Object.entries(counted)
    .map(([service, n]) => `${service} ${count(n)}`)
    .join(', ');

function printOrganization(results: SizeResult[], options: OrganizationBenchOptions): void {
  const headers = [
    'accounts',
    'users',
    'calls',
    'calls/account',
    `wall (max ${options.concurrency})`,
    'wall (max 1)',
    'speed-up',
    'seen at once',
    'constant',
  ];
  const rows = results.map((r) => {
    const perAccount = Object.values(r.perAccount).reduce((x, y) => x + y, 0);
    return [
      count(r.accounts),
      count(r.accounts * options.users),
      count(r.configured.calls.length),
      count(perAccount),
      seconds(r.configured.ms),
      seconds(r.baseline.ms),
      ratio(r.baseline.ms, r.configured.ms),
      String(r.configured.maxRunning),
      r.constant ? 'yes' : 'no',
    ];
  });
  print(
    ...heading(
      `(e) Organization audit: ${options.users} users per member account, MaxConcurrency ${options.concurrency} vs 1`,
    ),
    'The OrganizationAudit state machine (synthesized with organization) on the local engine, its real handlers',
    'under their deployed roles (member roles in the members), one moto with request signing on. Each member has',
    `${options.users} users under ${PATH}, one in ${OLD_EVERY} with a key ${OLD_DAYS} days old and never used; autoRotate off, a cold`,
    'key-id cache every run. Calls: every AWS request the handlers made (listing, audits, digest);',
    'calls/account: those of one account\'s audit (each account\'s are compared: "constant").',
    '',
    ...table(
      headers,
      rows,
      headers.map((_, i) => i).filter((i) => i !== headers.length - 1),
    ),
    '',
    ...results.map(
      (r) =>
        `${count(r.accounts)} account(s): per account ${services(r.perAccount)}; in all ${services(byService(r.configured.calls))}; calls per account constant: ${r.constant ? 'yes' : 'no'}`,
    ),
    reproduce(
      `organization --org-accounts ${options.accounts.join(',')} --org-users ${options.users} --org-concurrency ${options.concurrency}`,
    ),
  );
}
