/**
 * Runs the synthesized rotation state machine in-process with aws-local-stepfunctions, every Task
 * bound to its real handler module (lambdas/<step>/index.ts). Handlers talk to whatever AWS the
 * SDK's default chain points at (AWS_ENDPOINT_URL for an emulator); given `roles`, each handler
 * invocation signs as its own Lambda's deployed role instead (cli/deployed-roles.ts).
 *
 * It also stands in for the EventBridge rule the stack puts on the state machine's status
 * changes (which a local run has not): when a run ends FAILED, ABORTED or TIMED_OUT, it waits for
 * any step still running, then invokes the cleanup step with the event the rule would send.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Context } from 'aws-lambda';
import {
  ExecutionAbortedError,
  ExecutionError,
  ExecutionTimeoutError,
  StateMachine,
  type StateMachineDefinition,
} from 'aws-local-stepfunctions';
import type { FunctionName } from '../contract/functions.ts';
import { type CleanupInput, Outcome } from '../contract/schemas.ts';
import { type InvocationContext, runInInvocation } from '../lambdas/shared/clients/invocation.ts';
import {
  DefinitionError,
  PLACEHOLDER_ACCOUNT,
  PLACEHOLDER_REGION,
  REPO_ROOT,
  type State,
  walkStates,
} from './definition.ts';

type Execution = ReturnType<StateMachine['run']>;
export type ExecutionEvent = Execution['eventLogs'] extends AsyncGenerator<infer E> ? E : never;
export type JsonValue = Parameters<StateMachine['run']>[0];

/** Calls the handler module bound to a Task (JSON in, JSON out, errors shaped like Lambda's). */
export type InvokeHandler = (input: JsonValue) => Promise<JsonValue>;
/** Replaces or wraps one Task; call `invoke` to run the real handler (tests inject crashes this way). */
export type TaskOverride = (
  input: JsonValue,
  invoke: InvokeHandler,
  task: { state: string; step: FunctionName },
) => Promise<JsonValue> | JsonValue;

export interface TaskRecord {
  state: string;
  step: FunctionName;
  input: JsonValue;
  output?: JsonValue;
  error?: { name: string; message: string };
}

export interface RunRotationOptions {
  input: JsonValue;
  definition: StateMachineDefinition;
  bindings: Record<string, FunctionName>;
  /** Set on process.env before any handler module is imported (handlers validate it at import). */
  env?: Record<string, string>;
  /** Every Wait state takes 0 ms. */
  noWait?: boolean;
  /** @default `local-<uuid>` */
  executionName?: string;
  onEvent?: (event: ExecutionEvent) => void;
  /** Keyed by Task state name, or by step name to cover every Task bound to that step. */
  handlers?: Record<string, TaskOverride>;
  /** Every Retry waits this long instead of its backoff (tests: 0). */
  retryIntervalMs?: number;
  /**
   * Where the handlers' folders live (each bound name's folder in it). The organization audit's
   * Tasks run standalone Lambdas (cli/definition.ts extractOrganizationAuditDefinition): pass
   * lambdas/ of this repository.
   * @default lambdas/rotation/ of this repository
   */
  handlersDir?: string;
  /**
   * Each step's invocation context: the credentials of its Lambda's role and the check of its
   * calls against that role (cli/deployed-roles.ts `deployedRoles`). @default none: every handler
   * signs with the SDK's default chain, i.e. the caller's credentials
   */
  roles?: { contextFor(lambda: FunctionName): Promise<InvocationContext> };
  /** Aborting stops the execution as a console Stop would (status ABORTED), then cleans up. */
  signal?: AbortSignal;
}

/** How an execution ended, as Step Functions reports it. */
export type ExecutionStatus = 'SUCCEEDED' | CleanupInput['status'];

export interface RotationResult {
  executionName: string;
  executionArn: string;
  status: ExecutionStatus;
  output?: JsonValue;
  /** The execution's error name (a Task's error name, or the Fail state's Error). */
  error?: string;
  cause?: string;
  /** The last state entered, for telling where a failed execution stopped. */
  lastState?: string;
  events: ExecutionEvent[];
  /**
   * Every handler invocation in order, with what it received and returned; the last one, after a
   * run that did not succeed, is the cleanup the status change rule would have invoked.
   */
  tasks: TaskRecord[];
}

/** The name a run's task record gives the status change rule's invocation of the cleanup. */
export const STATUS_CHANGE_RULE = 'EventBridge: Step Functions Execution Status Change';

