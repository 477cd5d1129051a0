/**
 * The audit test world: a moto server with a movable clock (cli/moto-clock.py, started by cli/emulator.ts), an
 * account seeded with users whose keys were created and last used at chosen days in the past,
 * the rotation state machine as Step Functions sees it (a stand-in: the audit only starts it),
 * and read-back channels for what the audit publishes (SNS -> SQS, EventBridge rule -> SQS,
 * Security Hub GetFindings, the report bucket's objects). Every PutEvents entry the audit sends is also recorded at the SDK
 * (moto runs a rule's targets at ~0.35 s per matching event, so the SQS rule only routes the
 * events of a few chosen users: enough to prove delivery and routing). Request signing is off
 * while the tests seed and read back (the 10,000-user case could not afford checking every
 * seeding request against every user's keys) and on while an audit runs: the audit signs as its
 * deployed role, made from the template of the run's configuration (cli/deployed-roles.ts), as
 * the rotation workflow's steps do. Roles are not in the credential report, so the account the
 * audit sees is exactly the seeded one.
 */
import { CreateTableCommand, DeleteTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  EventBridgeClient,
  type PutEventsRequestEntry,
  PutRuleCommand,
  PutTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import {
  CreateAccessKeyCommand,
  CreateRoleCommand,
  CreateUserCommand,
  IAMClient,
  type ListServiceSpecificCredentialsCommandInput,
  type ListServiceSpecificCredentialsCommandOutput,
  PutRolePolicyCommand,
  type ServiceSpecificCredentialMetadata,
  TagUserCommand,
} from '@aws-sdk/client-iam';
import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { EnableSecurityHubCommand, SecurityHubClient } from '@aws-sdk/client-securityhub';
import { CreateStateMachineCommand, ListExecutionsCommand, SFNClient } from '@aws-sdk/client-sfn';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import {
  AssumeRoleCommand,
  GetCallerIdentityCommand,
  STSClient,
  type Credentials as StsCredentials,
} from '@aws-sdk/client-sts';
import {
  connectEmulator,
  type DeployedRolesOptions,
  deployedRoles,
  type Emulator,
  synthesizeTemplate,
} from '../cli/deployed-roles.ts';
import { type MotoClockServer, startMotoWithClock } from '../cli/emulator.ts';
import { loadEnv } from '../contract/env.ts';
import { AUDIT_ENV } from '../contract/functions.ts';
import { auditEnvironment, loadConfig } from '../infra/config.ts';
import { SfnRotationStarter } from '../lambdas/audit/actions.ts';
import { type AuditPolicy, type AuditSummary, auditPolicyFromEnv, runAudit } from '../lambdas/audit/audit.ts';
import { CallCounter } from '../lambdas/audit/calls.ts';
import { DynamoKeyIdCache } from '../lambdas/audit/key-id-cache.ts';
import { accountContextFromArn } from '../lambdas/audit/security-hub.ts';
import {
  bindToInvocations,
  invocationCredentials,
  runInInvocation,
} from '../lambdas/shared/clients/invocation.ts';
import { systemClock } from '../lambdas/shared/clock.ts';
import { publishMetrics } from '../lambdas/shared/metrics.ts';
import { ANY_CREDENTIALS, awsClient, clientSettings, TEST_REGION } from './aws.ts';
import { ACCOUNT } from './constants.ts';

export { ACCOUNT };

/**
 * Creates the audit's key-id cache table (infra/constructs/audit.ts) in the emulator: the same
 * keys, and the table name the audit's environment then names.
 */
export async function createKeyIdCacheTable(dynamodb: DynamoDBClient, tableName: string): Promise<void> {
  await dynamodb.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'userName', AttributeType: 'S' },
        { AttributeName: 'keyCreated', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'userName', KeyType: 'HASH' },
        { AttributeName: 'keyCreated', KeyType: 'RANGE' },
      ],
    }),
  );
}

export interface KeySpec {
  createdDaysAgo: number;
  /** undefined: never used. */
  usedDaysAgo?: number;
}

export interface UserSpec {
  userName: string;
  path?: string;
  tags?: Record<string, string>;
  keys: KeySpec[];
}

