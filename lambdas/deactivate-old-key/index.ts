import { iam } from '../shared/clients/iam.ts';
import { systemClock } from '../shared/clock.ts';
import { deactivateOldKey } from '../shared/domain/lifecycle.ts';
import { loadEnv } from '../shared/env.ts';
import { makeHandler } from '../shared/handler.ts';
import { DeactivateInput } from '../shared/schemas.ts';
import { STEPS } from '../shared/steps.ts';

const env = loadEnv(STEPS['deactivate-old-key'].env);

export const handler = makeHandler(DeactivateInput, (state) =>
  deactivateOldKey({ iam, clock: systemClock, env }, state),
);
