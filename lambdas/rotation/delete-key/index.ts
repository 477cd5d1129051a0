import { loadEnv } from '../../../contract/env.ts';
import { STEPS } from '../../../contract/functions.ts';
import { DeleteKeyInput } from '../../../contract/schemas.ts';
import { iam } from '../../shared/clients/iam.ts';
import { systemClock } from '../../shared/clock.ts';
import { makeHandler } from '../../shared/handler.ts';
import { deleteKey } from './delete-key.ts';

const env = loadEnv(STEPS['delete-key'].env);

export const handler = makeHandler(
  DeleteKeyInput,
  (input) => deleteKey({ iam, clock: systemClock, env }, input),
  { member: 'delete-key' },
);
