/**
 * An endpoint that lacks an API (an emulator: moto 5 has no iam:ListServiceSpecificCredentials
 * nor cloudtrail:LookupEvents) answers it with something that is not the service's protocol.
 * Measured against moto 5.2.1: HTTP 500, `text/html; charset=utf-8`, Werkzeug's "500 Internal
 * Server Error" page (the operation's handler is missing). The SDK then fails to parse it, e.g.
 * "@aws-sdk XML parse error: mismatched tags <html> and </title>" (IAM) or "Unexpected token '<'"
 * (a JSON service), an error that names neither the operation nor a way around it.
 *
 * `nameOperationOnFailure(client)` makes the client's failed calls remember which operation and
 * which endpoint they were; `unsupportedOperationMessage(error)`, used where cli/main.ts reports
 * an error, turns such a parse failure into a message naming the operation and, for the
 * operations the CLI can leave out, the switch that does. Against AWS (an amazonaws.com or api.aws
 * host) nothing is rewritten: there an unreadable answer is a real fault, reported as it is.
 */
import type { BuildMiddleware, MiddlewareStack } from '@smithy/types';

/**
 * The optional operations the CLI calls, "Service Operation" (as the message names them), and how
 * to turn each off.
 */
export const OPERATION_SWITCHES: Readonly<Record<string, string>> = {
  'IAM ListServiceSpecificCredentials': '--no-service-credentials (or REKEY_AUDIT_SERVICE_CREDENTIALS=false)',
};

interface FailedOperation {
  /** e.g. IAM (the client's name without "Client"). */
  service: string;
  /** e.g. ListServiceSpecificCredentials (the command's name without "Command"). */
  operation: string;
  /** Where the request went, e.g. http://127.0.0.1:5000. */
  endpoint: string;
  /** The host, to tell AWS from an emulator. */
  hostname: string;
}

const FAILED_OPERATION = Symbol('rekey.failedOperation');

/** Hosts of AWS itself: an unreadable answer from one of them is never rewritten. */
const AWS_HOST = /(^|\.)(amazonaws\.com(\.cn)?|api\.aws)$/i;

/**
 * Records, on any error a call of `client` throws, the operation and the endpoint (a hidden
 * property; the error itself is thrown unchanged). A build-step middleware: it runs once per call,
 * outside the SDK's retries, and sees the request with its resolved host.
 */
export function nameOperationOnFailure<Input extends object, Output extends object>(client: {
  middlewareStack: MiddlewareStack<Input, Output>;
}): void {
  const naming: BuildMiddleware<Input, Output> = (next, context) => async (args) => {
    try {
      return await next(args);
    } catch (error) {
      const request = args.request as
        | { protocol?: string; hostname?: string; port?: number; path?: string }
        | undefined;
      if (error instanceof Error && request?.hostname && !(FAILED_OPERATION in error)) {
        const failed: FailedOperation = {
          service: (context.clientName ?? 'UnknownClient').replace(/Client$/, ''),
          operation: (context.commandName ?? 'UnknownCommand').replace(/Command$/, ''),
          endpoint: `${request.protocol ?? 'https:'}//${request.hostname}${request.port ? `:${request.port}` : ''}`,
          hostname: request.hostname,
        };
        Object.defineProperty(error, FAILED_OPERATION, { value: failed, enumerable: false });
      }
      throw error;
    }
  };
  client.middlewareStack.add(naming, { step: 'build', priority: 'high', name: 'rekeyNameFailedOperation' });
}

/**
 * The message for `error` when it is the SDK's failure to read an error answer that is not the
 * service's protocol, from an endpoint that is not AWS, on a call made through a client
 * `nameOperationOnFailure` prepared; otherwise undefined (the error is reported as it is).
 */
export function unsupportedOperationMessage(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const failed = (error as Error & { [FAILED_OPERATION]?: FailedOperation })[FAILED_OPERATION];
  if (!failed || AWS_HOST.test(failed.hostname)) return undefined;
  // The SDK attaches the raw answer ($response, hidden) to the error of a response it could not
  // parse; an answer it could parse becomes a service exception, which has $fault.
  const parseFailure = error as Error & {
    $fault?: unknown;
    $response?: { statusCode?: number; headers?: Record<string, string> };
  };
  const response = parseFailure.$response;
  if (parseFailure.$fault !== undefined || response?.statusCode === undefined || response.statusCode < 400)
    return undefined;
  const contentType = Object.entries(response.headers ?? {}).find(
    ([name]) => name.toLowerCase() === 'content-type',
  )?.[1];
  const answer = `HTTP ${response.statusCode}${contentType ? ` ${contentType.split(';')[0]}` : ''}`;
  const name = `${failed.service} ${failed.operation}`;
  const off = OPERATION_SWITCHES[name];
  return (
    `the endpoint ${failed.endpoint} does not implement ${name} (it answered ${answer}, not ${failed.service}'s protocol)` +
    (off ? `; turn that call off with ${off}` : '; this command cannot run there without it')
  );
}
