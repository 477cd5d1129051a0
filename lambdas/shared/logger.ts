import { Logger } from '@aws-lambda-powertools/logger';

/**
 * One JSON logger for all of rekey. Log key ids, user names and outcomes; never a secret value,
 * never a whole SDK response of CreateAccessKey or GetSecretValue.
 */
export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'rekey' });
