import { loadEnv } from '../../../contract/env.ts';
import { STEPS } from '../../../contract/functions.ts';
import { VerifyNewKeyInput } from '../../../contract/schemas.ts';
import { iam } from '../../shared/clients/iam.ts';
import { secretsManager } from '../../shared/clients/secrets-manager.ts';
import { stsClientFor } from '../../shared/clients/sts.ts';
import { systemClock } from '../../shared/clock.ts';
import { makeHandler } from '../../shared/handler.ts';
import { verifyNewKey } from './verify-new-key.ts';

const env = loadEnv(STEPS['verify-new-key'].env);

export const handler = makeHandler(
  VerifyNewKeyInput,
  (state) => verifyNewKey({ iam, secretsManager, stsFor: stsClientFor, clock: systemClock, env }, state),
  { member: 'verify-new-key' },
);
