import { SNSClient } from '@aws-sdk/client-sns';
import { clientConfig } from './config.ts';
import { bindToInvocations } from './invocation.ts';

/** Module scope: one client per container, exported so unit tests can `mockClient()` it. */
export const sns = new SNSClient(clientConfig('sns'));
bindToInvocations(sns, 'sns');
