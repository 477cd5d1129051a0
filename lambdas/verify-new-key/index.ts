import { iam } from '../shared/clients/iam.ts';
import { secretsManager } from '../shared/clients/secrets-manager.ts';
import { stsClientFor } from '../shared/clients/sts.ts';
import { systemClock } from '../shared/clock.ts';
import { verifyNewKey } from '../shared/domain/verify.ts';
import { loadEnv } from '../shared/env.ts';
import { makeHandler } from '../shared/handler.ts';
import { VerifyNewKeyInput } from '../shared/schemas.ts';
import { STEPS } from '../shared/steps.ts';

const env = loadEnv(STEPS['verify-new-key'].env);

export const handler = makeHandler(VerifyNewKeyInput, (state) =>
  verifyNewKey({ iam, secretsManager, stsFor: stsClientFor, clock: systemClock, env }, state),
);