export const LOCAL_STATE_MACHINE_NAME = 'rekey-local';
const DEFAULT_HANDLERS_DIR = join(REPO_ROOT, 'lambdas', 'rotation');
/** aws-local-stepfunctions' default when a Task has no TimeoutSeconds. */
const DEFAULT_TASK_TIMEOUT_SECONDS = 60;
const EXECUTION_NAME = /^[A-Za-z0-9_-]{1,80}$/;

/** Step Functions' rule for execution names (this runner keeps to the safe subset). */
export function isValidExecutionName(name: string): boolean {
  return EXECUTION_NAME.test(name);
}

type Handler = (event: unknown, context: Context) => Promise<unknown>;

/** Runs one execution to the end. Never throws for a failed execution: it returns status FAILED. */
export async function runRotation(options: RunRotationOptions): Promise<RotationResult> {
  const { definition, bindings, handlers = {}, handlersDir = DEFAULT_HANDLERS_DIR } = options;
  const executionName = options.executionName ?? `local-${randomUUID()}`;
  if (!isValidExecutionName(executionName)) {
    throw new Error(`invalid execution name "${executionName}": 1-80 letters, digits, - and _`);
  }
  const region = options.env?.AWS_REGION ?? process.env.AWS_REGION ?? PLACEHOLDER_REGION;
  const arn = (service: string, resource: string) =>
    `arn:aws:${service}:${region}:${PLACEHOLDER_ACCOUNT}:${resource}`;
  const stateMachineArn = arn('states', `stateMachine:${LOCAL_STATE_MACHINE_NAME}`);
  const executionArn = arn('states', `execution:${LOCAL_STATE_MACHINE_NAME}:${executionName}`);

  const states = new Map<string, State>();
  walkStates(definition, (name, state) => states.set(name, state));
  if (!options.noWait) refuseUnwaitableWaits(states);
  const tasks: TaskRecord[] = [];
  const modules = new Map<FunctionName, Promise<Handler>>();

  const taskFor = (state: string, step: FunctionName) => {
    const stateDef = states.get(state);
    const timeoutSeconds =
      stateDef?.Type === 'Task'
        ? (stateDef.TimeoutSeconds ?? DEFAULT_TASK_TIMEOUT_SECONDS)
        : DEFAULT_TASK_TIMEOUT_SECONDS;
    const invoke: InvokeHandler = async (input) => {
      let module = modules.get(step);
      if (!module) {
        module = loadHandler(handlersDir, step);
        modules.set(step, module);
      }
      const handler = await module;
      const context = lambdaContext(`rekey-local-${step}`, arn, timeoutSeconds);
      const invocation = await options.roles?.contextFor(step);
      // Lambda hands the handler a fresh parse of the payload and JSON-serializes what it returns.
      const call = () => handler(structuredClone(input), context);
      const output = await (invocation ? runInInvocation(invocation, call) : call());
      return JSON.parse(JSON.stringify(output ?? null)) as JsonValue;
    };
    const override = handlers[state] ?? handlers[step];
    return async (input: JsonValue): Promise<JsonValue> => {
      const record: TaskRecord = { state, step, input: structuredClone(input) };
      tasks.push(record);
      const running = (async () => {
        try {
          record.output = await (override ? override(input, invoke, { state, step }) : invoke(input));
          return record.output;
        } catch (error) {
          const lambdaError = new LambdaError(error);
          record.error = { name: lambdaError.name, message: lambdaError.errorMessage };
          throw lambdaError;
        }
      })();
      inFlight.add(running);
      try {
        return await running;
      } finally {
        inFlight.delete(running);
      }
    };
  };
  /** Steps still running: an aborted execution does not stop them (nor does Step Functions). */
  const inFlight = new Set<Promise<JsonValue>>();

  const overrides = {
    taskResourceLocalHandlers: Object.fromEntries(
      Object.entries(bindings).map(([state, step]) => [state, taskFor(state, step)]),
    ),
    waitTimeOverrides: options.noWait ? namesOf(states, (s) => s.Type === 'Wait', 0) : {},
    retryIntervalOverrides:
      options.retryIntervalMs === undefined
        ? {}
        : namesOf(states, (s) => 'Retry' in s && s.Retry !== undefined, options.retryIntervalMs),
  };

  const restoreEnv = enterEnv(options.env ?? {});
  const events: ExecutionEvent[] = [];
  let lastState: string | undefined;
  let listenerError: unknown;
  try {
    const machine = new StateMachine(engineCompatible(definition));
    const execution = machine.run(options.input, {
      overrides,
      context: {
        Execution: {
          Id: executionArn,
          Name: executionName,
          Input: options.input,
          StartTime: new Date().toISOString(),
        },
        StateMachine: { Id: stateMachineArn, Name: LOCAL_STATE_MACHINE_NAME },
      },
    });
    const abort = () => execution.abort();
    if (options.signal?.aborted) abort();
    else options.signal?.addEventListener('abort', abort, { once: true });
    const consumed = (async () => {
      for await (const event of execution.eventLogs) {
        events.push(event);
        if (event.type === 'StateEntered') lastState = event.state.name;
        try {
          options.onEvent?.(event);
        } catch (error) {
          listenerError ??= error;
        }
      }
    })();
    const base = { executionName, executionArn, events, tasks };
    let result: RotationResult;
    try {
      const output = await execution.result;
      result = { ...base, status: 'SUCCEEDED', output };
    } catch (error) {
      result = { ...base, ...describeFailure(error) };
    } finally {
      options.signal?.removeEventListener('abort', abort);
    }
    await consumed;
    if (listenerError !== undefined) throw listenerError;
    if (result.status !== 'SUCCEEDED') {
      // The status change rule fires once the execution has ended; by then a step it aborted may
      // still be running, which the deployed cleanup waits out and this one awaits.
      await Promise.allSettled([...inFlight]);
      const cleanup = Object.entries(bindings).find(([, step]) => step === 'cleanup');
      if (cleanup) {
        const event: CleanupInput = {
          executionArn,
          status: result.status,
          input: JSON.stringify(options.input ?? null),
        };
        await taskFor(
          STATUS_CHANGE_RULE,
          'cleanup',
        )(event as unknown as JsonValue).catch(() => {
          // Recorded in tasks with its error: a run never throws for what its cleanup met.
        });
      }
    }
    return { ...result, ...(lastState === undefined ? {} : { lastState }) };
  } finally {
    restoreEnv();
  }
}

