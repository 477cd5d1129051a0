import { loadEnv } from '../../../contract/env.ts';
import { STEPS } from '../../../contract/functions.ts';
import { CleanupInput } from '../../../contract/schemas.ts';
import { dynamodb } from '../../shared/clients/dynamodb.ts';
import { iam } from '../../shared/clients/iam.ts';
import { secretsManager } from '../../shared/clients/secrets-manager.ts';
import { systemClock } from '../../shared/clock.ts';
import { makeHandler } from '../../shared/handler.ts';
import { cleanUp, requestOf } from './cleanup.ts';

const env = loadEnv(STEPS.cleanup.env);
const lock = { dynamodb, table: env.REKEY_LOCK_TABLE };

// The account is the ended execution's: its input names it (the event carries that input).
export const handler = makeHandler(
  CleanupInput,
  (input) => cleanUp({ iam, secretsManager, lock, clock: systemClock, env }, input),
  { member: 'cleanup', accountOf: (input) => requestOf(input.input)?.accountId },
);