/**
 * The users with findings in the scale runs (test/workflow/audit-scale.test.ts, bench/audit.ts):
 * 10 old keys used yesterday and 10 keys unused for 60 days, so every scan must report 10 OLD_KEY
 * and 10 UNUSED_KEY whatever the account size.
 */
export const SCALE_FINDING_USERS: UserSpec[] = [
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

export interface SeededKey {
  userName: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/**
 * Counts every IAM request that leaves a client (a middleware on the real client): an
 * independent check of the audit's own CallCounter.
 */
export function countRequests(client: IAMClient): Map<string, number> {
  const counts = new Map<string, number>();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = (context.commandName ?? 'unknown').replace(/Command$/, '');
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: 'initialize', name: 'rekeyTestRequestCounter' },
  );
  return counts;
}

/**
 * GetAccountAuthorizationDetails as real IAM pages it (at most MaxItems users a page, default 100,
 * an opaque Marker), on top of moto, which answers every user in one page whatever MaxItems says.
 * A middleware on the client: the first page asks moto for everything, later pages are cut from
 * that answer, so each page is one request as the client (and its counters) see it.
 */
export function pageAuthorizationDetails(client: IAMClient): void {
  let all: { UserDetailList?: unknown[]; $metadata: object } | undefined;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName !== 'GetAccountAuthorizationDetailsCommand') return next(args);
      const input = args.input as { MaxItems?: number; Marker?: string };
      if (input.Marker === undefined || all === undefined) {
        const { MaxItems: _max, Marker: _marker, ...rest } = input;
        const answer = await next({ ...args, input: rest });
        all = answer.output as { UserDetailList?: unknown[]; $metadata: object };
      }
      const users = all.UserDetailList ?? [];
      const start = Number(input.Marker ?? 0);
      const end = start + (input.MaxItems ?? 100);
      const truncated = end < users.length;
      const output = {
        ...all,
        UserDetailList: users.slice(start, end),
        IsTruncated: truncated,
        ...(truncated ? { Marker: String(end) } : { Marker: undefined }),
      };
      return { output: output as typeof all & { $metadata: object }, response: {} };
    },
    { step: 'initialize', name: 'rekeyTestPagedAuthorizationDetails' },
  );
}

/** Runs `fn` over items, `concurrency` at a time. */
export async function pool<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

/**
 * ListServiceSpecificCredentials as IAM pages it (MaxItems per page, an opaque Marker), over a
 * fixed list per service: moto does not implement the operation, so the scale test answers it
 * from here, inside the audit's own IAM client (auditCredentials below).
 */
export function pagedServiceCredentials(
  byService: Record<string, ServiceSpecificCredentialMetadata[]>,
): (input: ListServiceSpecificCredentialsCommandInput) => ListServiceSpecificCredentialsCommandOutput {
  return (input) => {
    if (!input.AllUsers || input.UserName) throw new Error('the audit lists with AllUsers, never per user');
    const all = byService[input.ServiceName ?? ''] ?? [];
    const start = Number(input.Marker ?? 0);
    const end = start + (input.MaxItems ?? 100);
    return {
      ServiceSpecificCredentials: all.slice(start, end),
      IsTruncated: end < all.length,
      ...(end < all.length ? { Marker: String(end) } : {}),
      $metadata: {},
    };
  };
}

