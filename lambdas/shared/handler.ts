/**
 * The one way to build a rekey Lambda handler: a middy chain that adds the Lambda context to
 * every log line, validates the payload against the step's schema, calls the named step
 * function, and logs failures by name and message only (an SDK error's full object can echo
 * request parameters, so it is never logged whole).
 */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import * as z from 'zod/mini';
import { errorName, InvalidPayload } from '../../contract/errors.ts';
import { logger } from './logger.ts';

export type StepHandler<R> = (event: unknown, context: Context) => Promise<R>;

export function makeHandler<S extends z.core.$ZodType, R>(
  schema: S,
  step: (input: z.infer<S>) => Promise<R>,
): StepHandler<R> {
  const validated = async (event: unknown): Promise<R> => {
    const parsed = z.safeParse(schema, event);
    if (!parsed.success) throw new InvalidPayload(z.prettifyError(parsed.error));
    return step(parsed.data);
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
