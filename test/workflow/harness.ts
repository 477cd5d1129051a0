/**
 * The workflow test world: a moto server of its own with a movable clock
 * (request signing ON), the state machine
 * definition extracted from the `cdk synth` output of the global setup, the real handler modules
 * bound to every Task, each invocation signing as its Lambda's deployed role (the template of the
 * world's configuration, cli/deployed-roles.ts), and read-back channels for what rekey publishes
 * (SNS -> SQS, EventBridge rule -> SQS). The tests' own set-up and read-back clients run as an
 * admin IAM user. The world also collects every secret value the emulator ever held and every log
 * line the handlers wrote, so each test can prove that no secret leaked anywhere.
 */

import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import {
  CreateAccessKeyCommand,
  CreateUserCommand,
  IAMClient,
  ListAccessKeysCommand,
  ListUsersCommand,
  PutUserPolicyCommand,
  paginateListUsers,
  TagUserCommand,
  UpdateAccessKeyCommand,
} from '@aws-sdk/client-iam';
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  ListSecretVersionIdsCommand,
  paginateListSecrets,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { expect } from 'vitest';
import {
  type CfnTemplate,
  type LoadedDefinition,
  type LoadedOrganizationAuditDefinition,
  loadDefinition,
} from '../../cli/definition.ts';
import {
  connectEmulator,
  type DeployedRoles,
  type DeployedRolesOptions,
  deployedRoles,
  type EmulatorOrganization,
  synthesizeMemberTemplate,
  synthesizeTemplate,
} from '../../cli/deployed-roles.ts';
import { type MotoClockServer, startMotoWithClock } from '../../cli/emulator.ts';
import {
  type MemberAccountSpec,
  type OrganizationAccount,
  type SeededOrganization,
  seedOrganization,
} from '../../cli/emulator-organization.ts';
import { prepareLocalEnv } from '../../cli/local-env.ts';
import { type RotationResult, type RunRotationOptions, runRotation } from '../../cli/local-runner.ts';
import type { StepName } from '../../contract/functions.ts';
import type { MemberLambda } from '../../contract/organization.ts';
import { systemClock } from '../../lambdas/shared/clock.ts';
import {
  organizationAuditDefinition,
  prepareOrganizationAuditEnv,
} from '../../support/organization-audit.ts';
import { expectNoSecrets } from '../support/secrets.ts';

const REGION = 'us-east-1';
type Credentials = { accessKeyId: string; secretAccessKey: string };

export interface Notification {
  /** The SNS message body (the email text). */
  sns: string[];
  /** EventBridge events as delivered: { 'detail-type', source, detail }. */
  events: Array<{ 'detail-type': string; source: string; detail: Record<string, unknown> }>;
}

/** What the SNS queue received, with the message attributes SNS delivered alongside each body. */
export interface NotificationWithAttributes extends Notification {
  /** Per SNS message (in the order of `sns`): its String message attributes, by name. */
  snsAttributes: Array<Record<string, string>>;
}

/**
 * One account's state, as a mutation could change it: every user's keys (id and status) and every
 * secret's versions (id, stages and the key id each holds), sorted so that two reads compare equal.
 */
export interface AccountState {
  users: Record<string, Array<{ id: string; status: string }>>;
  secrets: Record<string, Array<{ versionId: string; stages: string[]; accessKeyId: string | null }>>;
}

/** A call a handler made, as the deployed roles' `authorize` saw it (recordCalls). */
export interface RecordedCall {
  step: string;
  /** The member account the call acted in; undefined: the hub's own. */
  account: string | undefined;
  action: string;
  input: Readonly<Record<string, unknown>>;
  /** False when `authorize` refused it (it was never sent). */
  allowed: boolean;
}

export interface StoredVersion {
  versionId: string;
  stages: string[];
  AccessKeyId: string;
  SecretAccessKey: string;
}

