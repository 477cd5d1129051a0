import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import {
  FUNCTIONS,
  type FunctionName,
  functionFolder,
  HANDLER_METADATA_KEY,
  isStep,
  LAMBDA_METADATA_KEY,
  STEPS,
  type StepName,
} from '../../contract/functions.ts';
import { lambdaEnvironment, type RekeyConfig, type RekeyResources, stepTimeoutSeconds } from '../config.ts';

/** The repository root: handlers live in `<root>/lambdas/<functionFolder(name)>/index.ts`. */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * middy 7 and Powertools are ESM-first; an ESM bundle that still contains a CommonJS `require`
 * (transitive dependencies) needs one defined.
 */
const ESM_REQUIRE_BANNER =
  "import { createRequire } from 'module';const require = createRequire(import.meta.url);";

export interface RekeyFunctionProps {
  /**
   * What the function runs: its entry in the registry (contract/functions.ts). Its handler is
   * `lambdas/<functionFolder(name)>/index.ts` (export `handler`). A workflow step's environment is
   * exactly its registry `env`, and it carries the `rekey:handler` metadata. A standalone Lambda
   * carries no such metadata: the local runner must never bind a Task to it.
   * @default - required
   */
  readonly name: FunctionName;
  /**
   * A standalone Lambda's environment: only variables its registry entry lists.
   * @default - none; required for a standalone Lambda (a step's is derived from `resources`)
   */
  readonly environment?: Readonly<Record<string, string>>;
  /**
   * The validated deployment configuration (log retention, environment values).
   * @default - required
   */
  readonly config: RekeyConfig;
  /**
   * The deployed resources a workflow step's environment points at (a standalone Lambda brings
   * its environment with it).
   * @default - none; required for a workflow step
   */
  readonly resources?: RekeyResources;
  /**
   * Memory size in MB. The steps make a handful of AWS calls; 256 MB gives enough CPU for a
   * fast cold start of a bundled SDK.
   * @default 256
   */
  readonly memorySize?: number;
  /**
   * Function timeout of a standalone Lambda. A workflow step's is derived from its calls and the
   * clients' limits (infra/config.ts stepTimeoutSeconds) and cannot be set.
   * @default - a workflow step: stepTimeoutSeconds; a standalone Lambda: Duration.minutes(2)
   */
  readonly timeout?: Duration;
  /**
   * The KMS key that encrypts the function's log group.
   * @default - encrypted by CloudWatch Logs with a key AWS owns
   */
  readonly logsKey?: kms.IKey;
  /**
   * Concurrent executions reserved for (and capping) the function.
   * @default - none: the account's unreserved pool
   */
  readonly reservedConcurrentExecutions?: number;
  /**
   * Whether something also invokes the step asynchronously (the cleanup: an EventBridge rule).
   * Then its failures need a destination, which the caller configures and acknowledges.
   * @default false - only the state machine invokes it, synchronously
   */
  readonly invokedAsynchronously?: boolean;
}

/**
 * One rekey Lambda with every default in one place: Node.js 24 on arm64, ESM bundle with the
 * AWS SDK inside (the version we test is the version we run), JSON logs to its own log group
 * with retention, X-Ray, source maps, its own role, the `rekey:handler` metadata the local
 * runner uses to bind state-machine Tasks to handler modules (steps only), and the `rekey:lambda`
 * metadata naming its folder (every function), by which a local run finds each Lambda's role.
 */