export interface AuditWorld {
  moto: MotoClockServer;
  iam: IAMClient;
  sfn: SFNClient;
  securityHub: SecurityHubClient;
  stateMachineArn: string;
  topicArn: string;
  /** The report bucket, which an audit with `auditReports: true` writes to. */
  reportBucket: string;
  /** An object of the emulator's S3 (read as the administrator), by its `s3://` URI. */
  readObject(uri: string): Promise<string>;
  /** Every secret access key the emulator handed out. */
  secrets: string[];
  seed(users: UserSpec[]): Promise<SeededKey[]>;
  /** Creates users `<prefix><from>`..`<prefix><to - 1>`, one fresh key each, through CloudFormation. */
  bulkCreateUsers(prefix: string, from: number, to: number): Promise<void>;
  /** Empties the audit's key-id cache table: the next audit run is a cold one. */
  clearKeyIdCache(): Promise<void>;
  /**
   * One audit run under the deployment configuration `config` (cdk.json's `rekey` shape): its
   * environment and its role both come from it. Service-specific credentials are not audited
   * (moto lacks the API) unless `serviceCredentials` answers ListServiceSpecificCredentials
   * (pagedServiceCredentials). `mutate` changes the role's statements (mutation tests).
   */
  audit(
    config?: Record<string, unknown>,
    options?: {
      dryRun?: boolean;
      serviceCredentials?: ReturnType<typeof pagedServiceCredentials>;
      mutate?: DeployedRolesOptions['mutate'];
    },
  ): Promise<{
    summary: AuditSummary;
    calls: CallCounter;
    requests: Map<string, number>;
    policy: AuditPolicy;
    /** What the run wrote to stdout: its EMF metric lines (lambdas/shared/metrics.ts) among it. */
    stdout: string[];
  }>;
  executionNames(): Promise<string[]>;
  drainDigests(): Promise<string[]>;
  /** Events delivered by the EventBridge rule (only those of the `routedUsers`) to an SQS queue. */
  drainEvents(): Promise<Array<{ 'detail-type': string; source: string; detail: Record<string, unknown> }>>;
  /** Every PutEvents entry sent since the last call (recorded on the client, answered by moto). */
  drainSentEvents(): PutEventsRequestEntry[];
  stop(): Promise<void>;
}

export interface AuditWorldOptions {
  /** Users whose events the EventBridge rule routes to the SQS queue. @default [] */
  routedUsers?: string[];
}

