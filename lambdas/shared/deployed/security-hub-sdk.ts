/** `@aws-sdk/client-securityhub` in a main bundle: the values rekey's sources import (facade.ts). */
import { facadeCommand, facadePaginator } from './facade.ts';

export const BatchImportFindingsCommand = facadeCommand('BatchImportFindingsCommand');
export const paginateGetFindings = facadePaginator('paginateGetFindings');
