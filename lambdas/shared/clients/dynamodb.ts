import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CLIENT_CONFIG } from './config.ts';
import { bindToInvocations } from './invocation.ts';

/** Module scope: one client per container, exported so unit tests can `mockClient()` it. */
export const dynamodb = new DynamoDBClient(CLIENT_CONFIG);
bindToInvocations(dynamodb, 'dynamodb');
