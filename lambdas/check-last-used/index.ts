import { cloudTrail } from '../shared/clients/cloudtrail.ts';
import { iam } from '../shared/clients/iam.ts';
import { systemClock } from '../shared/clock.ts';
import { checkLastUsed } from '../shared/domain/adoption.ts';
import { loadEnv } from '../shared/env.ts';
import { makeHandler } from '../shared/handler.ts';
import { CheckLastUsedInput } from '../shared/schemas.ts';
import { STEPS } from '../shared/steps.ts';

const env = loadEnv(STEPS['check-last-used'].env);

export const handler = makeHandler(CheckLastUsedInput, (state) =>
  checkLastUsed({ iam, cloudTrail, clock: systemClock, env }, state),
);
