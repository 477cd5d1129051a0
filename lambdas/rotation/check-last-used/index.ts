import type { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { loadEnv } from '../../../contract/env.ts';
import { STEPS } from '../../../contract/functions.ts';
import { CheckLastUsedInput } from '../../../contract/schemas.ts';
import { iam } from '../../shared/clients/iam.ts';
import { systemClock } from '../../shared/clock.ts';
import { makeHandler } from '../../shared/handler.ts';
import { loadOptInClient, switchedOff } from '../../shared/opt-in.ts';
import { checkLastUsed } from './check-last-used.ts';

const env = loadEnv(STEPS['check-last-used'].env);
// The CloudTrail client (a bundle of its own, deployed) only when the lookup is on.
const cloudTrail = env.REKEY_CLOUDTRAIL_LOOKUP
  ? (await loadOptInClient('cloudtrail')).cloudTrail
  : switchedOff<CloudTrailClient>('cloudTrailLookup');

export const handler = makeHandler(
  CheckLastUsedInput,
  (state) => checkLastUsed({ iam, cloudTrail, clock: systemClock, env }, state),
  { member: 'check-last-used' },
);