/**
 * The world's time: the emulator's clock (cli/moto-clock.py: key creation and last-use stamps) and,
 * in this process, the handlers' `systemClock`, moved together by the same offset. Last-use rules
 * compare IAM's stamps with instants the handlers take, so the two must never disagree; moving them
 * is how a test puts a consumer's call minutes or days before or after an instant rekey took.
 */
export interface WorldClock {
  /** Moves both clocks by this many seconds (negative: back). */
  advance(seconds: number): void;
  /** The current offset from real time, in seconds. */
  offsetSeconds(): number;
  /** The world's "now". */
  now(): Date;
}

/** What a test seeds and reads in one account, through that account's administrator. */
export interface AccountHelpers {
  createUser(
    userName: string,
    options?: { keys?: number; inactive?: number[]; tags?: Record<string, string>; path?: string },
  ): Promise<Credentials[]>;
  keysOf(userName: string): Promise<Array<{ id: string; status: string }>>;
  /** The credential stored under a stage, read with an explicit stage. */
  storedCredential(
    userName: string,
    stage?: string,
  ): Promise<{ AccessKeyId: string; SecretAccessKey: string; [k: string]: unknown }>;
  /** Every version of the user's credential secret, with its stages and value; none without a secret. */
  storedVersions(userName: string): Promise<StoredVersion[]>;
  /** Every user's keys and every secret's versions in the account (see AccountState). */
  state(): Promise<AccountState>;
}

/** One account of an organization world, its administrator's clients and the helpers acting there. */
export type WorldAccount = OrganizationAccount & AccountHelpers;

export interface World extends AccountHelpers {
  moto: MotoClockServer;
  clock: WorldClock;
  admin: Credentials;
  iam: IAMClient;
  secrets: SecretsManagerClient;
  env: Record<string, string>;
  definition: LoadedDefinition;
  /** Each Lambda's deployed role: what `run` signs every handler invocation as. */
  roles: DeployedRoles;
  /** The same roles with some statements changed (mutation tests); pass as `run`'s `roles`. */
  rolesWith(mutate: NonNullable<DeployedRolesOptions['mutate']>): DeployedRoles;
  /** Every log line written to stdout/stderr while the world was up. */
  logs: string[];
  run(input: unknown, options?: Partial<RunRotationOptions>): Promise<RotationResult>;
  /**
   * One step's handler with this payload, invoked the way the state machine invokes it (through
   * the local runner, as a one-Task machine): for events no execution of the rotation sends,
   * such as the status change rule's to the cleanup. Throws when the step fails.
   */
  invokeStep(step: StepName, payload: unknown): Promise<unknown>;
  /**
   * With the `organization` option: the organization seeded in the emulator (the hub is its
   * management account), its ids and each account's administrator.
   */
  organization?: SeededOrganization;
  /**
   * With the `organization` option, each account (the hub first, then the members in order) with
   * the helpers acting in it; empty without.
   */
  accounts: WorldAccount[];
  /**
   * With `organizationAudit`: the organization audit's definition from the world's template, and
   * the stand-in rotation state machine its audits start executions of (support/organization-audit.ts;
   * `env` then holds the audit's variables too, and `roles` were resolved with them).
   */
  organizationAudit?: { loaded: LoadedOrganizationAuditDefinition; stateMachineArn: string };
  /** Signs sts:GetCallerIdentity with the credentials; returns the ARN or the error name. */
  whoAmI(credentials: Credentials): Promise<string>;
  /** Reads (and removes) what was published since the last call. */
  drainNotifications(): Promise<Notification>;
  /** The same, with each SNS message's attributes. */
  drainNotifications(options: { attributes: true }): Promise<NotificationWithAttributes>;
  /** Everything a mutating call could change: keys of every user, secrets and their versions, locks. */
  snapshot(): Promise<string>;
  /**
   * Every SecretAccessKey that exists or existed (given to users at creation, or stored by rekey),
   * and every ServicePassword rekey stored for a service-specific credential. With `userNames`,
   * only those users' access-key secrets are read from Secrets Manager (the keys given at creation
   * are all included): a cheaper scan for a world that holds many users.
   */
  knownSecrets(userNames?: readonly string[]): Promise<string[]>;
  stop(): Promise<void>;
}

