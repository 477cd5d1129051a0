/**
 * Extracts the rotation state machine from the synthesized CloudFormation template, so the local
 * runner executes exactly the definition that deploys, and binds every Task to its handler module
 * through the `rekey:handler` metadata the stack writes on each Lambda function. With
 * organization, the template also holds the organization audit's state machine (marked by
 * STATE_MACHINE_METADATA_KEY); extractOrganizationAuditDefinition gives it, its Tasks bound to
 * the standalone Lambdas they invoke through their `rekey:lambda` metadata.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import aslValidator from 'asl-validator';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import {
  FUNCTIONS,
  type FunctionName,
  HANDLER_METADATA_KEY,
  LAMBDA_METADATA_KEY,
  STEPS,
  type StepName,
} from '../contract/functions.ts';
import { ORGANIZATION_AUDIT_MACHINE, STATE_MACHINE_METADATA_KEY } from '../contract/states.ts';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const DEFAULT_TEMPLATE_PATH = join(REPO_ROOT, 'cdk.out', 'RekeyStack.template.json');

/** Region and account of the ARNs made up for the template's tokens; nothing is ever called there. */
export const PLACEHOLDER_REGION = 'us-east-1';
export const PLACEHOLDER_ACCOUNT = '123456789012';

export type State = StateMachineDefinition['States'][string];

export interface LoadedDefinition {
  definition: StateMachineDefinition;
  /** Every Task state (nested ones included) mapped to the handler folder it runs. */
  bindings: Record<string, StepName>;
}

/**
 * The organization audit's definition: every Task mapped to the standalone Lambda it invokes
 * (`audit`, `organization-accounts`), whose handler is lambdas/<name>/index.ts (the local runner
 * with handlersDir = lambdas/).
 */
export interface LoadedOrganizationAuditDefinition {
  definition: StateMachineDefinition;
  bindings: Record<string, FunctionName>;
}

export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
  Metadata?: Record<string, unknown>;
}
export interface CfnTemplate {
  Resources?: Record<string, CfnResource>;
}

/** The template cannot be run locally (or could reach real AWS Lambda if it were). */
export class DefinitionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DefinitionError';
  }
}

export interface LoadDefinitionOptions {
  /** @default cdk.out/RekeyStack.template.json in this repository */
  templatePath?: string;
  /**
   * true: always synthesize; false: never. Default: synthesize when the default template is
   * missing or older than the CDK app, so a local run never executes a stale definition.
   */
  synth?: boolean;
  /** Progress messages (stderr by default, so `--json` output stays clean). */
  log?: (message: string) => void;
}

export function loadDefinition(options: LoadDefinitionOptions = {}): LoadedDefinition {
  const templatePath = options.templatePath ?? DEFAULT_TEMPLATE_PATH;
  const log = options.log ?? ((message: string) => console.error(message));
  const reason = synthReason(templatePath, options.synth);
  if (reason) synthesize(log, reason);
  return readDefinition(templatePath);
}

export interface LoadDefinitionAsyncOptions extends LoadDefinitionOptions {
  /** A progress line this often while `cdk synth` runs (it takes 15-60 s). @default 5000 */
  heartbeatMs?: number;
  /** Aborting kills the synth (its whole process group) and rejects. */
  signal?: AbortSignal;
}

/**
 * loadDefinition for interactive commands: the synth runs as a child process while the event
 * loop stays free, so progress can be printed and Ctrl-C can stop it.
 */
export async function loadDefinitionAsync(
  options: LoadDefinitionAsyncOptions = {},
): Promise<LoadedDefinition> {
  const templatePath = options.templatePath ?? DEFAULT_TEMPLATE_PATH;
  const log = options.log ?? ((message: string) => console.error(message));
  const reason = synthReason(templatePath, options.synth);
  if (reason) await synthesizeAsync(log, reason, options.heartbeatMs ?? 5000, options.signal);
  return readDefinition(templatePath);
}

/** Why the template must be synthesized first, or undefined when it can be read as it is. */
function synthReason(templatePath: string, synth: boolean | undefined): string | undefined {
  if (synth === true) return 'as asked';
  if (synth === false || templatePath !== DEFAULT_TEMPLATE_PATH) return undefined;
  if (!existsSync(templatePath)) return 'no template yet';
  return isStale(templatePath) ? 'the CDK app changed since the last synth' : undefined;
}

