/**
 * The one way to build a rekey Lambda handler: a middy chain that adds the Lambda context to
 * every log line, validates the payload against the step's schema, calls the named step
 * function, and logs failures by name and message only (an SDK error's full object can echo
 * request parameters, so it is never logged whole).
 *
 * A step that acts in the account its payload names (`member`) runs inside `inAccount`
 * (lambdas/shared/member-account.ts): in a member account its IAM (and, there, Secrets Manager)
 * calls sign as its member role; in the hub's own account nothing changes.
 */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import * as z from 'zod/mini';
import { errorName, InvalidPayload } from '../../contract/errors.ts';
import type { MemberLambda } from '../../contract/organization.ts';
import { logger } from './logger.ts';
import { inAccount } from './member-account.ts';

export type StepHandler<R> = (event: unknown, context: Context) => Promise<R>;

export interface HandlerOptions<I> {
  /** The step acts in the account the payload names, as this Lambda's member role there. */
  readonly member?: MemberLambda;
  /** The account the payload names. @default its `accountId` field */
  readonly accountOf?: (input: I) => string | undefined;
}

const accountIdOf = (input: unknown): string | undefined => {
  const accountId = (input as { accountId?: unknown } | null)?.accountId;
  return typeof accountId === 'string' ? accountId : undefined;
};

export function makeHandler<S extends z.core.$ZodType, R>(
  schema: S,
  step: (input: z.infer<S>) => Promise<R>,
  options: HandlerOptions<z.infer<S>> = {},
): StepHandler<R> {
  const { member, accountOf = accountIdOf } = options;
  const validated = async (event: unknown): Promise<R> => {
    const parsed = z.safeParse(schema, event);
    if (!parsed.success) throw new InvalidPayload(z.prettifyError(parsed.error));
    const input = parsed.data;
    if (!member) return step(input);
    return inAccount({ accountId: accountOf(input), lambda: member }, () => step(input));
  };
  return middy(validated)
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use({
      onError: async (request) => {
        logger.error('step failed', {
          errorName: errorName(request.error),
          errorMessage: request.error?.message,
        });
      },
    }) as unknown as StepHandler<R>;
}
