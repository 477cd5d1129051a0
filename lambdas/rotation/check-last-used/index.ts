import { loadEnv } from '../../../contract/env.ts';
import { STEPS } from '../../../contract/functions.ts';
import { CheckLastUsedInput } from '../../../contract/schemas.ts';
import { cloudTrail } from '../../shared/clients/cloudtrail.ts';
import { iam } from '../../shared/clients/iam.ts';
import { systemClock } from '../../shared/clock.ts';
import { makeHandler } from '../../shared/handler.ts';
import { checkLastUsed } from './check-last-used.ts';

const env = loadEnv(STEPS['check-last-used'].env);

export const handler = makeHandler(CheckLastUsedInput, (state) =>
  checkLastUsed({ iam, cloudTrail, clock: systemClock, env }, state),
);