function readDefinition(templatePath: string): LoadedDefinition {
  if (!existsSync(templatePath)) throw new DefinitionError(`template not found: ${templatePath}`);
  const template = JSON.parse(readFileSync(templatePath, 'utf8')) as CfnTemplate;
  return extractDefinition(template);
}

/**
 * Pure part of loadDefinition: template in, validated definition and Task bindings out. The
 * rotation is the one state machine without STATE_MACHINE_METADATA_KEY.
 */
export function extractDefinition(template: CfnTemplate): LoadedDefinition {
  const resources = template.Resources ?? {};
  const functions = lambdaFunctions(resources);
  const definition = machineDefinition(resources, functions, undefined);
  return { definition, bindings: bindTasks(definition, functions) };
}

/** The organization audit's state machine of a template synthesized with organization. */
export function extractOrganizationAuditDefinition(template: CfnTemplate): LoadedOrganizationAuditDefinition {
  const resources = template.Resources ?? {};
  const functions = lambdaFunctions(resources);
  const definition = machineDefinition(resources, functions, ORGANIZATION_AUDIT_MACHINE);
  return { definition, bindings: bindStandaloneTasks(definition, functions) };
}

/** extractOrganizationAuditDefinition of the template at `templatePath` (never synthesizes). */
export function loadOrganizationAuditDefinition(templatePath: string): LoadedOrganizationAuditDefinition {
  if (!existsSync(templatePath)) throw new DefinitionError(`template not found: ${templatePath}`);
  return extractOrganizationAuditDefinition(JSON.parse(readFileSync(templatePath, 'utf8')) as CfnTemplate);
}

/** The validated definition of the one state machine whose STATE_MACHINE_METADATA_KEY is `marker`. */
function machineDefinition(
  resources: Record<string, CfnResource>,
  functions: Map<string, LambdaFunction>,
  marker: string | undefined,
): StateMachineDefinition {
  const machines = Object.entries(resources).filter(
    ([, r]) =>
      r.Type === 'AWS::StepFunctions::StateMachine' && r.Metadata?.[STATE_MACHINE_METADATA_KEY] === marker,
  );
  const [machine, ...others] = machines;
  const which = marker === undefined ? '' : ` with ${STATE_MACHINE_METADATA_KEY} "${marker}"`;
  if (!machine || others.length > 0) {
    throw new DefinitionError(
      `expected exactly one AWS::StepFunctions::StateMachine${which} in the template, found ${machines.length}`,
    );
  }
  const [machineId, { Properties: props = {} }] = machine;

  const resolve = (value: unknown) => resolveToken(value, resources, functions);
  if (props.DefinitionString === undefined) {
    throw new DefinitionError(`state machine ${machineId} has no DefinitionString`);
  }
  let text = resolve(props.DefinitionString);
  const substitutions = (props.DefinitionSubstitutions ?? {}) as Record<string, unknown>;
  for (const [name, value] of Object.entries(substitutions))
    text = text.replaceAll(`\${${name}}`, resolve(value));

  let definition: StateMachineDefinition;
  try {
    definition = JSON.parse(text) as StateMachineDefinition;
  } catch (error) {
    throw new DefinitionError(`state machine ${machineId}: DefinitionString is not JSON: ${String(error)}`);
  }
  // The validator mutates what it is given (adds QueryLanguage to every state).
  const validation = aslValidator(structuredClone(definition), { checkArn: true, checkPaths: true });
  if (!validation.isValid) {
    throw new DefinitionError(`the state machine definition is invalid:\n${validation.errorsText('\n')}`);
  }
  return definition;
}

/** Calls `visit` for every state, descending into Parallel branches and Map iterators. */
export function walkStates(
  machine: Pick<StateMachineDefinition, 'States'>,
  visit: (name: string, state: State) => void,
): void {
  for (const [name, state] of Object.entries(machine.States)) {
    visit(name, state);
    if (state.Type === 'Parallel') for (const branch of state.Branches) walkStates(branch, visit);
    if (state.Type === 'Map') {
      const processor = state.ItemProcessor ?? state.Iterator;
      if (processor) walkStates(processor, visit);
    }
  }
}

interface LambdaFunction {
  logicalId: string;
  arn: string;
  step?: StepName;
  /** Its `rekey:lambda` metadata: every rekey function's name in FUNCTIONS. */
  lambda?: FunctionName;
}

function isFunctionName(value: unknown): value is FunctionName {
  return typeof value === 'string' && Object.hasOwn(FUNCTIONS, value);
}

function isStep(value: unknown): value is StepName {
  return typeof value === 'string' && Object.hasOwn(STEPS, value);
}