/** Config for the tests: the defaults of cdk.json, with short verification backoff. */
export interface WorldOptions {
  config?: Record<string, unknown>;
  /**
   * Where rekey's handlers send their AWS requests, given the emulator's endpoint (e.g. a fault
   * proxy in front of it). The world's own clients (set-up and read-back) always go straight to
   * the emulator. Applied before any handler runs: handler clients read AWS_ENDPOINT_URL.
   * @default the emulator's endpoint
   */
  handlerEndpoint?: (motoEndpoint: string) => string | Promise<string>;
  /**
   * Keep what the handlers write out of the terminal (it is still captured in `logs`): a long
   * campaign's INFO logs would bury its report. @default false
   */
  quiet?: boolean;
  /**
   * An organization in the emulator (cli/emulator-organization.ts): the hub as its management
   * account, member accounts, each with the member roles made from the member template (as the
   * Lambdas assume them by ARN) and, with `secrets: member`, the member secrets key. The world's
   * configuration gets `organization` (this id, the root as the StackSet target, plus `config`).
   */
  organization?: WorldOrganizationOptions;
  /**
   * With `organization`: the organization audit's hub resources and environment
   * (support/organization-audit.ts), and its definition as `world.organizationAudit`.
   */
  organizationAudit?: boolean;
}

export interface WorldOrganizationOptions {
  members: number | readonly MemberAccountSpec[];
  /** OUs by name (`parent/child` for a nested one); a member names one to be moved into it. */
  organizationalUnits?: readonly string[];
  /**
   * More of the `organization` configuration (memberRolePrefix, secrets, include, exclude, ...);
   * a function of the seeded organization when it names its accounts or OUs (their ids are the
   * emulator's).
   */
  config?: Record<string, unknown> | ((seeded: SeededOrganization) => Record<string, unknown>);
  /**
   * The member template the member roles come from.
   * @default the member stack synthesized for the world's configuration
   */
  memberTemplate?: CfnTemplate;
  /** Member roles not made: member index (0 = the first member) -> the Lambdas whose role is missing. */
  withoutMemberRoles?: Readonly<Record<number, readonly MemberLambda[]>>;
}

