import { dynamodb } from '../shared/clients/dynamodb.ts';
import { iam } from '../shared/clients/iam.ts';
import { secretsManager } from '../shared/clients/secrets-manager.ts';
import { systemClock } from '../shared/clock.ts';
import { cleanUp } from '../shared/domain/cleanup.ts';
import { loadEnv } from '../shared/env.ts';
import { makeHandler } from '../shared/handler.ts';
import { CleanupInput } from '../shared/schemas.ts';
import { STEPS } from '../shared/steps.ts';

const env = loadEnv(STEPS.cleanup.env);
const lock = { dynamodb, table: env.REKEY_LOCK_TABLE };

export const handler = makeHandler(CleanupInput, (input) =>
  cleanUp({ iam, secretsManager, lock, clock: systemClock, env }, input),
);