/** Every Lambda function, by logical id, with the placeholder ARN its tokens resolve to. */
function lambdaFunctions(resources: Record<string, CfnResource>): Map<string, LambdaFunction> {
  const found = new Map<string, LambdaFunction>();
  for (const [logicalId, resource] of Object.entries(resources)) {
    if (resource.Type !== 'AWS::Lambda::Function') continue;
    const handler = resource.Metadata?.[HANDLER_METADATA_KEY];
    if (handler !== undefined && !isStep(handler)) {
      throw new DefinitionError(
        `function ${logicalId} has ${HANDLER_METADATA_KEY} "${String(handler)}", which is not a step ` +
          `(${Object.keys(STEPS).join(', ')})`,
      );
    }
    const lambda = resource.Metadata?.[LAMBDA_METADATA_KEY];
    // Bound functions get the step (or the standalone Lambda's name) as name so ARNs read well
    // in logs; unbound ones keep their id.
    const name = handler ?? (isFunctionName(lambda) ? lambda : logicalId);
    const arn = `arn:aws:lambda:${PLACEHOLDER_REGION}:${PLACEHOLDER_ACCOUNT}:function:${name}`;
    found.set(logicalId, {
      logicalId,
      arn,
      ...(handler === undefined ? {} : { step: handler }),
      ...(isFunctionName(lambda) ? { lambda } : {}),
    });
  }
  return found;
}

const PSEUDO_PARAMETERS: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::Region': PLACEHOLDER_REGION,
  'AWS::AccountId': PLACEHOLDER_ACCOUNT,
  'AWS::URLSuffix': 'amazonaws.com',
  'AWS::StackName': 'RekeyStack',
};

/** Resolves a CloudFormation value to a string; tokens that only exist at deploy time get placeholders. */
function resolveToken(
  value: unknown,
  resources: Record<string, CfnResource>,
  functions: Map<string, LambdaFunction>,
): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value !== 'object' || value === null) return 'local-token';
  const token = value as Record<string, unknown>;
  const join = token['Fn::Join'];
  if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) {
    return join[1].map((part: unknown) => resolveToken(part, resources, functions)).join(join[0]);
  }
  const getAtt = token['Fn::GetAtt'];
  if (getAtt !== undefined) {
    const [id, attribute] =
      typeof getAtt === 'string' ? getAtt.split('.') : (getAtt as unknown[]).map(String);
    const fn = functions.get(String(id));
    if (fn && attribute === 'Arn') return fn.arn;
    return `local-${String(id)}-${String(attribute)}`;
  }
  const ref = token.Ref;
  if (typeof ref === 'string') {
    return PSEUDO_PARAMETERS[ref] ?? `local-${resources[ref] ? 'resource' : 'parameter'}-${ref}`;
  }
  return 'local-token';
}

const LAMBDA_ARN = /^arn:aws:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+$/;

/** The guard: every Task must run a known handler, so a local run can never reach real AWS Lambda. */
function bindTasks(definition: StateMachineDefinition, functions: Map<string, LambdaFunction>) {
  const byArn = new Map([...functions.values()].map((fn) => [fn.arn, fn]));
  const bindings: Record<string, StepName> = {};
  walkStates(definition, (name, state) => {
    if (state.Type !== 'Task') return;
    if (!LAMBDA_ARN.test(state.Resource)) {
      throw new DefinitionError(
        `Task "${name}" has Resource "${state.Resource}": the local runner runs only Lambda functions ` +
          'called directly (LambdaInvoke with payloadResponseOnly)',
      );
    }
    const fn = byArn.get(state.Resource);
    if (!fn?.step) {
      throw new DefinitionError(
        `Task "${name}" has no local binding: its function ${fn ? fn.logicalId : state.Resource} carries no ` +
          `"${HANDLER_METADATA_KEY}" metadata, and a local run must never call a real Lambda`,
      );
    }
    bindings[name] = fn.step;
  });
  return bindings;
}

/**
 * The organization audit's guard: every Task runs a standalone Lambda of the registry, found by
 * its `rekey:lambda` metadata (a workflow step there would be a wiring mistake).
 */
