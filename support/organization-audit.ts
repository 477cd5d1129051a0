/**
 * The organization audit (infra/constructs/organization-audit.ts) on the local engine, for the
 * workflow test (test/workflow/organization-audit.test.ts) and the bench (bench/organization.ts):
 * the hub resources its Lambdas name (results table, key-id cache table, a stand-in of the
 * rotation state machine the audit starts executions of), their environment as the stack gives
 * it (infra/config.ts auditEnvironment), its definition extracted from the synthesized template
 * (cli/definition.ts), and a run of it by the local runner (cli/local-runner.ts) with the real
 * handlers of lambdas/ under their deployed roles. Also the record of every AWS call a run makes,
 * by Lambda, account audited and service, and the Map's concurrency read from the event log.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { join } from 'node:path';
import { CreateTableCommand, DynamoDBClient, paginateQuery } from '@aws-sdk/client-dynamodb';
import { CreateStateMachineCommand, ListExecutionsCommand, SFNClient } from '@aws-sdk/client-sfn';
import {
  type CfnTemplate,
  extractOrganizationAuditDefinition,
  type LoadedOrganizationAuditDefinition,
  REPO_ROOT,
} from '../cli/definition.ts';
import type { DeployedRoles } from '../cli/deployed-roles.ts';
import {
  type ExecutionEvent,
  type JsonValue,
  type RotationResult,
  type RunRotationOptions,
  runRotation,
} from '../cli/local-runner.ts';
import { ORGANIZATION_AUDIT_STATE } from '../contract/states.ts';
import { ORGANIZATION_RESULTS as COL } from '../contract/tables.ts';
import { auditEnvironment, loadConfig } from '../infra/config.ts';
import type { InvocationContext } from '../lambdas/shared/clients/invocation.ts';
import { createKeyIdCacheTable } from './audit-world.ts';

export const ORGANIZATION_AUDIT_RESOURCES = {
  resultsTable: 'rekey-local-organization-results',
  keyIdCacheTable: 'rekey-local-key-ids',
  rotationStateMachine: 'rekey-local-rotation',
} as const;

interface AdminAccess {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

/**
 * Makes the hub resources of the organization audit in the emulator (as the administrator) and
 * returns the audit's environment for them. The rotation state machine is a stand-in (one Pass
 * state): the audit only starts executions of it, which ListExecutions reads back.
 */
export async function prepareOrganizationAuditEnv(
  admin: AdminAccess,
  options: { config: unknown; hubAccountId: string; topicArn: string },
): Promise<{ env: Record<string, string>; stateMachineArn: string }> {
  const settings = { endpoint: admin.endpoint, region: admin.region, credentials: admin.credentials };
  const dynamodb = new DynamoDBClient(settings);
  const sfn = new SFNClient(settings);
  try {
    await dynamodb.send(
      new CreateTableCommand({
        TableName: ORGANIZATION_AUDIT_RESOURCES.resultsTable,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: COL.partitionKey, AttributeType: 'S' },
          { AttributeName: COL.sortKey, AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: COL.partitionKey, KeyType: 'HASH' },
          { AttributeName: COL.sortKey, KeyType: 'RANGE' },
        ],
      }),
    );
    await createKeyIdCacheTable(dynamodb, ORGANIZATION_AUDIT_RESOURCES.keyIdCacheTable);
    const stateMachineArn =
      (
        await sfn.send(
          new CreateStateMachineCommand({
            name: ORGANIZATION_AUDIT_RESOURCES.rotationStateMachine,
            roleArn: `arn:aws:iam::${options.hubAccountId}:role/rekey-local-rotation`,
            definition: JSON.stringify({
              StartAt: 'Rotate',
              States: { Rotate: { Type: 'Pass', End: true } },
            }),
          }),
        )
      ).stateMachineArn ?? '';
    const variables = auditEnvironment(loadConfig(options.config), {
      hubAccountId: options.hubAccountId,
      topicArn: options.topicArn,
      stateMachineArn,
      keyIdCacheTable: ORGANIZATION_AUDIT_RESOURCES.keyIdCacheTable,
      organizationResultsTable: ORGANIZATION_AUDIT_RESOURCES.resultsTable,
    });
    const env = Object.fromEntries(
      Object.entries(variables).filter((entry): entry is [string, string] => typeof entry[1] === 'string'),
    );
    return { env, stateMachineArn };
  } finally {
    dynamodb.destroy();
    sfn.destroy();
  }
}

/** The organization audit of a template synthesized with organization, its Tasks bound. */
export function organizationAuditDefinition(template: CfnTemplate): LoadedOrganizationAuditDefinition {
  return extractOrganizationAuditDefinition(template);
}

/** One AWS call a handler made (as put to its role's check before it was sent). */
export interface RecordedCall {
  /** The Lambda: `organization-accounts` or `audit`. */
  lambda: string;
  /** The account an `account`-mode audit was auditing; undefined for the listing and the aggregate. */
  audited?: string;
  /** The account the call acted in: a member account, or undefined for the hub. */
  account?: string;
  /** `<service>:<operation>`, e.g. `iam:ListAccessKeys`. */
  action: string;
  /** events:PutEvents only: the entries sent (what an EventBridge rule would match). */
  entries?: unknown[];
}

const auditing = new AsyncLocalStorage<string>();

/**
 * The same roles, with every call of every invocation recorded into `calls`, each tagged with
 * the account its `account`-mode audit was auditing (runOrganizationAudit sets it).
 */
