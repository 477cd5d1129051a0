import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { CLIENT_CONFIG } from './config.ts';
import { bindToInvocations } from './invocation.ts';

/** Module scope: one client per container, exported so unit tests can `mockClient()` it. */
export const eventBridge = new EventBridgeClient(CLIENT_CONFIG);
bindToInvocations(eventBridge, 'events');
