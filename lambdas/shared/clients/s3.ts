import { S3Client } from '@aws-sdk/client-s3';
import { CLIENT_CONFIG } from './config.ts';
import { bindToInvocations } from './invocation.ts';

/**
 * Module scope: one client per container, exported so unit tests can `mockClient()` it. Only the
 * audit's report upload uses it, loaded when that is on (lambdas/shared/opt-in.ts).
 */
export const s3 = new S3Client(CLIENT_CONFIG);
bindToInvocations(s3, 's3');