function bindStandaloneTasks(definition: StateMachineDefinition, functions: Map<string, LambdaFunction>) {
  const byArn = new Map([...functions.values()].map((fn) => [fn.arn, fn]));
  const bindings: Record<string, FunctionName> = {};
  walkStates(definition, (name, state) => {
    if (state.Type !== 'Task') return;
    const fn = LAMBDA_ARN.test(state.Resource) ? byArn.get(state.Resource) : undefined;
    if (!fn?.lambda || fn.step) {
      throw new DefinitionError(
        `Task "${name}" has no local binding: its Resource ${fn ? fn.logicalId : state.Resource} is no ` +
          `standalone rekey Lambda with "${LAMBDA_METADATA_KEY}" metadata`,
      );
    }
    bindings[name] = fn.lambda;
  });
  return bindings;
}

/** Inputs of the synthesized template; a template older than any of them is stale. */
const SYNTH_INPUTS = ['infra', 'cdk.json', 'contract'];

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((entry) => newestMtime(join(path, entry))));
}

function isStale(templatePath: string): boolean {
  const built = statSync(templatePath).mtimeMs;
  return SYNTH_INPUTS.some((input) => newestMtime(join(REPO_ROOT, input)) > built);
}

/** How long to wait for somebody else's synth into the same cdk.out (tests start one each). */
const SYNTH_LOCK_WAIT_MS = 180_000;
const SYNTH_LOCKED = /is currently synthing to/;

const SYNTH_COMMAND = ['npx', 'cdk', 'synth', '--quiet'] as const;

/** Node 24 from node_modules first: the CDK app needs it, and the machine's own node is older. */
function synthEnv(): NodeJS.ProcessEnv {
  const path = [
    join(REPO_ROOT, 'node_modules', '.bin'),
    dirname(process.execPath),
    process.env.PATH ?? '',
  ].join(delimiter);
  return { ...process.env, PATH: path };
}

function synthesize(log: (message: string) => void, reason: string): void {
  log(`Synthesizing the CDK app (${reason}): ${SYNTH_COMMAND.join(' ')}`);
  const deadline = Date.now() + SYNTH_LOCK_WAIT_MS;
  for (;;) {
    const [command, ...args] = SYNTH_COMMAND;
    const result = spawnSync(command, args, {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
      env: synthEnv(),
    });
    if (result.error) throw new DefinitionError(`could not run cdk synth: ${result.error.message}`);
    const output = `${result.stdout}${result.stderr}`;
    if (result.status !== 0 && SYNTH_LOCKED.test(output) && Date.now() < deadline) {
      // Another process holds cdk.out's lock; its synth will finish soon, then ours can run.
      sleepSync(1000);
      continue;
    }
    // Synth output goes to stderr: stdout may be carrying `--json` output.
    process.stderr.write(output);
    if (result.status !== 0) {
      throw new DefinitionError(`cdk synth failed (exit ${result.status}); see its output above`);
    }
    return;
  }
}

async function synthesizeAsync(
  log: (message: string) => void,
  reason: string,
  heartbeatMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  log(`Synthesizing the CDK app (${reason}): ${SYNTH_COMMAND.join(' ')}; this takes 15-60 s`);
  const started = Date.now();
  const heartbeat = setInterval(
    () => log(`  still synthesizing (${Math.round((Date.now() - started) / 1000)} s)`),
    heartbeatMs,
  );
  try {
    const deadline = Date.now() + SYNTH_LOCK_WAIT_MS;
    for (;;) {
      const { status, output } = await runSynthChild(signal);
      if (status !== 0 && SYNTH_LOCKED.test(output) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      if (status !== 0) {
        process.stderr.write(output);
        throw new DefinitionError(`cdk synth failed (exit ${status}); see its output above`);
      }
      log(`Synthesized in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return;
    }
  } finally {
    clearInterval(heartbeat);
  }
}

/**
 * One `cdk synth` in a process group of its own (npx, cdk, the app, esbuild), so that an abort
 * can end all of it by the group id, which is the pid of the child started here.
 */
function runSynthChild(signal: AbortSignal | undefined): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DefinitionError('cdk synth was interrupted'));
      return;
    }
    const [command, ...args] = SYNTH_COMMAND;
    const child = spawn(command, args, {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: synthEnv(),
      detached: true,
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const onAbort = () => {
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(-child.pid, 'SIGTERM');
        } catch {
          // Already gone.
        }
      }
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    child.once('error', (error) => {
      signal?.removeEventListener('abort', onAbort);
      reject(new DefinitionError(`could not run cdk synth: ${error.message}`));
    });
    child.once('close', (status) => {
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) reject(new DefinitionError('cdk synth was interrupted'));
      else resolve({ status, output });
    });
  });
}

/** loadDefinition is synchronous (test setups call it so); this blocks without spinning. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
