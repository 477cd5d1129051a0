/**
 * The organization audit in the template (infra/constructs/organization-audit.ts): the state
 * machine's shape as the local runner extracts it (asl-validator included) and as it runs in the
 * local engine with stand-in Tasks, the results table, each new grant exactly, the schedule's
 * target with and without organization, and the bound on the execution history.
 */
import aslValidator from 'asl-validator';
import { describe, expect, it } from 'vitest';
import {
  type CfnTemplate,
  extractDefinition,
  extractOrganizationAuditDefinition,
  type State,
} from '../../cli/definition.ts';
import { type JsonValue, runRotation } from '../../cli/local-runner.ts';
import { LAMBDA_METADATA_KEY } from '../../contract/functions.ts';
import { ORGANIZATION_AUDIT_STATE as STATE, TRANSIENT_ERRORS } from '../../contract/states.ts';
import { ACCOUNT_AUDIT_MAX_ATTEMPTS } from '../../infra/constructs/organization-audit.ts';
import { auditIds, logicalIdOf } from './audit-helpers.ts';
import {
  ACCOUNT,
  allow,
  logicalIds,
  PARTITION,
  REGION,
  type Resources,
  roleIdOf,
  rolePermissions,
  synth,
} from './helpers.ts';

const ORGANIZATION_ID = 'o-exampleorg1';
const organization = (extra: Record<string, unknown> = {}) => ({
  organization: {
    organizationId: ORGANIZATION_ID,
    stackSetTargets: ['r-ab12'],
    stackSetRegions: [REGION],
    ...extra,
  },
});
/** Scope rules by OU: the listing walks the tree from the root. */
const BY_OU = { include: { organizationalUnits: ['ou-ab12-cdefgh34'] } };

/** The placeholder ARN cli/definition.ts gives a standalone Lambda. */
const placeholderArn = (name: string) => `arn:aws:lambda:us-east-1:123456789012:function:${name}`;

function organizationAudit(raw: Record<string, unknown> = organization()) {
  const synthesized = synth(raw);
  const { stack, template } = synthesized;
  const org = stack.organizationAudit;
  if (!org) throw new Error('no organization audit in this stack');
  const ids = {
    machine: logicalIdOf(stack, org.stateMachine),
    machineRole: logicalIdOf(stack, org.stateMachine.role),
    table: logicalIdOf(stack, org.resultsTable),
    accountsFunction: logicalIdOf(stack, org.accounts.lambdaFunction),
    accountsRole: logicalIdOf(stack, org.accounts.role),
    accountsLogGroup: logicalIdOf(stack, org.accounts.logGroup),
    ...auditIds(stack),
  };
  const loaded = extractOrganizationAuditDefinition(template.toJSON() as CfnTemplate);
  return { ...synthesized, ids, ...loaded };
}

/** A function's environment variables. */
const variablesOf = (resources: Resources, id: string): Record<string, unknown> =>
  (resources[id]?.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)
    ?.Variables ?? {};

type Asl = { StartAt: string; States: Record<string, State & Record<string, unknown>> };
const stateOf = (definition: unknown, name: string) => {
  const states = (definition as Asl).States;
  const map = states[STATE.auditEachAccount] as unknown as { ItemProcessor: Asl };
  const state = states[name] ?? map.ItemProcessor.States[name];
  if (!state) throw new Error(`no state ${name}`);
  return state as Record<string, unknown>;
};