export type ExitCode = 0 | 1 | 2;

/** The CLI's exit code: 0 rotated or dry run, 2 stopped safely, 1 anything else. */
export function exitCodeFor(result: Pick<RotationResult, 'status' | 'output'>): ExitCode {
  if (result.status !== 'SUCCEEDED') return 1;
  switch (outcomeOf(result.output)?.status) {
    case 'ROTATED':
    case 'DRY_RUN':
      return 0;
    case 'STOPPED':
      return 2;
    default:
      return 1;
  }
}

/** The `outcome` the terminal notify step writes into the state document, if it is well-formed. */
export function outcomeOf(document: unknown): Outcome | undefined {
  if (typeof document !== 'object' || document === null || !('outcome' in document)) return undefined;
  const parsed = Outcome.safeParse(document.outcome);
  return parsed.success ? parsed.data : undefined;
}

/**
 * What Step Functions sees when a Lambda throws: Error is the error's name, Cause a JSON string
 * with errorType and errorMessage (the runtime also adds a trace, left out here). Steps that read
 * `$.error.Cause` behave the same locally as deployed.
 */
class LambdaError extends Error {
  readonly errorMessage: string;
  constructor(thrown: unknown) {
    const errorType = thrown instanceof Error ? thrown.name : 'Error';
    const errorMessage = thrown instanceof Error ? thrown.message : String(thrown);
    super(JSON.stringify({ errorType, errorMessage }));
    this.name = errorType;
    this.errorMessage = errorMessage;
  }
}

function describeFailure(error: unknown): {
  status: Exclude<ExecutionStatus, 'SUCCEEDED'>;
  error: string;
  cause: string;
} {
  if (error instanceof ExecutionError && error.cause instanceof Error) {
    return { status: 'FAILED', error: error.cause.name, cause: error.cause.message };
  }
  if (error instanceof ExecutionTimeoutError)
    return { status: 'TIMED_OUT', error: 'States.Timeout', cause: 'the execution timed out' };
  if (error instanceof ExecutionAbortedError)
    return { status: 'ABORTED', error: 'ExecutionAborted', cause: 'the execution was stopped' };
  if (error instanceof Error) return { status: 'FAILED', error: error.name, cause: error.message };
  return { status: 'FAILED', error: 'Error', cause: String(error) };
}

async function loadHandler(handlersDir: string, step: FunctionName): Promise<Handler> {
  const path = join(handlersDir, step, 'index.ts');
  const module = (await import(/* @vite-ignore */ pathToFileURL(path).href)) as { handler?: unknown };
  if (typeof module.handler !== 'function') throw new Error(`${path} does not export a handler function`);
  return module.handler as Handler;
}