export class RekeyFunction extends Construct {
  /** The workflow step, or undefined for a standalone Lambda. */
  readonly step: StepName | undefined;
  readonly lambdaFunction: NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: RekeyFunctionProps) {
    super(scope, id);
    const { name, config, resources } = props;
    const step = isStep(name) ? name : undefined;
    this.step = step;
    if (step && !resources) throw new Error(`${id}: the ${step} step needs resources`);
    if (step && props.timeout)
      throw new Error(`${id}: the ${step} step's timeout is derived from its calls, not set`);
    if (!step && !props.environment) throw new Error(`${id}: the ${name} Lambda needs its environment`);
    const environment =
      step && resources ? stepEnvironment(step, config, resources) : (props.environment ?? {});
    const listed: readonly string[] = FUNCTIONS[name].env;
    const unlisted = Object.keys(environment).filter((key) => !listed.includes(key));
    if (unlisted.length > 0)
      throw new Error(`${id}: ${unlisted.join(', ')} not in the ${name} entry of contract/functions.ts`);
    const handler = { name, description: FUNCTIONS[name].description, environment };

    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: config.logRetentionDays as logs.RetentionDays,
      ...(props.logsKey ? { encryptionKey: props.logsKey } : {}),
      // Rotation logs are audit evidence: keep them when the stack goes.
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // An explicit role instead of the default one: the default attaches
    // AWSLambdaBasicExecutionRole (logs:* on every log group); this one may write to its own.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `rekey ${handler.name}: ${handler.description}`,
    });
    this.logGroup.grantWrite(this.role);

    this.lambdaFunction = new NodejsFunction(this, 'Function', {
      entry: join(REPO_ROOT, 'lambdas', functionFolder(name), 'index.ts'),
      handler: 'handler',
      projectRoot: REPO_ROOT,
      depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
      description: handler.description,
      // Pinned, not NODEJS_LATEST: a runtime change should be a reviewed diff.
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 256,
      timeout: step
        ? Duration.seconds(stepTimeoutSeconds(step, config))
        : (props.timeout ?? Duration.minutes(2)),
      ...(props.reservedConcurrentExecutions === undefined
        ? {}
        : { reservedConcurrentExecutions: props.reservedConcurrentExecutions }),
      role: this.role,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      tracing: lambda.Tracing.ACTIVE,
      environment: {
        ...handler.environment,
        POWERTOOLS_SERVICE_NAME: 'rekey',
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: {
        forceDockerBundling: false,
        format: OutputFormat.ESM,
        target: 'node24',
        minify: true,
        sourceMap: true,
        mainFields: ['module', 'main'],
        banner: ESM_REQUIRE_BANNER,
        // Bundle the SDK v3 rather than use the runtime's copy: the clients we test and mock
        // are the ones that run, and a runtime SDK update cannot change behaviour under us.
        bundleAwsSDK: true,
        externalModules: [],
      },
    });

    const cfnFunction = this.lambdaFunction.node.defaultChild as lambda.CfnFunction;
    if (this.step) cfnFunction.addMetadata(HANDLER_METADATA_KEY, this.step);
    cfnFunction.addMetadata(LAMBDA_METADATA_KEY, handler.name);

    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing) have no resource type; ' +
        'so has cloudtrail:LookupEvents, granted to check-last-used only when cloudTrailLookup is on',
    });
    Validations.of(this.role).acknowledge({
      id: 'NIST.800.53.R5-IAMNoInlinePolicy',
      reason:
        "the policy belongs to this role alone: inline, it lives and dies with the role and cannot be attached to another principal by mistake (IAM's guidance for a strict one-to-one relationship)",
    });
    // A workflow step only: a standalone Lambda invoked asynchronously (the audit) needs a
    // destination for its failures and says so itself.
    if (this.step && !props.invokedAsynchronously)
      Validations.of(this.lambdaFunction).acknowledge({
        id: 'NIST.800.53.R5-LambdaDLQ',
        reason:
          'invoked synchronously by the state machine, which retries transient errors and catches every other one into the failure alert; a DLQ only receives failed asynchronous invocations',
      });
    if (props.reservedConcurrentExecutions === undefined)
      Validations.of(this.lambdaFunction).acknowledge({
        id: 'NIST.800.53.R5-LambdaConcurrency',
        reason:
          "reserved concurrency would come out of the account's unreserved pool (Lambda refuses a reservation that leaves it under 100, so the stack would not deploy in accounts with low quotas); rotations are bounded by the audit's maxRotationsPerRun and throttling raises the Throttles alarm",
      });
    Validations.of(this.lambdaFunction).acknowledge({
      id: 'NIST.800.53.R5-LambdaInsideVPC',
      reason:
        'the function calls only public AWS service APIs (IAM, STS, Secrets Manager, DynamoDB, SNS, EventBridge, Step Functions, Security Hub) over TLS with SigV4 and reaches nothing inside a VPC; a VPC would add a NAT gateway or an interface endpoint per service without narrowing what it can reach',
    });
  }
}

/** Exactly the variables the step declares in STEPS (an unset optional one is left out). */
export function stepEnvironment(
  step: StepName,
  config: RekeyConfig,
  resources: RekeyResources,
): Record<string, string> {
  const all: Record<string, string | undefined> = lambdaEnvironment(config, resources);
  const env: Record<string, string> = {};
  for (const key of STEPS[step].env) {
    const value = all[key];
    if (value !== undefined) env[key] = value;
  }
  return env;
}
