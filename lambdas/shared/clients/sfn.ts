import { SFNClient } from '@aws-sdk/client-sfn';
import { CLIENT_CONFIG } from './config.ts';
import { bindToInvocations } from './invocation.ts';

/** Module scope: one client per container, exported so unit tests can `mockClient()` it. */
export const sfn = new SFNClient(CLIENT_CONFIG);
bindToInvocations(sfn, 'states');
