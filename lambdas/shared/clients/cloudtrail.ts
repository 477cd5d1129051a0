import { CloudTrailClient } from '@aws-sdk/client-cloudtrail';
import { clientConfig } from './config.ts';
import { bindToInvocations } from './invocation.ts';

/** Module scope: one client per container, exported so unit tests can `mockClient()` it. */
export const cloudTrail = new CloudTrailClient(clientConfig('cloudtrail'));
bindToInvocations(cloudTrail, 'cloudtrail');
