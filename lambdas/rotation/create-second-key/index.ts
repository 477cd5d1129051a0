import { loadEnv } from '../../../contract/env.ts';
import { STEPS } from '../../../contract/functions.ts';
import { CreateSecondKeyInput } from '../../../contract/schemas.ts';
import { dynamodb } from '../../shared/clients/dynamodb.ts';
import { iam } from '../../shared/clients/iam.ts';
import { secretsManager } from '../../shared/clients/secrets-manager.ts';
import { systemClock } from '../../shared/clock.ts';
import { makeHandler } from '../../shared/handler.ts';
import { createSecondKey } from './create-second-key.ts';

const env = loadEnv(STEPS['create-second-key'].env);
const lock = { dynamodb, table: env.REKEY_LOCK_TABLE };

export const handler = makeHandler(
  CreateSecondKeyInput,
  (state) => createSecondKey({ iam, secretsManager, lock, clock: systemClock, env }, state),
  { member: 'create-second-key' },
);
