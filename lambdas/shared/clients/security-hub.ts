import { SecurityHubClient } from '@aws-sdk/client-securityhub';
import { CLIENT_CONFIG } from './config.ts';
import { bindToInvocations } from './invocation.ts';

/** Module scope: one client per container, exported so unit tests can `mockClient()` it. */
export const securityHub = new SecurityHubClient(CLIENT_CONFIG);
bindToInvocations(securityHub, 'securityhub');
