import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { clientConfig } from './config.ts';
import { bindToInvocations } from './invocation.ts';

/** Module scope: one client per container, exported so unit tests can `mockClient()` it. */
export const secretsManager = new SecretsManagerClient(clientConfig('secretsmanager'));
bindToInvocations(secretsManager, 'secretsmanager');
