import { SNSClient } from '@aws-sdk/client-sns';
import { CLIENT_CONFIG } from './config.ts';
import { bindToInvocations } from './invocation.ts';

/** Module scope: one client per container, exported so unit tests can `mockClient()` it. */
export const sns = new SNSClient(CLIENT_CONFIG);
bindToInvocations(sns, 'sns');
