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
import { MEMBER_LAMBDAS } from '../../contract/organization.ts';
import type { OptInClient } from '../../lambdas/shared/opt-in.ts';
import { lambdaEnvironment, type RekeyConfig, type RekeyResources, stepTimeoutSeconds } from '../config.ts';

/** The repository root: handlers live in `<root>/lambdas/<functionFolder(name)>/index.ts`. */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * middy 7 and Powertools are ESM-first; an ESM bundle that still contains a CommonJS `require`
 * (transitive dependencies) needs one defined.
 */
const ESM_REQUIRE_BANNER =
  "import { createRequire } from 'module';const require = createRequire(import.meta.url);";

/**
 * Each function's description (the function's and its role's, in the template). Here rather than
 * in the registry (contract/functions.ts), which every handler bundles: only the stack reads them
 * (docs/performance.md, "Lambda bundles").
 */
export const FUNCTION_DESCRIPTIONS: Readonly<Record<FunctionName, string>> = {
  plan: 'Validates the request, checks the user and its keys, takes the user lock, decides',
  'create-second-key': 'Creates the new access key and stores it in Secrets Manager in one invocation',
  'verify-new-key': 'Proves the stored key authenticates as its user, then makes it AWSCURRENT',
  'check-last-used':
    'Checks whether the old key was used since it had to be quiet (the hand-out, or the last check that found use)',
  'deactivate-old-key': 'Re-checks the old key is quiet and the user still in scope, then deactivates it',
  'verify-rotation':
    'Checks the new key still works and the old key stayed inactive and unused since it had to be quiet, then deletes the old key',
  'reactivate-old-key': 'Rollback: reactivates the old access key',
  'delete-key':
    'Deletes the inactive extra key that was never used, the user still in scope, to free the second key slot',
  notify: 'Publishes a notification (SNS and EventBridge); terminal events release the user lock',
  cleanup:
    'After a failed, aborted or timed-out execution: removes the key it made and never handed out, releases its lock',
  audit: 'Audits access keys from the credential report: alerts, rotations, Security Hub',
  'organization-accounts': 'Lists the organization accounts in scope for the organization audit',
};

/**
 * Modules the deployed bundles replace (esbuild `--alias`), and with what. Only the bundles: the
 * local runner imports the handler sources, with the real modules (docs/performance.md).
 * - The SDK's default credential chain (SSO, INI, process, web identity, IMDS and the nested
 *   STS/SSO clients they build) becomes the environment's credentials, which are a Lambda's
 *   only ones; the bundle fails at cold start without them.
 * - The event-stream codec, which no operation rekey calls uses.
 * - DynamoDB's endpoint-discovery cache, which rekey never turns on.
 */
export const DEPLOYED_ALIASES: Readonly<Record<string, string>> = {
  '@aws-sdk/credential-provider-node': join(REPO_ROOT, 'lambdas/shared/deployed/credentials.ts'),
  '@smithy/core/event-streams': join(REPO_ROOT, 'lambdas/shared/deployed/no-event-streams.ts'),
  '@aws-sdk/endpoint-cache': join(REPO_ROOT, 'lambdas/shared/deployed/no-endpoint-discovery.ts'),
};

/**
 * Files inside the SDK, and of rekey's own, that the deployed bundles build from a stand-in (by
 * the end of their path; relative imports, which an alias cannot reach: deployed-bundle.mjs
 * swaps them). Each is code a Lambda never runs, and its stand-in fails by name should it ever
 * be reached.
 * - The pure-JavaScript SHA-256, the fallback for a runtime without Node's crypto.
 * - The adaptive retry mode (its strategy and rate limiter); rekey's clients retry in the standard mode.
 * - The region lookup in EC2 instance metadata; the Lambda runtime always sets AWS_REGION.
 * - The local runner's checks around each call (lambdas/shared/clients/emulator-calls.ts), which
 *   run only inside a local invocation context.
 */
export const DEPLOYED_STAND_INS: Readonly<Record<string, string>> = {
  '@smithy/core/dist-es/submodules/checksum/sha256/Sha256Js.js': join(
    REPO_ROOT,
    'lambdas/shared/deployed/no-js-sha256.ts',
  ),
  '@smithy/core/dist-es/submodules/retry/util-retry/AdaptiveRetryStrategy.js': join(
    REPO_ROOT,
    'lambdas/shared/deployed/no-adaptive-retry.ts',
  ),
  '@smithy/core/dist-es/submodules/config/config-resolver/regionConfig/getInstanceMetadataRegion.js': join(
    REPO_ROOT,
    'lambdas/shared/deployed/no-imds-region.ts',
  ),
  'lambdas/shared/clients/emulator-calls.ts': join(REPO_ROOT, 'lambdas/shared/deployed/no-emulator-calls.ts'),
};

/**
 * In a function's main bundle only: the SigV4a half of the multi-region signer (EventBridge's and
 * STS's clients) is left out; every endpoint rekey calls is regional and signs with SigV4. The
 * opt-in files keep the SDK's (S3's client builds its S3 Express signer on it).
 */
