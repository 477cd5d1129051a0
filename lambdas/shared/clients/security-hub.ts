import { SecurityHubClient } from '@aws-sdk/client-securityhub';
import { clientConfig } from './config.ts';
import { bindToInvocations } from './invocation.ts';

/** Module scope: one client per container, exported so unit tests can `mockClient()` it. */
export const securityHub = new SecurityHubClient(clientConfig('securityhub'));
bindToInvocations(securityHub, 'securityhub');