export async function startWorld(options: WorldOptions = {}): Promise<World> {
  const moto = await startMotoWithClock();
  const base = { endpoint: moto.endpoint, region: REGION };

  // With signing off, create the admin every client (and every handler) runs as, then turn it on.
  const bootstrap = new IAMClient({
    ...base,
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
  const adminKey = (await bootstrap.send(new CreateAccessKeyCommand({ UserName: 'rekey-admin' }))).AccessKey;
  if (!adminKey?.AccessKeyId || !adminKey.SecretAccessKey) throw new Error('no admin key');
  const admin = { accessKeyId: adminKey.AccessKeyId, secretAccessKey: adminKey.SecretAccessKey };
  bootstrap.destroy();
  // Still with signing off: each member account's administrator is made now.
  const organization = options.organization
    ? await seedOrganization({
        ...base,
        admin,
        members: options.organization.members,
        organizationalUnits: options.organization.organizationalUnits ?? [],
        secrets:
          (typeof options.organization.config === 'object'
            ? (options.organization.config.secrets as 'member' | 'hub' | undefined)
            : undefined) ?? 'member',
      })
    : undefined;
  await moto.enableAuth();

  const saved = { ...process.env };
  Object.assign(process.env, {
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: admin.accessKeyId,
    AWS_SECRET_ACCESS_KEY: admin.secretAccessKey,
  });
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_SESSION_TOKEN;

  const clientConfig = { ...base, credentials: admin };
  const iam = new IAMClient(clientConfig);
  const secrets = new SecretsManagerClient(clientConfig);
  const sqs = new SQSClient(clientConfig);
  const sns = new SNSClient(clientConfig);
  const events = new EventBridgeClient(clientConfig);
  const dynamodb = new DynamoDBClient(clientConfig);

  // The grace is the deployed default (900 s, IAM's 15-minute resolution): tests move the clock
  // rather than shrink the rule they test.
  const config: Record<string, unknown> = {
    verifyBaseDelayMs: 10,
    ...options.config,
    ...(organization
      ? {
          organization: {
            organizationId: organization.organizationId,
            stackSetTargets: [organization.rootId],
            stackSetRegions: [REGION],
            ...(typeof options.organization?.config === 'function'
              ? options.organization.config(organization)
              : options.organization?.config),
          },
        }
      : {}),
  };
  const env = await prepareLocalEnv({ config, source: {}, log: () => {} });
  // Handlers log at INFO in tests so the secret scan reads everything they say.
  env.POWERTOOLS_LOG_LEVEL = 'INFO';
  // And emit their metrics as the deployed Lambdas do, into the captured logs.
  env.POWERTOOLS_METRICS_DISABLED = 'false';
  let audit: { env: Record<string, string>; stateMachineArn: string } | undefined;
  if (options.organizationAudit) {
    if (!organization) throw new Error('organizationAudit needs the organization option');
    audit = await prepareOrganizationAuditEnv(
      { ...base, credentials: admin },
      { config, hubAccountId: env.REKEY_HUB_ACCOUNT_ID ?? '', topicArn: env.REKEY_TOPIC_ARN ?? '' },
    );
    Object.assign(env, audit.env);
  }
  Object.assign(process.env, env);
  const adminSts = new STSClient(clientConfig);
  const { roles, rolesWith } = await worldRoles(
    config,
    env,
    { iam, sts: adminSts },
    organization && options.organization
      ? {
          seeded: organization,
          memberTemplate: options.organization.memberTemplate ?? (await synthesizeMemberTemplate(config)),
        }
      : undefined,
  );
  if (organization) {
    const lacking = options.organization?.withoutMemberRoles ?? {};
    await organization.installMemberRoles(roles, {
      except: Object.fromEntries(
        Object.entries(lacking).map(([index, lambdas]) => [
          organization.members[Number(index)]?.accountId ?? '',
          lambdas,
        ]),
      ),
    });
  }

  const queue = async (name: string) => {
    const url = (await sqs.send(new CreateQueueCommand({ QueueName: name }))).QueueUrl ?? '';
    const arn = (
      await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }))
    ).Attributes?.QueueArn;
    return { url, arn: arn ?? '' };
  };
  const snsQueue = await queue('rekey-test-notifications');
  await sns.send(
    new SubscribeCommand({
      TopicArn: env.REKEY_TOPIC_ARN,
      Protocol: 'sqs',
      Endpoint: snsQueue.arn,
      Attributes: { RawMessageDelivery: 'true' },
    }),
  );
  const eventQueue = await queue('rekey-test-events');
  await events.send(
    new PutRuleCommand({ Name: 'rekey-test', EventPattern: JSON.stringify({ source: ['rekey'] }) }),
  );
  await events.send(
    new PutTargetsCommand({ Rule: 'rekey-test', Targets: [{ Id: 'queue', Arn: eventQueue.arn }] }),
  );

  // Capture everything written to stdout/stderr (the handlers' Powertools logs among it).
  const logs: string[] = [];
  const originalStdout = process.stdout.write.bind(process.stdout);
  const originalStderr = process.stderr.write.bind(process.stderr);
  const capture =
    (original: typeof process.stdout.write) =>
    (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
      logs.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      if (options.quiet) return true;
      return (original as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
    };
  process.stdout.write = capture(originalStdout) as typeof process.stdout.write;
  process.stderr.write = capture(originalStderr) as typeof process.stderr.write;

  if (options.handlerEndpoint) process.env.AWS_ENDPOINT_URL = await options.handlerEndpoint(moto.endpoint);

  const definition = loadDefinition({ synth: false, log: () => {} });
  const organizationAudit = audit
    ? {
        loaded: organizationAuditDefinition(await synthesizeTemplate(config)),
        stateMachineArn: audit.stateMachineArn,
      }
    : undefined;

  let offsetSeconds = 0;
  const realNow = systemClock.now;
  // The handler modules share this object with the harness (one module graph), so replacing its
  // `now` moves every step's clock; stop() puts the real one back.
  systemClock.now = () => new Date(Date.now() + offsetSeconds * 1000);
  const clock: WorldClock = {
    advance(seconds) {
      offsetSeconds += seconds;
      moto.setOffsetSeconds(offsetSeconds);
    },
    offsetSeconds: () => offsetSeconds,
    now: () => systemClock.now(),
  };
  const givenSecrets = new Set<string>([
    admin.secretAccessKey,
    ...(organization?.members.map((m) => m.credentials.secretAccessKey) ?? []),
  ]);

  const receiveAll = async (url: string): Promise<Message[]> => {
    const all: Message[] = [];
    for (;;) {
      const out = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: url,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 0,
          MessageAttributeNames: ['All'],
        }),
      );
      const batch = out.Messages ?? [];
      all.push(...batch);
      if (batch.length === 0) return all;
      for (const m of batch)
        await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle }));
    }
  };

  const hubHelpers = accountHelpers(iam, secrets, env.REKEY_SECRET_PREFIX ?? '', givenSecrets);
  const accounts: WorldAccount[] = organization
    ? organization.accounts.map((account) => ({
        ...account,
        ...(account === organization.hub
          ? hubHelpers
          : accountHelpers(account.iam, account.secrets, env.REKEY_SECRET_PREFIX ?? '', givenSecrets)),
      }))
    : [];
  const world: World = {
    moto,
    clock,
    admin,
    iam,
    secrets,
    env,
    definition,
    roles,
    rolesWith,
    ...(organization ? { organization } : {}),
    ...(organizationAudit ? { organizationAudit } : {}),
    accounts,
    logs,
    run: (input, runOptions = {}) =>
      runRotation({
        input: input as never,
        definition: definition.definition,
        bindings: definition.bindings,
        env,
        noWait: true,
        retryIntervalMs: 0,
        roles,
        ...runOptions,
      }),
    async invokeStep(step, payload) {
      const state = `Invoke ${step}`;
      const result = await runRotation({
        input: payload as never,
        definition: {
          StartAt: state,
          States: {
            [state]: {
              Type: 'Task',
              Resource: `arn:aws:lambda:${REGION}:123456789012:function:${step}`,
              End: true,
            },
          },
        },
        bindings: { [state]: step },
        env,
        noWait: true,
        retryIntervalMs: 0,
      });
      if (result.status !== 'SUCCEEDED') throw new Error(`${step} failed: ${result.error}: ${result.cause}`);
      return result.output;
    },
    ...hubHelpers,
    async whoAmI(credentials) {
      const sts = new STSClient({ ...base, credentials, maxAttempts: 1 });
      try {
        return (await sts.send(new GetCallerIdentityCommand({}))).Arn ?? '';
      } catch (error) {
        return (error as Error).name;
      } finally {
        sts.destroy();
      }
    },
    drainNotifications: (async (options?: { attributes: true }) => {
      const snsMessages = await receiveAll(snsQueue.url);
      const eventMessages = await receiveAll(eventQueue.url);
      const drained: Notification = {
        sns: snsMessages.map((m) => m.Body ?? ''),
        events: eventMessages.map((m) => JSON.parse(m.Body ?? '{}')),
      };
      if (!options?.attributes) return drained;
      const snsAttributes = snsMessages.map((m) =>
        Object.fromEntries(
          Object.entries(m.MessageAttributes ?? {}).map(([name, value]) => [name, value.StringValue ?? '']),
        ),
      );
      const withAttributes: NotificationWithAttributes = { ...drained, snsAttributes };
      return withAttributes;
    }) as World['drainNotifications'],
    async snapshot() {
      const users = (await iam.send(new ListUsersCommand({}))).Users ?? [];
      const keys: Record<string, unknown> = {};
      for (const u of users) keys[u.UserName ?? ''] = await world.keysOf(u.UserName ?? '');
      const secretList = (await secrets.send(new ListSecretsCommand({}))).SecretList ?? [];
      const secretVersions: Record<string, unknown> = {};
      for (const s of secretList) {
        const versions = await secrets.send(new ListSecretVersionIdsCommand({ SecretId: s.ARN }));
        secretVersions[s.Name ?? ''] = (versions.Versions ?? []).map((v) => [v.VersionId, v.VersionStages]);
      }
      const locks = (await dynamodb.send(new ScanCommand({ TableName: env.REKEY_LOCK_TABLE }))).Items ?? [];
      return JSON.stringify({ keys, secretVersions, locks });
    },
    async knownSecrets(userNames) {
      const found = new Set(givenSecrets);
      if (userNames) {
        for (const userName of userNames) {
          for (const v of await world.storedVersions(userName)) found.add(v.SecretAccessKey);
        }
        return [...found];
      }
      const secretList = (await secrets.send(new ListSecretsCommand({}))).SecretList ?? [];
      for (const s of secretList) {
        const versions = await secrets.send(new ListSecretVersionIdsCommand({ SecretId: s.ARN }));
        for (const v of versions.Versions ?? []) {
          const value = await secrets.send(
            new GetSecretValueCommand({ SecretId: s.ARN, VersionId: v.VersionId }),
          );
          const parsed = JSON.parse(value.SecretString ?? '{}') as {
            SecretAccessKey?: string;
            ServicePassword?: string;
          };
          if (parsed.SecretAccessKey) found.add(parsed.SecretAccessKey);
          if (parsed.ServicePassword) found.add(parsed.ServicePassword);
        }
      }
      return [...found];
    },
    async stop() {
      systemClock.now = realNow;
      process.stdout.write = originalStdout;
      process.stderr.write = originalStderr;
      for (const c of [iam, secrets, sqs, sns, events, dynamodb, adminSts]) c.destroy();
      organization?.close();
      await moto.stop();
      for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
      Object.assign(process.env, saved);
    },
  };
  return world;
}

