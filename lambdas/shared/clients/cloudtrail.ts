import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { CLIENT_CONFIG } from './config.ts';

/** Module scope: one client per container, exported so unit tests can `mockClient()` it. */
export const cloudTrail = new CloudTrailClient(CLIENT_CONFIG);
