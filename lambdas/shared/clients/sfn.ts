import { SFNClient } from '@aws-sdk/client-sfn';
import { clientConfig } from './config.ts';
import { bindToInvocations } from './invocation.ts';

/** Module scope: one client per container, exported so unit tests can `mockClient()` it. */
export const sfn = new SFNClient(clientConfig('states'));
bindToInvocations(sfn, 'states');