/**
 * The seeding and read-back helpers of one account, through its administrator's clients; every
 * secret access key they create is added to `givenSecrets` (the world's leak scan).
 */
function accountHelpers(
  iam: IAMClient,
  secrets: SecretsManagerClient,
  secretPrefix: string,
  givenSecrets: Set<string>,
): AccountHelpers {
  const helpers: AccountHelpers = {
    async createUser(userName, { keys = 1, inactive = [], tags = {}, path } = {}) {
      await iam.send(
        new CreateUserCommand({
          UserName: userName,
          ...(path ? { Path: path } : {}),
        }),
      );
      if (Object.keys(tags).length) {
        await iam.send(
          new TagUserCommand({
            UserName: userName,
            Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
          }),
        );
      }
      const created: Credentials[] = [];
      for (let i = 0; i < keys; i++) {
        const key = (await iam.send(new CreateAccessKeyCommand({ UserName: userName }))).AccessKey;
        if (!key?.AccessKeyId || !key.SecretAccessKey) throw new Error('no key');
        givenSecrets.add(key.SecretAccessKey);
        created.push({ accessKeyId: key.AccessKeyId, secretAccessKey: key.SecretAccessKey });
        if (inactive.includes(i)) {
          await iam.send(
            new UpdateAccessKeyCommand({
              UserName: userName,
              AccessKeyId: key.AccessKeyId,
              Status: 'Inactive',
            }),
          );
        }
      }
      return created;
    },
    async keysOf(userName) {
      const out = await iam.send(new ListAccessKeysCommand({ UserName: userName }));
      return (out.AccessKeyMetadata ?? []).map((k) => ({ id: k.AccessKeyId ?? '', status: k.Status ?? '' }));
    },
    async storedCredential(userName, stage = 'AWSCURRENT') {
      const out = await secrets.send(
        new GetSecretValueCommand({ SecretId: `${secretPrefix}${userName}`, VersionStage: stage }),
      );
      return JSON.parse(out.SecretString ?? '{}');
    },
    async storedVersions(userName) {
      const secretId = `${secretPrefix}${userName}`;
      try {
        // Described first: moto answers ListSecretVersionIds for a missing secret with a 500.
        await secrets.send(new DescribeSecretCommand({ SecretId: secretId }));
      } catch (error) {
        if ((error as Error).name === 'ResourceNotFoundException') return [];
        throw error;
      }
      const listed = await secrets.send(
        new ListSecretVersionIdsCommand({ SecretId: secretId, IncludeDeprecated: true }),
      );
      const versions: StoredVersion[] = [];
      for (const v of listed.Versions ?? []) {
        const value = await secrets.send(
          new GetSecretValueCommand({ SecretId: secretId, VersionId: v.VersionId }),
        );
        const parsed = JSON.parse(value.SecretString ?? '{}') as Omit<StoredVersion, 'versionId' | 'stages'>;
        versions.push({ versionId: v.VersionId ?? '', stages: v.VersionStages ?? [], ...parsed });
      }
      return versions;
    },
    async state() {
      const users: AccountState['users'] = {};
      for await (const page of paginateListUsers({ client: iam }, {})) {
        for (const u of page.Users ?? []) users[u.UserName ?? ''] = await helpers.keysOf(u.UserName ?? '');
      }
      const stored: AccountState['secrets'] = {};
      for await (const page of paginateListSecrets({ client: secrets }, {})) {
        for (const s of page.SecretList ?? []) {
          const listed = await secrets.send(
            new ListSecretVersionIdsCommand({ SecretId: s.ARN, IncludeDeprecated: true }),
          );
          const versions = [];
          for (const v of listed.Versions ?? []) {
            const value = await secrets.send(
              new GetSecretValueCommand({ SecretId: s.ARN, VersionId: v.VersionId }),
            );
            const parsed = JSON.parse(value.SecretString ?? '{}') as { AccessKeyId?: string };
            versions.push({
              versionId: v.VersionId ?? '',
              stages: [...(v.VersionStages ?? [])].sort(),
              accessKeyId: parsed.AccessKeyId ?? null,
            });
          }
          stored[s.Name ?? ''] = versions.sort((x, y) => x.versionId.localeCompare(y.versionId));
        }
      }
      const sortedKeys = <T>(o: Record<string, T>) =>
        Object.fromEntries(Object.entries(o).sort(([x], [y]) => x.localeCompare(y)));
      return { users: sortedKeys(users), secrets: sortedKeys(stored) };
    },
  };
  return helpers;
}

