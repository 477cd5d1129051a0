import { loadEnv } from '../../../contract/env.ts';
import { STEPS } from '../../../contract/functions.ts';
import { VerifyRotationInput } from '../../../contract/schemas.ts';
import { iam } from '../../shared/clients/iam.ts';
import { secretsManager } from '../../shared/clients/secrets-manager.ts';
import { stsClientFor } from '../../shared/clients/sts.ts';
import { systemClock } from '../../shared/clock.ts';
import { makeHandler } from '../../shared/handler.ts';
import { verifyRotation } from './verify-rotation.ts';

const env = loadEnv(STEPS['verify-rotation'].env);

export const handler = makeHandler(
  VerifyRotationInput,
  (state) => verifyRotation({ iam, secretsManager, stsFor: stsClientFor, clock: systemClock, env }, state),
  { member: 'verify-rotation' },
);
