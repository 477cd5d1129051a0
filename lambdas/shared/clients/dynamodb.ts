import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { clientConfig } from './config.ts';
import { bindToInvocations } from './invocation.ts';

/** Module scope: one client per container, exported so unit tests can `mockClient()` it. */
export const dynamodb = new DynamoDBClient(clientConfig('dynamodb'));
bindToInvocations(dynamodb, 'dynamodb');