/**
 * Each Lambda of the stack synthesized for the world's configuration, as a role of its own in the
 * emulator (cli/deployed-roles.ts), assumed once per world through the admin clients (straight to
 * the emulator, never through a handler endpoint such as a fault proxy).
 */
async function worldRoles(
  config: Record<string, unknown>,
  env: Record<string, string>,
  admin: Parameters<typeof connectEmulator>[0],
  organization?: { seeded: SeededOrganization; memberTemplate: CfnTemplate },
): Promise<Pick<World, 'roles' | 'rolesWith'>> {
  const members: EmulatorOrganization | undefined = organization?.seeded.emulatorOrganization();
  const [template, emulator] = await Promise.all([
    synthesizeTemplate(config),
    connectEmulator(admin, REGION, members),
  ]);
  const memberTemplate = organization ? { memberTemplate: organization.memberTemplate } : {};
  const rolesWith = (mutate?: DeployedRolesOptions['mutate']) =>
    deployedRoles(emulator, { template, env, ...memberTemplate, ...(mutate ? { mutate } : {}) });
  return { roles: rolesWith(), rolesWith };
}

/**
 * `roles` with every call its handlers make recorded in `calls` (as `authorize` sees it, before it
 * is sent): pass `roles` as `run`'s option. The AssumeRole of a member role is recorded as a hub
 * call (sts:AssumeRole, input.RoleArn), the calls made as the member role with their `account`.
 */
