import { IAMClient } from '@aws-sdk/client-iam';
import { clientConfig } from './config.ts';
import { bindToInvocations } from './invocation.ts';

/** Module scope: one client per container, exported so unit tests can `mockClient()` it. */
export const iam = new IAMClient(clientConfig('iam'));
bindToInvocations(iam, 'iam');
