import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { clientConfig } from './config.ts';
import { bindToInvocations } from './invocation.ts';

/** Module scope: one client per container, exported so unit tests can `mockClient()` it. */
export const eventBridge = new EventBridgeClient(clientConfig('events'));
bindToInvocations(eventBridge, 'events');
