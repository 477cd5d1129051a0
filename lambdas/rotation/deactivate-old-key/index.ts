import { loadEnv } from '../../../contract/env.ts';
import { STEPS } from '../../../contract/functions.ts';
import { DeactivateInput } from '../../../contract/schemas.ts';
import { iam } from '../../shared/clients/iam.ts';
import { systemClock } from '../../shared/clock.ts';
import { makeHandler } from '../../shared/handler.ts';
import { deactivateOldKey } from './deactivate-old-key.ts';

const env = loadEnv(STEPS['deactivate-old-key'].env);

export const handler = makeHandler(
  DeactivateInput,
  (state) => deactivateOldKey({ iam, clock: systemClock, env }, state),
  { member: 'deactivate-old-key' },
);
