/**
 * The credentials a client call signs with, chosen per Lambda invocation, and a hook that may
 * refuse the call first.
 *
 * Deployed, a Lambda runs under its own role and nothing here is active: every client takes its
 * credentials from the SDK's default chain, as before. Locally (tests, `rekey rotate`/`rekey
 * audit`/`rekey demo` against an emulator) all handlers share one process and one set of
 * module-scope clients, and several invocations run at once (concurrent rotations). The local
 * runner therefore wraps each invocation in `runInInvocation({ step, credentials, authorize })`,
 * and every rekey client reads that context on every request: the credentials of that Lambda's
 * emulated role, and `authorize`, which checks the call against that role's statements before it
 * is sent (the emulator checks only the action, never the resource; see cli/deployed-roles.ts).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import type { DeserializeMiddleware, InitializeMiddleware, MiddlewareStack } from '@smithy/types';
import { memberAccountFor } from './account-context.ts';
import { checkedCall, keepDenialBody } from './emulator-calls.ts';

export { AccessDenied, emulatorRefusal } from './emulator-calls.ts';

/** The IAM signing prefix of each service rekey calls: the first half of its action names. */
export type ServicePrefix =
  | 'iam'
  | 'secretsmanager'
  | 'dynamodb'
  | 'sns'
  | 'events'
  | 'sts'
  | 'states'
  | 'securityhub'
  | 'cloudtrail'
  | 'kms'
  | 's3'
  | 'organizations';

export interface InvocationCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** One AWS call about to be sent from inside an invocation. */
export interface AuthorizationRequest {
  /** The Lambda making it: a workflow step (STEPS) or a standalone Lambda such as `audit`. */
  step: string;
  service: ServicePrefix;
  /** The IAM action, `<prefix>:<operation>`, e.g. `iam:CreateAccessKey`. */
  action: string;
  /** The command's input, as given to the client. */
  input: Readonly<Record<string, unknown>>;
  /**
   * The member account the call acts in, signed as the Lambda's member role there
   * (`memberRoleName(prefix, step)`, contract/organization.ts); absent: the Lambda's own account
   * and role.
   */
  account?: string;
}

/**
 * Throws AccessDenied when the call must not be made. Returns what the call acts on (an ARN), so
 * that a refusal the emulator makes afterwards can name it too.
 */
export type Authorize = (request: AuthorizationRequest) => Promise<string | undefined>;

export interface InvocationContext {
  /** The Lambda this invocation runs (see AuthorizationRequest.step). */
  step: string;
  credentials: InvocationCredentials;
  authorize?: Authorize;
}

const invocations = new AsyncLocalStorage<InvocationContext>();

/** Runs `fn` (one handler invocation) with every rekey client signing as `context` says. */
export function runInInvocation<T>(context: InvocationContext, fn: () => Promise<T>): Promise<T> {
  return invocations.run(context, fn);
}

/** The invocation the caller runs in, if any. */
export function currentInvocation(): InvocationContext | undefined {
  return invocations.getStore();
}

const defaultChain = defaultProvider();

/**
 * The credentials provider of every rekey client: the invocation's credentials inside one, the
 * SDK's default chain otherwise (a deployed Lambda: its role; the CLI: the caller's credentials).
 *
 * The SDK normally memoizes a client's provider, and its memoizer shares one pending lookup
 * between concurrent requests: measured here, 20 concurrent requests from 20 invocations all
 * signed with the credentials of one of them. `memoized: true` tells the SDK this provider does
 * its own caching (the default chain does), so it is asked on every request. The `expiration` of
 * "now" is the second line: a memoizing SDK asks again for an identity that has expired.
 */
export const invocationCredentials = Object.assign(
  async (options?: Record<string, unknown>) => {
    const invocation = invocations.getStore();
    if (invocation) return { ...invocation.credentials, expiration: new Date() };
    return defaultChain(options);
  },
  { memoized: true },
);

/**
 * The credentials provider of the client of `service`: inside `inAccount` for a member account,
 * where the service acts in that account (account-context.ts), its member role's; otherwise
 * invocationCredentials. Asked on every request, like invocationCredentials.
 */
export function credentialsFor(service: ServicePrefix) {
  return Object.assign(
    async (options?: Record<string, unknown>) => {
      const member = memberAccountFor(service);
      if (member) return { ...(await member.credentials()), expiration: new Date() };
      return invocationCredentials(options);
    },
    { memoized: true },
  );
}

/**
 * Operations whose IAM action is not named after them: SNS authorizes PublishBatch as
 * sns:Publish ("grants permission to both publish and publish batch", the SNS API permissions
 * reference). The emulator checks the operation's own name instead (cli/deployed-roles.ts grants
 * it there wherever a role has the action).
 */
export const OPERATION_ACTIONS: Readonly<Record<string, string>> = { 'sns:PublishBatch': 'sns:Publish' };

/** `GetItemCommand` -> `dynamodb:GetItem`; `PublishBatchCommand` -> `sns:Publish` (OPERATION_ACTIONS). */
export function actionOf(service: ServicePrefix, commandName: string): string {
  const operation = `${service}:${commandName.replace(/Command$/, '')}`;
  return OPERATION_ACTIONS[operation] ?? operation;
}

/**
 * Makes `client` (built with `credentials: invocationCredentials`) honour the invocation
 * context: inside one, each call is first put to the context's `authorize`, and the emulator's
 * AccessDenied is reported as AccessDenied naming the action, the Lambda and the resource
 * (emulator-calls.ts). Outside one (deployed), both middlewares pass every call through
 * untouched, and never call into emulator-calls.ts, which the Lambda bundles leave out.
 */
export function bindToInvocations<Input extends object, Output extends object>(
  client: { middlewareStack: MiddlewareStack<Input, Output> },
  service: ServicePrefix,
): void {
  const authorizing: InitializeMiddleware<Input, Output> = (next, context) => async (args) => {
    const invocation = invocations.getStore();
    if (!invocation) return next(args);
    const call = {
      invocation,
      service,
      action: actionOf(service, context.commandName ?? 'UnknownCommand'),
      input: args.input as Record<string, unknown>,
      member: memberAccountFor(service),
    };
    return checkedCall(call, context, () => next(args));
  };
  const keepingDenials: DeserializeMiddleware<Input, Output> = (next, context) => async (args) => {
    const result = await next(args);
    if (invocations.getStore()) await keepDenialBody(result.response, context);
    return result;
  };
  // Outermost: the check runs once per call, before the SDK's retries and any test stand-in.
  client.middlewareStack.add(authorizing, { step: 'initialize', priority: 'high', name: 'rekeyAuthorize' });
  // Innermost: it sees the raw answer before the SDK parses (and consumes) its body.
  client.middlewareStack.add(keepingDenials, {
    step: 'deserialize',
    priority: 'low',
    name: 'rekeyDenialBody',
  });
}

/**
 * For stand-ins of APIs the emulator lacks (aws-sdk-client-mock replaces `send`, so the
 * middleware above never runs): puts the command to the current invocation's `authorize`, as the
 * middleware would. Outside an invocation it does nothing.
 */
export async function authorizeCommand(
  service: ServicePrefix,
  command: { input: object; constructor: { name: string } },
): Promise<void> {
  const invocation = invocations.getStore();
  await invocation?.authorize?.({
    step: invocation.step,
    service,
    action: actionOf(service, command.constructor.name),
    input: command.input as Record<string, unknown>,
  });
}