export function recordingRoles(
  roles: Pick<DeployedRoles, 'contextFor'>,
  calls: RecordedCall[],
): Pick<DeployedRoles, 'contextFor'> {
  return {
    async contextFor(lambda): Promise<InvocationContext> {
      const context = await roles.contextFor(lambda);
      return {
        ...context,
        authorize: async (request) => {
          const audited = auditing.getStore();
          calls.push({
            lambda,
            action: request.action,
            ...(audited === undefined ? {} : { audited }),
            ...(request.account === undefined ? {} : { account: request.account }),
            ...(request.action === 'events:PutEvents'
              ? { entries: structuredClone((request.input.Entries as unknown[] | undefined) ?? []) }
              : {}),
          });
          return context.authorize?.(request);
        },
      };
    },
  };
}

export interface OrganizationAuditRun {
  loaded: LoadedOrganizationAuditDefinition;
  env: Record<string, string>;
  roles: Pick<DeployedRoles, 'contextFor'>;
  input?: JsonValue;
  executionName?: string;
  /** Extra runner options (task overrides, an event listener). */
  options?: Partial<RunRotationOptions>;
}

/**
 * One execution of the organization audit on the local engine, every Task running its
 * standalone Lambda's handler (lambdas/<name>/index.ts) under its deployed role, Retry waits 0.
 * Each `account`-mode invocation's calls are tagged with its account (recordingRoles).
 */
export function runOrganizationAudit(run: OrganizationAuditRun): Promise<RotationResult> {
  const overrides = run.options?.handlers ?? {};
  const auditOverride = overrides.audit;
  return runRotation({
    input: run.input ?? {},
    definition: run.loaded.definition,
    bindings: run.loaded.bindings,
    handlersDir: join(REPO_ROOT, 'lambdas'),
    env: run.env,
    noWait: true,
    retryIntervalMs: 0,
    roles: run.roles,
    ...(run.executionName ? { executionName: run.executionName } : {}),
    ...run.options,
    handlers: {
      ...overrides,
      audit: (input, invoke, task) => {
        const accountId = (input as { mode?: string; accountId?: string }).accountId;
        const call = () => (auditOverride ? auditOverride(input, invoke, task) : invoke(input));
        return accountId === undefined ? call() : auditing.run(accountId, async () => call());
      },
    },
  });
}

/**
 * The most iterations of the Map `state` that were running at once, from the execution's event
 * log: each iteration runs from its MapIterationStarted to its MapIterationSucceeded/Failed, at
 * the timestamps those carry (those of the iteration's own start and end). The order of the
 * events is not used: the engine forwards an iteration's events asynchronously, so the next
 * iteration's start can be logged before the end of the one whose slot it took.
 */
export function mapConcurrency(
  events: readonly ExecutionEvent[],
  state: string = ORGANIZATION_AUDIT_STATE.auditEachAccount,
): { iterations: number; maxRunning: number } {
  const edges: Array<{ at: number; delta: 1 | -1 }> = [];
  let iterations = 0;
  for (const event of events) {
    const parent = (event as { parentState?: { name?: string } }).parentState?.name;
    if (parent !== state) continue;
    if (event.type === 'MapIterationStarted') {
      iterations += 1;
      edges.push({ at: event.timestamp, delta: 1 });
    } else if (event.type === 'MapIterationSucceeded' || event.type === 'MapIterationFailed') {
      edges.push({ at: event.timestamp, delta: -1 });
    }
  }
  // At the same millisecond an end comes first: the slot it frees is the one the start takes.
  edges.sort((x, y) => x.at - y.at || x.delta - y.delta);
  let running = 0;
  let maxRunning = 0;
  for (const edge of edges) {
    running += edge.delta;
    maxRunning = Math.max(maxRunning, running);
  }
  return { iterations, maxRunning };
}

/** Every item of the results table for one run, by account (gzip attributes left as bytes). */
export async function resultsOf(
  admin: AdminAccess,
  runId: string,
): Promise<Map<string, Record<string, unknown>>> {
  const dynamodb = new DynamoDBClient({
    endpoint: admin.endpoint,
    region: admin.region,
    credentials: admin.credentials,
  });
  const found = new Map<string, Record<string, unknown>>();
  try {
    const pages = paginateQuery(
      { client: dynamodb },
      {
        TableName: ORGANIZATION_AUDIT_RESOURCES.resultsTable,
        KeyConditionExpression: '#run = :run',
        ExpressionAttributeNames: { '#run': COL.partitionKey },
        ExpressionAttributeValues: { ':run': { S: runId } },
      },
    );
    for await (const page of pages)
      for (const item of page.Items ?? []) found.set(item[COL.sortKey]?.S ?? '', item);
    return found;
  } finally {
    dynamodb.destroy();
  }
}

/** The names of the executions the audit started in the (stand-in) rotation state machine. */
export async function rotationExecutions(admin: AdminAccess, stateMachineArn: string): Promise<string[]> {
  const sfn = new SFNClient({
    endpoint: admin.endpoint,
    region: admin.region,
    credentials: admin.credentials,
  });
  const names: string[] = [];
  try {
    let nextToken: string | undefined;
    do {
      const out = await sfn.send(new ListExecutionsCommand({ stateMachineArn, nextToken }));
      names.push(...(out.executions ?? []).map((e) => e.name ?? ''));
      nextToken = out.nextToken;
    } while (nextToken);
    return names;
  } finally {
    sfn.destroy();
  }
}