export function recordCalls(base: DeployedRoles): { roles: DeployedRoles; calls: RecordedCall[] } {
  const calls: RecordedCall[] = [];
  const roles: DeployedRoles = {
    ...base,
    async contextFor(lambda) {
      const context = await base.contextFor(lambda);
      return {
        ...context,
        authorize: async (request) => {
          const call = {
            step: request.step,
            account: request.account,
            action: request.action,
            input: structuredClone(request.input),
          };
          try {
            const target = await context.authorize?.(request);
            calls.push({ ...call, allowed: true });
            return target;
          } catch (error) {
            calls.push({ ...call, allowed: false });
            throw error;
          }
        },
      };
    },
  };
  return { roles, calls };
}

/** The calls of `calls` that act in `accountId` or assume a role there. */
export const callsInto = (calls: readonly RecordedCall[], accountId: string): RecordedCall[] =>
  calls.filter(
    (c) =>
      c.account === accountId ||
      (c.action === 'sts:AssumeRole' && String(c.input.RoleArn ?? '').includes(`::${accountId}:`)),
  );

/**
 * Asserts that no secret value occurs in any of the haystacks (execution history, task inputs and
 * outputs, logs, notifications). The secrets are those of the world, so the check covers the old
 * key (given to the user at creation), every key rekey stored, and the admin's own key, plus
 * `extraSecrets` the test knows of (e.g. every password a fake service issued, stored or not).
 */
