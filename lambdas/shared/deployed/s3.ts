/** The opt-in bundle of the audit's report upload (facade.ts): the real client and command. */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { s3 as client } from '../clients/s3.ts';
import { facadeClient } from './facade.ts';

export const s3 = facadeClient(client, { PutObjectCommand });