describe('the organization audit state machine', () => {
  it('lists, audits each account in an inline Map, then sends one digest, every state with a comment', () => {
    const { definition, bindings } = organizationAudit();
    expect(definition.StartAt).toBe(STATE.areAccountsNamed);
    const names: string[] = [];
    const walk = (states: Asl['States']) => {
      for (const [name, state] of Object.entries(states)) {
        names.push(name);
        expect(state.Comment, name).toMatch(/\S{3}/);
        if (state.Type === 'Map') walk((state as unknown as { ItemProcessor: Asl }).ItemProcessor.States);
      }
    };
    walk((definition as unknown as Asl).States);
    expect(names.sort()).toEqual(Object.values(STATE).sort());
    expect(bindings).toEqual({
      [STATE.listAccounts]: 'organization-accounts',
      [STATE.auditOneAccount]: 'audit',
      [STATE.sendDigest]: 'audit',
    });
    expect((definition as { QueryLanguage?: string }).QueryLanguage ?? 'JSONPath').toBe('JSONPath');
  });

  it('passes asl-validator with its ARN and path checks', () => {
    const { definition } = organizationAudit();
    const result = aslValidator(structuredClone(definition), { checkArn: true, checkPaths: true });
    expect(result.isValid, result.errorsText('\n')).toBe(true);
  });

  it('maps over the listed accounts with the run, the account and the dry-run flag, auditConcurrency at a time, discarding the results', () => {
    for (const [auditConcurrency, raw] of [
      [10, organization()],
      [3, organization({ auditConcurrency: 3 })],
    ] as const) {
      const map = stateOf(organizationAudit(raw).definition, STATE.auditEachAccount);
      expect(map).toMatchObject({
        Type: 'Map',
        ItemsPath: '$.listing.accounts',
        ItemSelector: {
          mode: 'account',
          'runId.$': '$$.Execution.Name',
          'accountId.$': '$$.Map.Item.Value.accountId',
          'dryRun.$': '$.request.dryRun',
        },
        MaxConcurrency: auditConcurrency,
        ResultPath: null,
        Next: STATE.sendDigest,
        ItemProcessor: { ProcessorConfig: { Mode: 'INLINE' }, StartAt: STATE.auditOneAccount },
      });
    }
  });

  it("retries one account's transient errors, then catches every error into a Pass that ends the iteration", () => {
    const { definition } = organizationAudit();
    const task = stateOf(definition, STATE.auditOneAccount);
    expect(task).toMatchObject({ Type: 'Task', Resource: placeholderArn('audit'), End: true });
    expect(task.Retry).toEqual([
      {
        ErrorEquals: [...TRANSIENT_ERRORS],
        IntervalSeconds: 2,
        BackoffRate: 2,
        MaxAttempts: ACCOUNT_AUDIT_MAX_ATTEMPTS,
        MaxDelaySeconds: 60,
        JitterStrategy: 'FULL',
      },
    ]);
    expect(task.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: null, Next: STATE.leaveFailureToDigest },
    ]);
    expect(stateOf(definition, STATE.leaveFailureToDigest)).toMatchObject({ Type: 'Pass', End: true });
  });

  it('sends the digest over every listed account id, the run and the dry-run flag', () => {
    const digest = stateOf(organizationAudit().definition, STATE.sendDigest);
    expect(digest).toMatchObject({
      Type: 'Task',
      Resource: placeholderArn('audit'),
      Parameters: {
        mode: 'aggregate',
        'runId.$': '$$.Execution.Name',
        'accountIds.$': '$.listing.accounts[*].accountId',
        'dryRun.$': '$.request.dryRun',
      },
      End: true,
    });
    expect(digest.ResultPath).toBeUndefined();
    expect((digest.Retry as { MaxAttempts: number }[])[0]?.MaxAttempts).toBe(6);
  });

  it('is a Standard state machine with tracing, logs without execution data, and a timeout under a day', () => {
    const { resources, ids } = organizationAudit();
    const props = resources[ids.machine]?.Properties ?? {};
    expect(props.StateMachineType).toBe('STANDARD');
    expect(props.TracingConfiguration).toEqual({ Enabled: true });
    expect(props.LoggingConfiguration).toMatchObject({ Level: 'ALL', IncludeExecutionData: false });
    const timeout = JSON.parse(JSON.stringify(organizationAudit().definition)).TimeoutSeconds;
    expect(timeout).toBeGreaterThan(3600);
    expect(timeout).toBeLessThan(86_400);
  });

  it('leaves the rotation to extractDefinition: the template now holds two state machines', () => {
    const { template, resources } = organizationAudit();
    expect(logicalIds(resources, 'AWS::StepFunctions::StateMachine')).toHaveLength(2);
    const rotation = extractDefinition(template.toJSON() as CfnTemplate);
    expect(Object.values(rotation.bindings)).toContain('plan');
  });
});