export async function expectNoSecretsIn(
  world: World,
  haystacks: Record<string, unknown>,
  extraSecrets: readonly string[] = [],
): Promise<void> {
  const secrets = [...new Set([...(await world.knownSecrets()), ...extraSecrets])];
  expect(secrets.length).toBeGreaterThan(1);
  expectNoSecrets({ secrets }, haystacks);
}

/** The detail-types of the EventBridge events, in the order they were published. */
export const detailTypes = (n: Notification): string[] => n.events.map((e) => e['detail-type']);

/** The names of the states a run entered, in order. */
export const statesEntered = (r: RotationResult): string[] =>
  r.events.filter((e) => e.type === 'StateEntered').map((e) => (e as { state: { name: string } }).state.name);

/**
 * Every place a run could leak a secret: its history, task inputs and outputs, output, error,
 * the logs and what it published; `extraSecrets` as for expectNoSecretsIn.
 */
export async function expectCleanRun(
  world: World,
  result: RotationResult,
  notifications: Notification,
  extraSecrets: readonly string[] = [],
): Promise<void> {
  await expectNoSecretsIn(
    world,
    {
      'the execution history': result.events,
      'the task inputs and outputs': result.tasks,
      'the execution output': result.output ?? null,
      'the execution error': `${result.error} ${result.cause}`,
      'the logs': world.logs.join(''),
      'the notifications': notifications,
    },
    extraSecrets,
  );
}

export const outcomeStatus = (result: RotationResult): string | undefined =>
  (result.output as { outcome?: { status?: string } } | undefined)?.outcome?.status;