export async function startAuditWorld(options: AuditWorldOptions = {}): Promise<AuditWorld> {
  const moto = await startMotoWithClock();
  const client = <C>(C: new (settings: never) => C) => awsClient(C as never, moto.endpoint) as C;
  const iam = client(IAMClient);
  const sfn = client(SFNClient);
  const sns = client(SNSClient);
  const sqs = client(SQSClient);
  const events = client(EventBridgeClient);
  const securityHub = client(SecurityHubClient);
  const dynamodb = client(DynamoDBClient);
  const keyIdCacheTable = 'rekey-audit-key-ids';
  await createKeyIdCacheTable(dynamodb, keyIdCacheTable);
  // Path-style addressing: the emulator is an IP address, which has no bucket subdomains.
  const s3 = new S3Client({ ...clientSettings(moto.endpoint), forcePathStyle: true });
  const reportBucket = 'rekey-audit-reports';
  await s3.send(new CreateBucketCommand({ Bucket: reportBucket }));

  const stateMachineArn =
    (
      await sfn.send(
        new CreateStateMachineCommand({
          name: 'rekey-rotation',
          roleArn: `arn:aws:iam::${ACCOUNT}:role/rekey-rotation`,
          definition: JSON.stringify({ StartAt: 'Rotate', States: { Rotate: { Type: 'Pass', End: true } } }),
        }),
      )
    ).stateMachineArn ?? '';
  const topicArn = (await sns.send(new CreateTopicCommand({ Name: 'rekey-audit' }))).TopicArn ?? '';
  const queue = async (name: string) => {
    const url = (await sqs.send(new CreateQueueCommand({ QueueName: name }))).QueueUrl ?? '';
    const attributes = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }),
    );
    return { url, arn: attributes.Attributes?.QueueArn ?? '' };
  };
  const digestQueue = await queue('rekey-audit-digests');
  await sns.send(
    new SubscribeCommand({
      TopicArn: topicArn,
      Protocol: 'sqs',
      Endpoint: digestQueue.arn,
      Attributes: { RawMessageDelivery: 'true' },
    }),
  );
  const eventQueue = await queue('rekey-audit-events');
  if (options.routedUsers?.length) {
    await events.send(
      new PutRuleCommand({
        Name: 'rekey-audit-findings',
        EventPattern: JSON.stringify({
          source: ['rekey'],
          'detail-type': ['Stale Access Key Found'],
          detail: { userName: options.routedUsers },
        }),
      }),
    );
    await events.send(
      new PutTargetsCommand({
        Rule: 'rekey-audit-findings',
        Targets: [{ Id: 'queue', Arn: eventQueue.arn }],
      }),
    );
  }
  await securityHub.send(new EnableSecurityHubCommand({}));
  let sentEvents: PutEventsRequestEntry[] = [];
  const emulator = await auditEmulator(moto.endpoint);

  const receiveAll = async (url: string): Promise<string[]> => {
    const bodies: string[] = [];
    for (;;) {
      const out = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
      );
      const batch = out.Messages ?? [];
      if (batch.length === 0) return bodies;
      for (const m of batch) {
        bodies.push(m.Body ?? '');
        await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle }));
      }
    }
  };

  const secrets: string[] = [];

  async function seed(users: UserSpec[]): Promise<SeededKey[]> {
    moto.setOffsetDays(0);
    await pool(users, 8, async (u) => {
      await iam.send(new CreateUserCommand({ UserName: u.userName, ...(u.path ? { Path: u.path } : {}) }));
      if (u.tags && Object.keys(u.tags).length)
        await iam.send(
          new TagUserCommand({
            UserName: u.userName,
            Tags: Object.entries(u.tags).map(([Key, Value]) => ({ Key, Value })),
          }),
        );
    });
    // Keys are created oldest first, one clock setting at a time, so key 1 is each user's older key.
    const keys = users.flatMap((u) => u.keys.map((k, index) => ({ user: u, k, index })));
    const created = new Map<string, SeededKey>();
    const byAge = [...new Set(keys.map((x) => x.k.createdDaysAgo))].sort((a, b) => b - a);
    for (const days of byAge) {
      moto.setOffsetDays(-days);
      await pool(
        keys.filter((x) => x.k.createdDaysAgo === days),
        8,
        async ({ user, index }) => {
          const key = (await iam.send(new CreateAccessKeyCommand({ UserName: user.userName }))).AccessKey;
          if (!key?.AccessKeyId || !key.SecretAccessKey) throw new Error('CreateAccessKey returned no key');
          secrets.push(key.SecretAccessKey);
          created.set(`${user.userName}#${index}`, {
            userName: user.userName,
            accessKeyId: key.AccessKeyId,
            secretAccessKey: key.SecretAccessKey,
          });
        },
      );
    }
    // A key is "used" by signing a request with it while the clock shows that day.
    const uses = keys.filter((x) => x.k.usedDaysAgo !== undefined);
    const byUse = [...new Set(uses.map((x) => x.k.usedDaysAgo as number))].sort((a, b) => b - a);
    for (const days of byUse) {
      moto.setOffsetDays(-days);
      await pool(
        uses.filter((x) => x.k.usedDaysAgo === days),
        8,
        async ({ user, index }) => {
          const key = created.get(`${user.userName}#${index}`) as SeededKey;
          const sts = new STSClient({
            endpoint: moto.endpoint,
            region: TEST_REGION,
            credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
            maxAttempts: 1,
          });
          await sts.send(new GetCallerIdentityCommand({}));
          sts.destroy();
        },
      );
    }
    moto.setOffsetDays(0);
    return [...created.values()];
  }

  /**
   * Bulk seeding for the scale test: one CloudFormation stack per 2,000 users (AWS::IAM::User plus
   * AWS::IAM::AccessKey each), which moto creates in-process about three times faster than 4,000
   * IAM calls over HTTP. Real CloudFormation caps a template at 500 resources; moto does not, and
   * this is only a way to fill the emulator. The audit itself reads through the IAM API.
   */
  async function bulkCreateUsers(prefix: string, from: number, to: number): Promise<void> {
    const perStack = 2000;
    for (let start = from; start < to; start += perStack) {
      const resources: Record<string, unknown> = {};
      for (let i = start; i < Math.min(to, start + perStack); i++) {
        resources[`U${i}`] = {
          Type: 'AWS::IAM::User',
          Properties: { UserName: `${prefix}${i}`, Path: '/svc/' },
        };
        resources[`K${i}`] = { Type: 'AWS::IAM::AccessKey', Properties: { UserName: { Ref: `U${i}` } } };
      }
      const body = new URLSearchParams({
        Action: 'CreateStack',
        Version: '2010-05-15',
        StackName: `${prefix.replace(/[^A-Za-z0-9-]/g, '')}-${start}`,
        TemplateBody: JSON.stringify({ Resources: resources }),
      });
      const response = await fetch(`${moto.endpoint}/`, {
        method: 'POST',
        body,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          // moto routes by the credential scope; request signing is off.
          authorization: `AWS4-HMAC-SHA256 Credential=${ANY_CREDENTIALS.accessKeyId}/20260101/${TEST_REGION}/cloudformation/aws4_request, SignedHeaders=host, Signature=0`,
        },
      });
      if (!response.ok)
        throw new Error(`CreateStack answered ${response.status}: ${(await response.text()).slice(0, 500)}`);
    }
  }

  const world: AuditWorld = {
    moto,
    iam,
    sfn,
    securityHub,
    stateMachineArn,
    topicArn,
    reportBucket,
    async readObject(uri) {
      const [, bucketName, key] = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri) ?? [];
      const out = await s3.send(new GetObjectCommand({ Bucket: bucketName, Key: key }));
      return (await out.Body?.transformToString('utf8')) ?? '';
    },
    secrets,
    seed,
    bulkCreateUsers,
    async clearKeyIdCache() {
      await dynamodb.send(new DeleteTableCommand({ TableName: keyIdCacheTable }));
      await createKeyIdCacheTable(dynamodb, keyIdCacheTable);
    },
    async audit(rawConfig = {}, options = {}) {
      const config = {
        // moto does not implement ListServiceSpecificCredentials (unit tests cover that listing).
        auditServiceCredentials: options.serviceCredentials !== undefined,
        ...rawConfig,
      };
      const variables = auditEnvironment(loadConfig(config), {
        hubAccountId: stateMachineArn.split(':')[4] ?? '',
        stateMachineArn,
        topicArn,
        keyIdCacheTable,
        reportBucket,
      });
      const env = loadEnv(AUDIT_ENV, variables);
      const policy = auditPolicyFromEnv(env);
      const roles = deployedRoles(emulator, {
        template: await synthesizeTemplate(config),
        env: variables,
        ...(options.mutate ? { mutate: options.mutate } : {}),
      });
      const invocation = await roles.contextFor('audit');
      // Fresh clients per run, signing as the invocation's role, with an IAM request counter
      // independent of the audit's own and a recorder of what PutEvents sends.
      const settings = { ...clientSettings(moto.endpoint), credentials: invocationCredentials };
      const runIam = new IAMClient(settings);
      bindToInvocations(runIam, 'iam');
      const runSns = new SNSClient(settings);
      bindToInvocations(runSns, 'sns');
      const runEvents = new EventBridgeClient(settings);
      bindToInvocations(runEvents, 'events');
      runEvents.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName === 'PutEventsCommand')
            sentEvents.push(...((args.input as { Entries?: PutEventsRequestEntry[] }).Entries ?? []));
          return next(args);
        },
        { step: 'initialize', name: 'rekeyTestEventRecorder' },
      );
      const runSecurityHub = new SecurityHubClient(settings);
      bindToInvocations(runSecurityHub, 'securityhub');
      const runSfn = new SFNClient(settings);
      bindToInvocations(runSfn, 'states');
      const runDynamodb = new DynamoDBClient(settings);
      bindToInvocations(runDynamodb, 'dynamodb');
      const runS3 = new S3Client({ ...settings, forcePathStyle: true });
      bindToInvocations(runS3, 's3');
      const bucket = env.REKEY_REPORT_BUCKET;
      const cacheTable = env.REKEY_KEY_ID_CACHE_TABLE;
      const keyIdCache = cacheTable
        ? new DynamoKeyIdCache({ dynamodb: runDynamodb, tableName: cacheTable, clock: systemClock })
        : undefined;
      const requests = countRequests(runIam);
      const answer = options.serviceCredentials;
      if (answer)
        runIam.middlewareStack.add(
          (next, context) => async (args) =>
            context.commandName === 'ListServiceSpecificCredentialsCommand'
              ? { output: answer(args.input as ListServiceSpecificCredentialsCommandInput), response: {} }
              : next(args),
          { step: 'initialize', name: 'rekeyTestServiceCredentials' },
        );
      const calls = new CallCounter();
      // The run's stdout, kept (and still printed): the metrics the Lambda would emit.
      const stdout: string[] = [];
      const write = process.stdout.write.bind(process.stdout);
      process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
        stdout.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
        return write(chunk, ...rest);
      }) as typeof process.stdout.write;
      await moto.enableAuth();
      try {
        const summary = await runInInvocation(invocation, () =>
          runAudit(
            {
              iam: runIam,
              sns: runSns,
              eventBridge: runEvents,
              securityHub: runSecurityHub,
              starter: new SfnRotationStarter(runSfn, stateMachineArn),
              account: accountContextFromArn(stateMachineArn),
              clock: systemClock,
              calls,
              topicArn,
              eventBusName: 'default',
              publishMetrics,
              ...(keyIdCache ? { keyIdCache } : {}),
              ...(bucket ? { reports: { s3: runS3, bucket } } : {}),
            },
            policy,
            { ...(options.dryRun === undefined ? {} : { dryRun: options.dryRun }) },
          ),
        );
        return { summary, calls, requests, policy, stdout };
      } finally {
        process.stdout.write = write;
        await moto.disableAuth();
        for (const c of [runIam, runSns, runEvents, runSecurityHub, runSfn, runDynamodb, runS3]) c.destroy();
      }
    },
    async executionNames() {
      const names: string[] = [];
      let nextToken: string | undefined;
      do {
        const out = await sfn.send(
          new ListExecutionsCommand({ stateMachineArn, nextToken, maxResults: 1000 }),
        );
        names.push(...(out.executions ?? []).map((e) => e.name ?? ''));
        nextToken = out.nextToken;
      } while (nextToken);
      return names;
    },
    drainDigests: () => receiveAll(digestQueue.url),
    drainSentEvents() {
      const sent = sentEvents;
      sentEvents = [];
      return sent;
    },
    async drainEvents() {
      return (await receiveAll(eventQueue.url)).map((b) => JSON.parse(b));
    },
    async stop() {
      for (const c of [
        iam,
        sfn,
        sns,
        sqs,
        events,
        securityHub,
        dynamodb,
        s3,
        emulator.admin.iam,
        emulator.admin.sts,
      ])
        c.destroy();
      await moto.stop();
    },
  };
  return world;
}