/** Runs the definition in the local engine; every Task is a stand-in recording its input. */
async function run(input: JsonValue, fail: readonly string[] = []) {
  const { definition, bindings } = organizationAudit();
  const calls: { state: string; input: JsonValue }[] = [];
  const accounts = [ACCOUNT, '111122223333', '444455556666'];
  const handlers = {
    [STATE.listAccounts]: (event: JsonValue) => {
      calls.push({ state: STATE.listAccounts, input: event });
      const named = (event as { accounts?: string[] }).accounts;
      return { accounts: (named ?? accounts).map((accountId) => ({ accountId })), skipped: 0 };
    },
    [STATE.auditOneAccount]: (event: JsonValue) => {
      calls.push({ state: STATE.auditOneAccount, input: event });
      const { accountId } = event as { accountId: string };
      if (fail.includes(accountId)) {
        const error = new Error(`the member role of ${accountId} is missing`);
        error.name = 'MemberRoleUnavailable';
        throw error;
      }
      return { accountId, usersScanned: 2, findings: 1, rotationsStarted: 0 };
    },
    [STATE.sendDigest]: (event: JsonValue) => {
      calls.push({ state: STATE.sendDigest, input: event });
      const ids = (event as { accountIds: string[] }).accountIds;
      return { accounts: ids.length, audited: ids.length - fail.length, failed: fail.length, findings: 3 };
    },
  };
  const result = await runRotation({
    input,
    definition,
    bindings,
    handlers,
    executionName: 'org-audit-test',
    retryIntervalMs: 0,
  });
  return { result, calls, of: (state: string) => calls.filter((c) => c.state === state).map((c) => c.input) };
}

describe('the organization audit in the local engine', () => {
  it('runs {} (the schedule): every account, dryRun false, one digest whose totals are the output', async () => {
    const { result, of } = await run({});
    expect(result.status).toBe('SUCCEEDED');
    expect(of(STATE.listAccounts)).toEqual([{}]);
    expect(of(STATE.auditOneAccount)).toEqual(
      [ACCOUNT, '111122223333', '444455556666'].map((accountId) => ({
        mode: 'account',
        runId: 'org-audit-test',
        accountId,
        dryRun: false,
      })),
    );
    expect(of(STATE.sendDigest)).toEqual([
      {
        mode: 'aggregate',
        runId: 'org-audit-test',
        accountIds: [ACCOUNT, '111122223333', '444455556666'],
        dryRun: false,
      },
    ]);
    expect(result.output).toEqual({ accounts: 3, audited: 3, failed: 0, findings: 3 });
  });

  it('passes dryRun and the named accounts on', async () => {
    const { result, of } = await run({ dryRun: true, accounts: ['111122223333'] });
    expect(result.status).toBe('SUCCEEDED');
    expect(of(STATE.listAccounts)).toEqual([{ accounts: ['111122223333'] }]);
    expect(of(STATE.auditOneAccount)).toEqual([
      { mode: 'account', runId: 'org-audit-test', accountId: '111122223333', dryRun: true },
    ]);
    expect(of(STATE.sendDigest)).toMatchObject([{ accountIds: ['111122223333'], dryRun: true }]);
  });

  it("goes on past one account's failure, and the digest still covers every account", async () => {
    const { result, of } = await run({}, ['111122223333']);
    expect(result.status).toBe('SUCCEEDED');
    // Not transient: tried once, then caught.
    expect(
      of(STATE.auditOneAccount).filter((e) => (e as { accountId: string }).accountId === '111122223333'),
    ).toHaveLength(1);
    expect(of(STATE.auditOneAccount)).toHaveLength(3);
    expect(of(STATE.sendDigest)).toMatchObject([{ accountIds: [ACCOUNT, '111122223333', '444455556666'] }]);
  });

  it('ends without a digest when the listing returns no account', async () => {
    // The real listing refuses an empty `accounts`; this stand-in returns what it is given.
    const { result, of } = await run({ accounts: [] });
    expect(result.status).toBe('SUCCEEDED');
    expect(result.lastState).toBe(STATE.nothingToAudit);
    expect(of(STATE.auditOneAccount)).toEqual([]);
    expect(of(STATE.sendDigest)).toEqual([]);
  });
});

