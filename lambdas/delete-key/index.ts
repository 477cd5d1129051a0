import { iam } from '../shared/clients/iam.ts';
import { systemClock } from '../shared/clock.ts';
import { deleteKey } from '../shared/domain/lifecycle.ts';
import { loadEnv } from '../shared/env.ts';
import { makeHandler } from '../shared/handler.ts';
import { DeleteKeyInput } from '../shared/schemas.ts';
import { STEPS } from '../shared/steps.ts';

const env = loadEnv(STEPS['delete-key'].env);

export const handler = makeHandler(DeleteKeyInput, (input) =>
  deleteKey({ iam, clock: systemClock, env }, input),
);
