import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { CLIENT_CONFIG } from './config.ts';
import { bindToInvocations } from './invocation.ts';

/** Module scope: one client per container, exported so unit tests can `mockClient()` it. */
export const cloudTrail = new CloudTrailClient(CLIENT_CONFIG);
bindToInvocations(cloudTrail, 'cloudtrail');