/**
 * Events a Task adds to the history: entered and exited, plus scheduled, started and failed or
 * succeeded per attempt (a Lambda task; a failed start is two, fewer).
 */
function worstTaskEvents(state: Record<string, unknown>): number {
  const retries = ((state.Retry as { MaxAttempts?: number }[] | undefined) ?? []).reduce(
    (sum, r) => sum + (r.MaxAttempts ?? 3),
    0,
  );
  return 2 + 3 * (1 + retries);
}

/** The most events one iteration of the Map can add, from its definition: the longest path. */
function worstIterationEvents(processor: Asl): number {
  const worstFrom = (name: string, seen: ReadonlySet<string>): number => {
    if (seen.has(name)) throw new Error(`a loop through ${name}`);
    const state = processor.States[name] as Record<string, unknown>;
    const own = state.Type === 'Task' ? worstTaskEvents(state) : 2;
    const nexts = [
      ...(typeof state.Next === 'string' ? [state.Next] : []),
      ...((state.Catch as { Next: string }[] | undefined) ?? []).map((c) => c.Next),
    ];
    const next = new Set([...seen, name]);
    return own + Math.max(0, ...nexts.map((n) => worstFrom(n, next)));
  };
  // MapIterationStarted and MapIterationSucceeded (or Failed).
  return 2 + worstFrom(processor.StartAt, new Set());
}

describe('the execution history bound', () => {
  it('stays under 25,000 events for 1,000 accounts, even when every account fails after every attempt', () => {
    const { definition } = organizationAudit();
    const states = (definition as unknown as Asl).States;
    const map = states[STATE.auditEachAccount] as unknown as { ItemProcessor: Asl };
    const perIteration = worstIterationEvents(map.ItemProcessor);
    // Entered/started/exited of the Map and the states outside it, the listing's and digest's
    // retries at worst, the execution's start and end.
    const outside = Object.entries(states)
      .filter(([name]) => name !== STATE.auditEachAccount)
      .reduce((sum, [, state]) => sum + (state.Type === 'Task' ? worstTaskEvents(state) : 2), 4 + 2);
    const total = 1000 * perIteration + outside;
    console.info(
      `organization audit history, worst case: ${perIteration} events per account, ${total} for 1,000 accounts`,
    );
    expect(perIteration).toBe(2 + worstTaskEvents(stateOf(definition, STATE.auditOneAccount)) + 2);
    expect(total).toBeLessThan(25_000);
  });

  it('would not with the rotation steps’ six attempts (the bound is what sets ACCOUNT_AUDIT_MAX_ATTEMPTS)', () => {
    const processor: Asl = {
      StartAt: 'T',
      States: {
        T: {
          Type: 'Task',
          Resource: 'x',
          Retry: [{ ErrorEquals: ['X'], MaxAttempts: 6 }],
          Catch: [{ ErrorEquals: ['States.ALL'], Next: 'P' }],
          End: true,
        },
        P: { Type: 'Pass', End: true },
      } as unknown as Asl['States'],
    };
    expect(1000 * worstIterationEvents(processor)).toBeGreaterThan(25_000);
  });
});

