/**
 * What a local invocation (invocation.ts, runInInvocation) does around each call of a rekey
 * client: the context's `authorize` first, then the emulator's refusals reported as AccessDenied
 * naming the action, the Lambda and the resource, and a missing member role as
 * MemberRoleUnavailable. Only the local runner gets here: deployed, no invocation context is
 * ever set, so bindToInvocations's middlewares pass every call through without calling into this
 * module, and the Lambda bundles hold a stand-in that fails by name in its place
 * (lambdas/shared/deployed/no-emulator-calls.ts; docs/performance.md, "Lambda bundles").
 */
import type { HandlerExecutionContext } from '@smithy/types';
import { MemberRoleUnavailable } from '../../../contract/errors.ts';
import { isMissingRoleAnswer, type MemberAccountContext } from './account-context.ts';
import type { InvocationContext, ServicePrefix } from './invocation.ts';

/**
 * A call the Lambda's role does not allow. `name` is AccessDenied, as AWS names it, so the state
 * machine and the logs treat it like the error a deployed Lambda would get.
 */
export class AccessDenied extends Error {
  readonly step: string;
  readonly action: string;
  readonly resource: string | undefined;

  constructor(details: {
    step: string;
    action: string;
    resource?: string | undefined;
    reason: string;
    /** The member role (its ARN) the Lambda acts as in a member account; absent: its own role. */
    memberRole?: string | undefined;
  }) {
    const on = details.resource === undefined ? '' : ` on ${details.resource}`;
    const role = details.memberRole === undefined ? 'role' : `member role ${details.memberRole}`;
    super(`the ${details.step} Lambda's ${role} does not allow ${details.action}${on}: ${details.reason}`);
    this.name = 'AccessDenied';
    this.step = details.step;
    this.action = details.action;
    this.resource = details.resource;
  }
}

/** Where the deserialize-step middleware leaves a 403 or 500 answer's body for the initialize-step one. */
const DENIAL_BODY = 'rekeyDenialBody';

/** One call inside `invocation`: what bindToInvocations's initialize-step middleware runs. */
export async function checkedCall<T>(
  call: {
    invocation: InvocationContext;
    service: ServicePrefix;
    action: string;
    input: Record<string, unknown>;
    member: MemberAccountContext | undefined;
  },
  context: HandlerExecutionContext,
  send: () => Promise<T>,
): Promise<T> {
  const { invocation, service, action, member } = call;
  const resource = await invocation.authorize?.({
    step: invocation.step,
    service,
    action,
    input: call.input,
    ...(member ? { account: member.accountId } : {}),
  });
  try {
    return await send();
  } catch (error) {
    if (member && isMissingRoleAnswer(error, context[DENIAL_BODY])) {
      throw new MemberRoleUnavailable(
        member.accountId,
        member.roleArn,
        `the emulator answered ${action} with an HTML error page, its answer for a role that does not exist`,
      );
    }
    const refusal = emulatorRefusal(error, context[DENIAL_BODY]);
    if (refusal === undefined) throw error;
    throw new AccessDenied({
      step: invocation.step,
      action,
      resource,
      reason: `the emulator refused it (${refusal})`,
    });
  }
}

/**
 * A 403 or 500 answer's body, read and put back (a 500's tells a missing member role, account-context.ts): for the JSON services moto answers AccessDenied in XML,
 * the SDK fails to parse it (SyntaxError) and the body it read is lost, so it is kept here.
 */
export async function keepDenialBody(response: unknown, context: HandlerExecutionContext): Promise<void> {
  const answer = response as { statusCode?: number; body?: unknown } | undefined;
  const body = answer?.body as AsyncIterable<Uint8Array> | undefined;
  if (
    (answer?.statusCode !== 403 && answer?.statusCode !== 500) ||
    typeof body?.[Symbol.asyncIterator] !== 'function'
  )
    return;
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  // The SDK reads a body given as bytes as readily as a stream.
  answer.body = new Uint8Array(bytes);
  context[DENIAL_BODY] = bytes.toString('utf8');
}

/** The 403 answers that mean "not allowed" (not a bad signature or an unknown key). */
const DENIED_CODES = ['AccessDenied', 'AccessDeniedException', 'AuthorizationError'];

/**
 * The emulator's message when `error` is its refusal of the call, else undefined. Services that
 * answer XML report it as a named error. For the JSON services moto answers AccessDenied as XML
 * too, which the SDK cannot parse: it throws a SyntaxError, and only the raw `body` (kept by
 * keepDenialBody) shows the refusal.
 */
export function emulatorRefusal(error: unknown, body?: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const status = (error as Error & { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (status !== 403) return undefined;
  if (DENIED_CODES.includes(error.name)) return error.message;
  if (error.name !== 'SyntaxError' || typeof body !== 'string') return undefined;
  const code = /<Code>([^<]+)<\/Code>/.exec(body)?.[1];
  if (code === undefined || !DENIED_CODES.includes(code)) return undefined;
  return /<Message>([^<]*)<\/Message>/.exec(body)?.[1] ?? code;
}
