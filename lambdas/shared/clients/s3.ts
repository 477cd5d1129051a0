import { S3Client } from '@aws-sdk/client-s3';
import { clientConfig } from './config.ts';
import { bindToInvocations } from './invocation.ts';

/**
 * Module scope: one client per container, exported so unit tests can `mockClient()` it. Only the
 * audit's report upload uses it, loaded when that is on (lambdas/shared/opt-in.ts).
 */
export const s3 = new S3Client(clientConfig('s3'));
bindToInvocations(s3, 's3');