describe('the results table', () => {
  it('is keyed by run and account, pay per request, expires items on expiresAt, with PITR and SSE', () => {
    const { resources, ids } = organizationAudit();
    expect(resources[ids.table]?.Properties).toEqual({
      KeySchema: [
        { AttributeName: 'runId', KeyType: 'HASH' },
        { AttributeName: 'accountId', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'runId', AttributeType: 'S' },
        { AttributeName: 'accountId', AttributeType: 'S' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
    });
  });

  it("is named in the audit's environment with organization, and nowhere without", () => {
    const { resources, ids } = organizationAudit();
    const variables = variablesOf(resources, ids.function);
    expect(variables.REKEY_ORGANIZATION_RESULTS_TABLE).toEqual({ Ref: ids.table });
    const plain = synth({});
    expect(variablesOf(plain.resources, auditIds(plain.stack).function)).not.toHaveProperty(
      'REKEY_ORGANIZATION_RESULTS_TABLE',
    );
  });

  it('only the audit role can touch it: PutItem and Query, nothing else', () => {
    const { resources, ids } = organizationAudit();
    const onTable = logicalIds(resources, 'AWS::IAM::Role').flatMap((role) =>
      rolePermissions(resources, role)
        .filter((p) => p.includes(ids.table))
        .map((p) => `${role}: ${p}`),
    );
    expect(onTable.sort()).toEqual(
      allow(['dynamodb:PutItem', 'dynamodb:Query'], [`${ids.table}.Arn`]).map((p) => `${ids.role}: ${p}`),
    );
  });
});

describe('the grants', () => {
  /** The audit role with organization is the plain one plus its member role and the table. */
  it('the audit role gains exactly sts:AssumeRole on its member role and the two table actions', () => {
    for (const extra of [{}, { securityHub: true, deactivateUnused: true }]) {
      const plain = synth(extra);
      const { resources, ids } = organizationAudit({ ...extra, ...organization() });
      const before = rolePermissions(plain.resources, auditIds(plain.stack).role);
      const after = rolePermissions(resources, ids.role);
      expect(before.filter((p) => !after.includes(p))).toEqual([]);
      expect(after.filter((p) => !before.includes(p))).toEqual(
        [
          ...allow(['dynamodb:PutItem', 'dynamodb:Query'], [`${ids.table}.Arn`]),
          ...allow(['sts:AssumeRole'], [`arn:${PARTITION}:iam::*:role/rekey-member-audit`], {
            StringEquals: { 'aws:ResourceOrgID': ORGANIZATION_ID },
          }),
        ].sort(),
      );
    }
  });

  it('reserves one concurrent audit per account the Map audits at once (one without organization)', () => {
    const { resources, ids } = organizationAudit(organization({ auditConcurrency: 7 }));
    expect(resources[ids.function]?.Properties?.ReservedConcurrentExecutions).toBe(7);
    const plain = synth({});
    expect(plain.resources[auditIds(plain.stack).function]?.Properties?.ReservedConcurrentExecutions).toBe(1);
  });

  const baseline = (ids: { accountsLogGroup: string }) => [
    ...allow(['logs:CreateLogStream', 'logs:PutLogEvents'], [`${ids.accountsLogGroup}.Arn`]),
    ...allow(['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], ['*']),
  ];

  it('the listing without OU rules: DescribeOrganization and ListAccounts, nothing else', () => {
    const { resources, ids } = organizationAudit();
    expect(rolePermissions(resources, ids.accountsRole)).toEqual(
      [
        ...baseline(ids),
        ...allow(['organizations:DescribeOrganization', 'organizations:ListAccounts'], ['*']),
      ].sort(),
    );
  });

  it('the listing with OU rules: the walk from the root, on the roots and OUs of this organization only', () => {
    for (const scope of [BY_OU, { exclude: { organizationalUnits: ['ou-ab12-cdefgh34'] } }]) {
      const { resources, ids } = organizationAudit(organization(scope));
      expect(rolePermissions(resources, ids.accountsRole)).toEqual(
        [
          ...baseline(ids),
          ...allow(['organizations:DescribeOrganization', 'organizations:ListRoots'], ['*']),
          ...allow(
            ['organizations:ListAccountsForParent', 'organizations:ListOrganizationalUnitsForParent'],
            [
              `arn:${PARTITION}:organizations::*:root/${ORGANIZATION_ID}/*`,
              `arn:${PARTITION}:organizations::*:ou/${ORGANIZATION_ID}/*`,
            ],
          ),
        ].sort(),
      );
    }
  });

  it("the listing's function: its registry environment, no reserved concurrency, the rekey:lambda metadata", () => {
    const { resources, ids } = organizationAudit(organization(BY_OU));
    const fn = resources[ids.accountsFunction];
    expect(fn?.Metadata?.[LAMBDA_METADATA_KEY]).toBe('organization-accounts');
    expect(fn?.Metadata).not.toHaveProperty('rekey:handler');
    expect(roleIdOf(fn as never)).toBe(ids.accountsRole);
    expect(variablesOf(resources, ids.accountsFunction)).toEqual({
      REKEY_HUB_ACCOUNT_ID: { Ref: 'AWS::AccountId' },
      REKEY_ORGANIZATION_ID: ORGANIZATION_ID,
      REKEY_ORGANIZATION_SCOPE: JSON.stringify({
        include: { accounts: [], organizationalUnits: ['ou-ab12-cdefgh34'] },
        exclude: { accounts: [], organizationalUnits: [] },
      }),
      POWERTOOLS_SERVICE_NAME: 'rekey',
    });
    expect(fn?.Properties).not.toHaveProperty('ReservedConcurrentExecutions');
  });

  it('the state machine role invokes the listing and the audit (and their versions), nothing else', () => {
    const { resources, ids } = organizationAudit();
    const invokes = [ids.accountsFunction, ids.function].flatMap((fn) =>
      allow(['lambda:InvokeFunction'], [`${fn}.Arn`, `${fn}.Arn:*`]),
    );
    const own = rolePermissions(resources, ids.machineRole);
    expect(own.filter((p) => p.includes('lambda:')).sort()).toEqual(invokes.sort());
    expect(own.filter((p) => !p.includes('lambda:') && !/ (logs|xray):\S+ \*$/.test(p))).toEqual([]);
  });
});

describe('the schedule', () => {
  it('starts the organization audit with {} when organization is set', () => {
    const { resources, ids } = organizationAudit();
    expect(resources[ids.schedule]?.Properties?.Target).toEqual({
      Arn: { Ref: ids.machine },
      RoleArn: { 'Fn::GetAtt': [ids.schedulerRole, 'Arn'] },
      Input: '{}',
      RetryPolicy: { MaximumRetryAttempts: 5, MaximumEventAgeInSeconds: 3600 },
      DeadLetterConfig: { Arn: { 'Fn::GetAtt': [ids.queue, 'Arn'] } },
    });
    expect(rolePermissions(resources, ids.schedulerRole)).toEqual(
      [
        ...allow(['states:StartExecution'], [ids.machine]),
        ...allow(['sqs:SendMessage'], [`${ids.queue}.Arn`]),
      ].sort(),
    );
  });

  it('invokes the audit function without organization, and the template has no organization audit', () => {
    const { resources, stack } = synth({});
    const ids = auditIds(stack);
    expect(stack.organizationAudit).toBeUndefined();
    expect((resources[ids.schedule]?.Properties?.Target as { Arn?: unknown } | undefined)?.Arn).toEqual({
      'Fn::GetAtt': [ids.function, 'Arn'],
    });
    expect(logicalIds(resources, 'AWS::StepFunctions::StateMachine')).toHaveLength(1);
    expect(logicalIds(resources, 'AWS::DynamoDB::Table')).toHaveLength(2);
    expect(
      Object.values(resources as Resources).filter(
        (r) => r.Metadata?.[LAMBDA_METADATA_KEY] === 'organization-accounts',
      ),
    ).toEqual([]);
  });

  it('outputs the state machine ARN with organization', () => {
    const { template, ids } = organizationAudit();
    expect(template.toJSON().Outputs.OrganizationAuditStateMachineArn).toMatchObject({
      Value: { Ref: ids.machine },
    });
    expect(synth({}).template.toJSON().Outputs).not.toHaveProperty('OrganizationAuditStateMachineArn');
  });
});

describe('extractOrganizationAuditDefinition guard', () => {
  it('refuses a Task whose function has no rekey:lambda metadata', () => {
    const { template, ids } = organizationAudit();
    const json = structuredClone(template.toJSON()) as CfnTemplate;
    const fn = json.Resources?.[ids.accountsFunction];
    if (fn?.Metadata) delete fn.Metadata[LAMBDA_METADATA_KEY];
    expect(() => extractOrganizationAuditDefinition(json)).toThrow(
      /Task "List the accounts in scope" has no local binding/,
    );
  });

  it('refuses a template without the organization audit', () => {
    expect(() => extractOrganizationAuditDefinition(synth({}).template.toJSON() as CfnTemplate)).toThrow(
      /exactly one AWS::StepFunctions::StateMachine with rekey:state-machine "organization-audit" .* found 0/,
    );
  });
});
