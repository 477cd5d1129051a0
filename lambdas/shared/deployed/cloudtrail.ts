/** The opt-in bundle of the CloudTrail lookup (facade.ts): the real client and commands. */
import { LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import { cloudTrail as client } from '../clients/cloudtrail.ts';
import { facadeClient } from './facade.ts';

export const cloudTrail = facadeClient(client, { LookupEventsCommand });
