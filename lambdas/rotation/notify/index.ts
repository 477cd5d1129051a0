import { loadEnv } from '../../../contract/env.ts';
import { STEPS } from '../../../contract/functions.ts';
import { NotifyInput } from '../../../contract/schemas.ts';
import { dynamodb } from '../../shared/clients/dynamodb.ts';
import { eventBridge } from '../../shared/clients/event-bridge.ts';
import { sns } from '../../shared/clients/sns.ts';
import { systemClock } from '../../shared/clock.ts';
import { makeHandler } from '../../shared/handler.ts';
import { notify } from './notify.ts';

const env = loadEnv(STEPS.notify.env);
const lock = { dynamodb, table: env.REKEY_LOCK_TABLE };

export const handler = makeHandler(NotifyInput, (input) =>
  notify({ sns, eventBridge, lock, clock: systemClock, env }, input),
);
