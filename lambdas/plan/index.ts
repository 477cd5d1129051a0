import { dynamodb } from '../shared/clients/dynamodb.ts';
import { iam } from '../shared/clients/iam.ts';
import { secretsManager } from '../shared/clients/secrets-manager.ts';
import { systemClock } from '../shared/clock.ts';
import { planRotation } from '../shared/domain/plan.ts';
import { loadEnv } from '../shared/env.ts';
import { makeHandler } from '../shared/handler.ts';
import { PlanInput } from '../shared/schemas.ts';
import { STEPS } from '../shared/steps.ts';

const env = loadEnv(STEPS.plan.env);
const lock = { dynamodb, table: env.REKEY_LOCK_TABLE };

export const handler = makeHandler(PlanInput, (input) =>
  planRotation({ iam, secretsManager, lock, clock: systemClock, env }, input),
);
