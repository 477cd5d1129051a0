import { type CfnResource, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { FUNCTIONS } from '../../contract/functions.ts';
import {
  ORGANIZATION_AUDIT_MACHINE,
  ORGANIZATION_AUDIT_STATE as STATE,
  STATE_MACHINE_METADATA_KEY,
} from '../../contract/states.ts';
import { ORGANIZATION_RESULTS } from '../../contract/tables.ts';
import { type OrganizationConfig, organizationEnvironment, type RekeyConfig } from '../config.ts';
import { RekeyFunction } from './rekey-function.ts';
import { TRANSIENT_ERRORS_RETRY } from './rotation-state-machine.ts';

/**
 * How often one account's audit is tried on a transient error: the rotation's retry (same errors,
 * backoff and jitter) with fewer attempts. Each attempt adds three events to the execution history
 * (scheduled, started, failed), and an inline Map's iterations all count against the execution's
 * 25,000 events: with 4, a thousand accounts that all fail after every attempt still fit
 * (test/infra/organization-audit.test.ts computes the worst case from the definition).
 */
export const ACCOUNT_AUDIT_MAX_ATTEMPTS = 4;

/**
 * Longer than any run should take (a thousand accounts at ten at a time, each audit a minute or
 * two), short enough that a run stuck on one account ends before the next day's run.
 */
export const ORGANIZATION_AUDIT_TIMEOUT = Duration.hours(23);

/**
 * The listing pages through every account (and, with OU rules, every OU) of the organization, 20
 * accounts a page; Organizations throttles its API low, and the SDK's retries wait it out.
 */
const ACCOUNTS_TIMEOUT = Duration.minutes(5);

export interface OrganizationAuditProps {
  /**
   * The validated deployment configuration; its `organization` is required.
   * @default - required
   */
  readonly config: RekeyConfig;
  /**
   * The KMS key that encrypts the log groups (the listing's and the state machine's).
   * @default - encrypted by CloudWatch Logs with a key AWS owns
   */
  readonly logsKey?: kms.IKey;
}

/**
 * The organization audit (docs/organizations.md, "The organization audit"): the
 * `organization-accounts` Lambda lists the accounts in scope, an inline Map runs the audit Lambda
 * once per account (each writes its result to the results table), and one more audit invocation
 * reads every result back and sends one digest. A Standard, JSONPath-only state machine whose
 * Tasks all invoke Lambdas directly, as the rotation's (the local engine runs it as it deploys).
 *
 * Built in two steps: the table and the listing first (the audit's environment names the table),
 * then the state machine around the audit function (`auditWith`), which its Tasks invoke.
 */
export class OrganizationAudit extends Construct {
  /** One item per run and account (contract/tables.ts ORGANIZATION_RESULTS). */
  readonly resultsTable: dynamodb.Table;
  /** The `organization-accounts` Lambda. */
  readonly accounts: RekeyFunction;
  /** The listing's own permissions: Organizations reads, nothing else. */
  readonly accountsPermissions: iam.Policy;
  private built: { stateMachine: sfn.StateMachine; logGroup: logs.LogGroup } | undefined;
  private readonly props: OrganizationAuditProps;
  private readonly organization: OrganizationConfig;

  constructor(scope: Construct, id: string, props: OrganizationAuditProps) {
    super(scope, id);
    const { config } = props;
    const organization = config.organization;
    if (!organization) throw new Error(`${id}: the organization audit needs the organization setting`);
    this.props = props;
    this.organization = organization;
    const stack = Stack.of(this);

    // Written by each account's audit, read back by the digest, gone after 30 days (TTL). Point-in-
    // time recovery as the lock table; the digest is the record that matters, so no backup plan.
    this.resultsTable = new dynamodb.Table(this, 'Results', {
      partitionKey: { name: ORGANIZATION_RESULTS.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: ORGANIZATION_RESULTS.sortKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: ORGANIZATION_RESULTS.ttl,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      // It means something only while the audit that writes and reads it exists.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    Validations.of(this.resultsTable).acknowledge({
      id: 'NIST.800.53.R5-DynamoDBInBackupPlan',
      reason:
        "the table holds each run's per-account results for the digest that run sends, and expires them after 30 days; the digest (SNS) is the record, and point-in-time recovery already covers a mistaken write or deletion",
    });

    const listed: readonly string[] = FUNCTIONS['organization-accounts'].env;
    const environment = Object.fromEntries(
      Object.entries(organizationEnvironment(config, stack.account)).filter(
        (entry): entry is [string, string] => listed.includes(entry[0]) && entry[1] !== undefined,
      ),
    );
    this.accounts = new RekeyFunction(this, 'Accounts', {
      name: 'organization-accounts',
      environment,
      config,
      timeout: ACCOUNTS_TIMEOUT,
      ...(props.logsKey ? { logsKey: props.logsKey } : {}),
    });
    Validations.of(this.accounts.lambdaFunction).acknowledge({
      id: 'NIST.800.53.R5-LambdaDLQ',
      reason:
        'invoked synchronously by the organization audit state machine only, which retries transient errors and fails the execution with any other; a DLQ only receives failed asynchronous invocations',
    });

    this.accountsPermissions = new iam.Policy(this, 'AccountsPermissions', {
      roles: [this.accounts.role],
      statements: this.accountsStatements(),
    });
    this.acknowledgeAccountsWildcards();
  }

  /** The state machine; built by `auditWith`. */
  get stateMachine(): sfn.StateMachine {
    if (!this.built) throw new Error(`${this.node.path}: auditWith(auditFunction) has not been called`);
    return this.built.stateMachine;
  }

  /** The state machine's execution log group; built by `auditWith`. */
  get logGroup(): logs.LogGroup {
    if (!this.built) throw new Error(`${this.node.path}: auditWith(auditFunction) has not been called`);
    return this.built.logGroup;
  }

  /**
   * Builds the state machine, whose audit Tasks invoke `auditFunction` (the audit Lambda, which
   * reads and writes `resultsTable`: infra/constructs/audit.ts grants it). Once.
   */
  auditWith(auditFunction: lambda.IFunction): sfn.StateMachine {
    if (this.built) throw new Error(`${this.node.path}: the state machine is already built`);
    const { config } = this.props;

    const invoke = (
      name: string,
      fn: lambda.IFunction,
      comment: string,
      options: Pick<tasks.LambdaInvokeProps, 'inputPath' | 'payload' | 'resultPath' | 'resultSelector'>,
    ) =>
      new tasks.LambdaInvoke(this, name, {
        stateName: name,
        comment,
        lambdaFunction: fn,
        // Resource = the function ARN: the payload is the event, the return value the result.
        payloadResponseOnly: true,
        // Replaced by the retries below, which cover the same Lambda errors and more.
        retryOnServiceExceptions: false,
        ...options,
      });

    // 1. The request: `accounts` (optional) narrows the listing, `dryRun` (optional, false) goes
    // to every audit. A missing field would break any JSONPath that names it, so both are read
    // once here: the listing gets `{accounts}` or `{}`, the audits `$.request.dryRun`, always set.
    const defaults = { dryRun: false };
    const takeNamedAccounts = new sfn.Pass(this, STATE.takeNamedAccounts, {
      stateName: STATE.takeNamedAccounts,
      comment: 'Audit only the accounts the request names (each must be in scope).',
      parameters: {
        defaults,
        input: sfn.JsonPath.entirePayload,
        listingRequest: { accounts: sfn.JsonPath.listAt('$.accounts') },
      },
    });
    const takeEveryAccount = new sfn.Pass(this, STATE.takeEveryAccount, {
      stateName: STATE.takeEveryAccount,
      comment: 'Audit every active account in the configured scope.',
      parameters: { defaults, input: sfn.JsonPath.entirePayload, listingRequest: {} },
    });
    const areAccountsNamed = new sfn.Choice(this, STATE.areAccountsNamed, {
      stateName: STATE.areAccountsNamed,
      comment: 'A request may name the accounts to audit; the schedule names none.',
    })
      .when(sfn.Condition.isPresent('$.accounts'), takeNamedAccounts)
      .otherwise(takeEveryAccount);
    const applyDefaults = new sfn.Pass(this, STATE.applyDefaults, {
      stateName: STATE.applyDefaults,
      comment: 'The request over its defaults: dryRun is false unless the request says otherwise.',
      parameters: {
        request: sfn.JsonPath.jsonMerge(
          sfn.JsonPath.objectAt('$.defaults'),
          sfn.JsonPath.objectAt('$.input'),
        ),
        listingRequest: sfn.JsonPath.objectAt('$.listingRequest'),
      },
    });
    takeNamedAccounts.next(applyDefaults);
    takeEveryAccount.next(applyDefaults);

    // 2. The accounts in scope: ids only in the state (a thousand accounts are about 30 KB).
    const listAccounts = invoke(
      STATE.listAccounts,
      this.accounts.lambdaFunction,
      'List the active accounts in scope, the hub first (a named account out of scope refuses the run: AccountsNotInScope).',
      { inputPath: '$.listingRequest', resultPath: '$.listing' },
    );
    listAccounts.addRetry(TRANSIENT_ERRORS_RETRY);
    applyDefaults.next(listAccounts);

    // 3. One audit per account, at most auditConcurrency at a time. Each records its result (or
    // its failure) in the results table itself; nothing per account stays in the state.
    const auditOneAccount = invoke(
      STATE.auditOneAccount,
      auditFunction,
      'Audit this account through its member role; the result (or the failure) goes to the results table.',
      // The iteration's output is only this (the Map discards it): a thousand stay small.
      { resultSelector: { accountId: sfn.JsonPath.stringAt('$.accountId') } },
    );
    auditOneAccount.addRetry({ ...TRANSIENT_ERRORS_RETRY, maxAttempts: ACCOUNT_AUDIT_MAX_ATTEMPTS });
    const leaveFailureToDigest = new sfn.Pass(this, STATE.leaveFailureToDigest, {
      stateName: STATE.leaveFailureToDigest,
      comment:
        'This account failed (recorded in the results table, or missing from it): the other accounts go on, and the digest names it.',
      parameters: { accountId: sfn.JsonPath.stringAt('$.accountId') },
    });
    // The error itself (a cause may be long) is not carried: the table and the history have it.
    auditOneAccount.addCatch(leaveFailureToDigest, {
      errors: ['States.ALL'],
      resultPath: sfn.JsonPath.DISCARD,
    });
    const auditEachAccount = new sfn.Map(this, STATE.auditEachAccount, {
      stateName: STATE.auditEachAccount,
      comment: `Audit every listed account, ${this.organization.auditConcurrency} at a time; one account's failure does not stop the others.`,
      itemsPath: '$.listing.accounts',
      itemSelector: {
        mode: 'account',
        runId: sfn.JsonPath.executionName,
        accountId: sfn.JsonPath.stringAt('$$.Map.Item.Value.accountId'),
        dryRun: sfn.JsonPath.stringAt('$.request.dryRun'),
      },
      maxConcurrency: this.organization.auditConcurrency,
      resultPath: sfn.JsonPath.DISCARD,
    });
    auditEachAccount.itemProcessor(auditOneAccount);

    // 4. One digest over every account; it fails the execution, after sending, when an account
    // failed or left no result (OrganizationAuditIncomplete). A transient error is retried as the
    // rotation's are: a digest sent twice is better than none.
    const sendDigest = invoke(
      STATE.sendDigest,
      auditFunction,
      'Read every account result of this run and send one digest; fail naming the accounts that failed or left no result.',
      {
        payload: sfn.TaskInput.fromObject({
          mode: 'aggregate',
          runId: sfn.JsonPath.executionName,
          accountIds: sfn.JsonPath.listAt('$.listing.accounts[*].accountId'),
          dryRun: sfn.JsonPath.stringAt('$.request.dryRun'),
        }),
        // The totals become the execution's output (ASL's default ResultPath, left implicit).
      },
    );
    sendDigest.addRetry(TRANSIENT_ERRORS_RETRY);
    auditEachAccount.next(sendDigest);

    // `[*]` of an empty list matches nothing, which a JSONPath cannot take. The listing always
    // holds the hub and refuses an empty `accounts`; should it ever return none, the run ends here.
    const nothingToAudit = new sfn.Succeed(this, STATE.nothingToAudit, {
      stateName: STATE.nothingToAudit,
      comment: 'The listing returned no account: nothing was audited, no digest is sent.',
    });
    const isAnyAccountListed = new sfn.Choice(this, STATE.isAnyAccountListed, {
      stateName: STATE.isAnyAccountListed,
      comment: 'The listing always holds the hub; an empty one would leave the digest nothing to cover.',
    })
      .when(sfn.Condition.isPresent('$.listing.accounts[0]'), auditEachAccount)
      .otherwise(nothingToAudit);
    listAccounts.next(isAnyAccountListed);

    const stack = Stack.of(this);
    const logGroup = new logs.LogGroup(this, 'LogGroup', {
      // The vendedlogs prefix keeps Step Functions from growing the account's CloudWatch Logs
      // resource policy with one entry per log group (as the rotation's).
      logGroupName: `/aws/vendedlogs/states/${stack.stackName}-organization-audit`,
      retention: config.logRetentionDays as logs.RetentionDays,
      ...(this.props.logsKey ? { encryptionKey: this.props.logsKey } : {}),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineType: sfn.StateMachineType.STANDARD,
      comment:
        'rekey: audit every account of the organization in scope (one audit per account, at most ' +
        `${this.organization.auditConcurrency} at a time) and send one digest. Input: {} or ` +
        '{"dryRun": true}, plus "accounts": ["111122223333", ...] to audit only those.',
      definitionBody: sfn.DefinitionBody.fromChainable(areAccountsNamed),
      timeout: ORGANIZATION_AUDIT_TIMEOUT,
      tracingEnabled: true,
      logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });

    (stateMachine.node.defaultChild as sfn.CfnStateMachine).addMetadata(
      STATE_MACHINE_METADATA_KEY,
      ORGANIZATION_AUDIT_MACHINE,
    );

    const role = stateMachine.role;
    Validations.of(role).acknowledge({
      id: 'NIST.800.53.R5-IAMNoInlinePolicy',
      reason:
        "the policy CDK derives from the definition belongs to this role alone: inline, it lives and dies with the role and cannot be attached to another principal by mistake (IAM's guidance for a strict one-to-one relationship)",
    });
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'X-Ray tracing (xray:PutTraceSegments, ...) and log delivery (logs:CreateLogDelivery, ...) have no resource type',
    });
    for (const fn of [this.accounts.lambdaFunction, auditFunction]) {
      const logicalId = stack.getLogicalId(fn.node.defaultChild as CfnResource);
      Validations.of(role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${logicalId}.Arn>:*]`,
        reason: 'LambdaInvoke grants the function and its versions/aliases (<arn>:*); only these functions',
      });
    }
    this.built = { stateMachine, logGroup };
    return stateMachine;
  }

  /** Whether the scope has OU rules: then the listing walks the tree from the root. */
  private get walksTheTree(): boolean {
    const { include, exclude } = this.organization;
    return include.organizationalUnits.length > 0 || exclude.organizationalUnits.length > 0;
  }

  /**
   * Exactly the listing's calls (lambdas/organization-accounts/accounts.ts): DescribeOrganization
   * (which organization answers), then ListAccounts, or with OU rules ListRoots and, per root or
   * OU, ListAccountsForParent and ListOrganizationalUnitsForParent. In the hub only: Organizations
   * answers the management account or a delegated administrator, never a member role.
   */
  private accountsStatements(): iam.PolicyStatement[] {
    const allow = (actions: string[], resources: string[]) => new iam.PolicyStatement({ actions, resources });
    // The Service Authorization Reference lists no resource type for DescribeOrganization,
    // ListAccounts and ListRoots: '*' is the only resource IAM accepts for them.
    const statements = [allow(['organizations:DescribeOrganization'], ['*'])];
    if (!this.walksTheTree) {
      statements.push(allow(['organizations:ListAccounts'], ['*']));
      return statements;
    }
    // ListAccountsForParent and ListOrganizationalUnitsForParent authorize against the parent:
    // a root or an OU of this organization (their ARNs carry the management account, unknown here).
    const parents = ['root', 'ou'].map((type) => this.inOrganization(type));
    statements.push(
      allow(['organizations:ListRoots'], ['*']),
      allow(
        ['organizations:ListAccountsForParent', 'organizations:ListOrganizationalUnitsForParent'],
        parents,
      ),
    );
    return statements;
  }

  /** `arn:<partition>:organizations::*:<type>/<organization id>/*` */
  private inOrganization(type: string): string {
    return `arn:${Stack.of(this).partition}:organizations::*:${type}/${this.organization.organizationId}/*`;
  }

  /** The listing's wildcards, acknowledged with why they cannot be narrower. */
  private acknowledgeAccountsWildcards(): void {
    const acknowledge = (id: string, reason: string) =>
      Validations.of(this.accountsPermissions).acknowledge({ id: `AwsSolutions-IAM5[${id}]`, reason });
    acknowledge(
      'Resource::*',
      'organizations:DescribeOrganization, ListAccounts and ListRoots have no resource type in the Service Authorization Reference (organization-wide reads); every other action is scoped to this organization',
    );
    if (this.walksTheTree) {
      const organizationId = this.organization.organizationId;
      for (const [type, what] of [
        ['root', 'the root'],
        ['ou', 'every OU'],
      ] as const) {
        acknowledge(
          `Resource::arn:<AWS::Partition>:organizations::*:${type}/${organizationId}/*`,
          `the listing walks the tree from the root for the scope's OU rules: ListAccountsForParent and ListOrganizationalUnitsForParent on ${what} of ${organizationId} (the management account in the ARN is not known at deploy time)`,
        );
      }
    }
    Validations.of(this.accountsPermissions).acknowledge({
      id: 'NIST.800.53.R5-IAMNoInlinePolicy',
      reason:
        "the listing's permissions belong to its role alone: inline, they live and die with the role and cannot be attached to another principal by mistake",
    });
  }
}