export const MAIN_BUNDLE_ALIASES: Readonly<Record<string, string>> = {
  '@aws-sdk/signature-v4-multi-region': join(REPO_ROOT, 'lambdas/shared/deployed/no-sigv4a.ts'),
};

/**
 * In a function's main bundle only: the opt-in clients' packages become stand-ins whose commands
 * the opt-in file turns into real ones (lambdas/shared/deployed/facade.ts).
 */
export const FACADE_ALIASES: Readonly<Record<string, string>> = {
  '@aws-sdk/client-cloudtrail': join(REPO_ROOT, 'lambdas/shared/deployed/cloudtrail-sdk.ts'),
  '@aws-sdk/client-securityhub': join(REPO_ROOT, 'lambdas/shared/deployed/security-hub-sdk.ts'),
  '@aws-sdk/client-s3': join(REPO_ROOT, 'lambdas/shared/deployed/s3-sdk.ts'),
};

/**
 * The opt-in clients each function loads only when a toggle is on (lambdas/shared/opt-in.ts),
 * each bundled from lambdas/shared/deployed/<client>.ts into a file of its own next to the
 * function's main bundle.
 */
export const OPT_IN_BUNDLES: Readonly<Partial<Record<FunctionName, readonly OptInClient[]>>> = {
  ...Object.fromEntries(MEMBER_LAMBDAS.map((name) => [name, ['member-sts']])),
  plan: ['member-sts', 'organizations'],
  'check-last-used': ['cloudtrail', 'member-sts'],
  audit: ['security-hub', 's3', 'member-sts'],
};

/** The opt-in clients that only a member account uses: without `organization` there is none. */
const ORGANIZATION_ONLY: readonly OptInClient[] = ['member-sts', 'organizations'];

/**
 * The opt-in files of `name`: the member-role STS client and the plan's Organizations check only
 * with `organization` (no member account otherwise).
 */
export function optInBundles(
  name: FunctionName,
  config: Pick<RekeyConfig, 'organization'>,
): readonly OptInClient[] {
  const all = OPT_IN_BUNDLES[name] ?? [];
  return config.organization ? all : all.filter((client) => !ORGANIZATION_ONLY.includes(client));
}

/** esbuild's settings for every bundle: the function's own (below) and its opt-in files. */
const ESBUILD_SETTINGS = {
  format: OutputFormat.ESM,
  target: 'node24',
  minify: true,
  mainFields: ['module', 'main'],
  banner: ESM_REQUIRE_BANNER,
} as const;

const shellQuote = (value: string) => `'${value.replaceAll("'", "'\\''")}'`;

/**
 * The command that builds the deployed bundle of `entry` into `outfile` (deployed-bundle.mjs:
 * these settings, aliases and stand-ins, and each SDK client's package.json cut to its version).
 */
export function deployedBundleCommand(
  entry: string,
  outfile: string,
  aliases: Readonly<Record<string, string>>,
): string {
  const spec = {
    entry,
    outfile,
    settings: {
      format: ESBUILD_SETTINGS.format,
      target: ESBUILD_SETTINGS.target,
      mainFields: ESBUILD_SETTINGS.mainFields,
      banner: ESBUILD_SETTINGS.banner,
    },
    aliases,
    standIns: DEPLOYED_STAND_INS,
  };
  return [
    process.execPath,
    join(REPO_ROOT, 'infra', 'constructs', 'deployed-bundle.mjs'),
    JSON.stringify(spec),
  ]
    .map(shellQuote)
    .join(' ');
}

/** The command that bundles the opt-in client `name` next to the main bundle, in `outputDir`. */
export function optInBundleCommand(name: OptInClient, outputDir: string): string {
  return deployedBundleCommand(
    join(REPO_ROOT, 'lambdas', 'shared', 'deployed', `${name}.ts`),
    join(outputDir, `${name}.mjs`),
    DEPLOYED_ALIASES,
  );
}

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
 * with retention, X-Ray, its own role, the `rekey:handler` metadata the local
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
    const handler = { name, description: FUNCTION_DESCRIPTIONS[name], environment };

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

    const entry = join(REPO_ROOT, 'lambdas', functionFolder(name), 'index.ts');
    this.lambdaFunction = new NodejsFunction(this, 'Function', {
      entry,
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
      },
      bundling: {
        forceDockerBundling: false,
        ...ESBUILD_SETTINGS,
        mainFields: [...ESBUILD_SETTINGS.mainFields],
        // No source map: see docs/performance.md ("Source maps").
        sourceMap: false,
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          // esbuild's command line, which NodejsFunction runs, takes no plugins: the deployed
          // bundle is built again in its place with the stand-ins (DEPLOYED_ALIASES,
          // DEPLOYED_STAND_INS, MAIN_BUNDLE_ALIASES, FACADE_ALIASES), and the opt-in files next to it.
          afterBundling: (_inputDir, outputDir) => [
            deployedBundleCommand(entry, join(outputDir, 'index.mjs'), {
              ...DEPLOYED_ALIASES,
              ...MAIN_BUNDLE_ALIASES,
              ...FACADE_ALIASES,
            }),
            ...optInBundles(name, config).map((client) => optInBundleCommand(client, outputDir)),
          ],
        },
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
