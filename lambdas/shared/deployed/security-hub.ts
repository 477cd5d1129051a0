/** The opt-in bundle of the Security Hub import (facade.ts): the real client and commands. */
import { BatchImportFindingsCommand, paginateGetFindings } from '@aws-sdk/client-securityhub';
import { securityHub as client } from '../clients/security-hub.ts';
import { facadeClient } from './facade.ts';

export const securityHub = facadeClient(client, { BatchImportFindingsCommand, paginateGetFindings });