function lambdaContext(
  functionName: string,
  arn: (service: string, resource: string) => string,
  timeoutSeconds: number,
): Context {
  const deadline = Date.now() + timeoutSeconds * 1000;
  const callbackStyle = () => {
    throw new Error('callback-style completion is not supported locally: return a promise');
  };
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: arn('lambda', `function:${functionName}`),
    memoryLimitInMB: '256',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `local/${randomUUID()}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: callbackStyle,
    fail: callbackStyle,
    succeed: callbackStyle,
  };
}

/** Longest delay setTimeout honours (about 24.8 days); longer ones fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A copy for the engine (it validates and mutates what it is given). aws-local-stepfunctions
 * 3.0.0 departs from the ASL spec in places; the definition must not use those forms (a local run
 * must execute exactly what deploys), so they are refused here rather than rewritten:
 * - `ResultPath: "$"` written out (the engine writes the result under a key "$"): omit it;
 * - a type test with `false` (`"IsNull": false` never matches): test for `true` and swap branches.
 * One departure cannot be avoided by the definition and is adjusted: a machine timeout beyond a
 * 32-bit timer (the deployed one is weeks) is dropped, since setTimeout fires it after 1 ms.
 */
function engineCompatible(definition: StateMachineDefinition): StateMachineDefinition {
  const copy = structuredClone(definition);
  if (copy.TimeoutSeconds !== undefined && copy.TimeoutSeconds * 1000 > MAX_TIMER_MS) {
    delete copy.TimeoutSeconds;
  }
  walkStates(copy, (name, state) => {
    const explicitRoot =
      ('ResultPath' in state && state.ResultPath === '$') ||
      ('Catch' in state && (state.Catch ?? []).some((catcher) => catcher.ResultPath === '$'));
    if (explicitRoot)
      throw new DefinitionError(`state "${name}" writes ResultPath "$" explicitly; omit it (the default)`);
    if (state.Type === 'Choice' && hasFalseTypeTest(state.Choices as unknown as ChoiceRule[])) {
      throw new DefinitionError(
        `choice state "${name}" tests a type with false (e.g. IsNull: false); test for true instead`,
      );
    }
  });
  return copy;
}

type ChoiceRule = { [operator: string]: unknown; And?: ChoiceRule[]; Or?: ChoiceRule[]; Not?: ChoiceRule };
const TYPE_TESTS = ['IsNull', 'IsPresent', 'IsNumeric', 'IsString', 'IsBoolean', 'IsTimestamp'];

function hasFalseTypeTest(rules: ChoiceRule[]): boolean {
  return rules.some(
    (rule) =>
      TYPE_TESTS.some((operator) => rule[operator] === false) ||
      hasFalseTypeTest([...(rule.And ?? []), ...(rule.Or ?? []), ...(rule.Not ? [rule.Not] : [])]),
  );
}

/** A Wait longer than a timer can hold would silently end after 1 ms: refuse rather than skip it. */
function refuseUnwaitableWaits(states: Map<string, State>): void {
  for (const [name, state] of states) {
    if (state.Type === 'Wait' && state.Seconds !== undefined && state.Seconds * 1000 > MAX_TIMER_MS) {
      throw new Error(
        `Wait state "${name}" lasts ${state.Seconds} s, longer than a local run can wait (${Math.floor(MAX_TIMER_MS / 1000)} s); use noWait (--no-wait)`,
      );
    }
  }
}

function namesOf(states: Map<string, State>, match: (state: State) => boolean, value: number) {
  return Object.fromEntries([...states].filter(([, state]) => match(state)).map(([name]) => [name, value]));
}

/** The environment of the runs in progress: overlapping runs (tests of the lock) share it. */
let envScope: { runs: number; restore: () => void } | undefined;

/**
 * Sets variables on process.env for a run; the returned function puts the previous values back
 * once the last overlapping run has ended. Overlapping runs with different values are refused:
 * the handlers read their environment once, at import, so one of them would be misconfigured.
 */
function enterEnv(env: Record<string, string>): () => void {
  if (envScope) {
    const conflict = Object.keys(env).find((key) => process.env[key] !== env[key]);
    if (conflict) throw new Error(`overlapping runs must share one environment: ${conflict} differs`);
    envScope.runs += 1;
  } else {
    envScope = { runs: 1, restore: applyEnv(env) };
  }
  return () => {
    if (envScope && --envScope.runs === 0) {
      envScope.restore();
      envScope = undefined;
    }
  };
}

function applyEnv(env: Record<string, string>): () => void {
  const previous = Object.keys(env).map((key) => [key, process.env[key]] as const);
  Object.assign(process.env, env);
  return () => {
    for (const [key, value] of previous) {
      if (value === undefined) Reflect.deleteProperty(process.env, key);
      else process.env[key] = value;
    }
  };
}
