import { iam } from '../shared/clients/iam.ts';
import { secretsManager } from '../shared/clients/secrets-manager.ts';
import { stsClientFor } from '../shared/clients/sts.ts';
import { systemClock } from '../shared/clock.ts';
import { verifyRotation } from '../shared/domain/verify.ts';
import { loadEnv } from '../shared/env.ts';
import { makeHandler } from '../shared/handler.ts';
import { VerifyRotationInput } from '../shared/schemas.ts';
import { STEPS } from '../shared/steps.ts';

const env = loadEnv(STEPS['verify-rotation'].env);

export const handler = makeHandler(VerifyRotationInput, (state) =>
  verifyRotation({ iam, secretsManager, stsFor: stsClientFor, clock: systemClock, env }, state),
);