/**
 * The emulator as the harness needs it for the audit's role: an administrator that still works
 * while request signing is on (an assumed role, which the credential report does not list, unlike
 * an IAM user), made while signing is off.
 */
async function auditEmulator(endpoint: string): Promise<Emulator> {
  const bootstrap = { iam: awsClient(IAMClient, endpoint), sts: awsClient(STSClient, endpoint) };
  let credentials: StsCredentials | undefined;
  try {
    await bootstrap.iam.send(
      new CreateRoleCommand({
        RoleName: 'rekey-test-admin',
        AssumeRolePolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 'sts:AssumeRole' }],
        }),
      }),
    );
    await bootstrap.iam.send(
      new PutRolePolicyCommand({
        RoleName: 'rekey-test-admin',
        PolicyName: 'everything',
        PolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }],
        }),
      }),
    );
    credentials = (
      await bootstrap.sts.send(
        new AssumeRoleCommand({
          RoleArn: `arn:aws:iam::${ACCOUNT}:role/rekey-test-admin`,
          RoleSessionName: 'audit-world',
        }),
      )
    ).Credentials;
  } finally {
    bootstrap.iam.destroy();
    bootstrap.sts.destroy();
  }
  if (!credentials?.AccessKeyId || !credentials.SecretAccessKey || !credentials.SessionToken)
    throw new Error('AssumeRole returned no credentials');
  const admin = {
    accessKeyId: credentials.AccessKeyId,
    secretAccessKey: credentials.SecretAccessKey,
    sessionToken: credentials.SessionToken,
  };
  const settings = { ...clientSettings(endpoint), credentials: admin, maxAttempts: 3 };
  return connectEmulator({ iam: new IAMClient(settings), sts: new STSClient(settings) }, TEST_REGION);
}
