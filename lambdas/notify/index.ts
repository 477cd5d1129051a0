import { dynamodb } from '../shared/clients/dynamodb.ts';
import { eventBridge } from '../shared/clients/event-bridge.ts';
import { sns } from '../shared/clients/sns.ts';
import { systemClock } from '../shared/clock.ts';
import { notify } from '../shared/domain/notify.ts';
import { loadEnv } from '../shared/env.ts';
import { makeHandler } from '../shared/handler.ts';
import { NotifyInput } from '../shared/schemas.ts';
import { STEPS } from '../shared/steps.ts';

const env = loadEnv(STEPS.notify.env);
const lock = { dynamodb, table: env.REKEY_LOCK_TABLE };

export const handler = makeHandler(NotifyInput, (input) =>
  notify({ sns, eventBridge, lock, clock: systemClock, env }, input),
);
