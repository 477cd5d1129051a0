/**
 * IAM paginators the SDK does not generate. ListServiceSpecificCredentials pages with Marker /
 * MaxItems like every IAM list (since it gained AllUsers), but @aws-sdk/client-iam ships no
 * paginator for it; this one is built with the SDK's own factory, exactly as the generated ones
 * are (`paginateListAccessKeys` is `createPaginator(IAMClient, ListAccessKeysCommand, "Marker",
 * "Marker", "MaxItems")`). The workflow (one user's credentials) and the audit (every user's) both
 * use it.
 */
import {
  IAMClient,
  type IAMPaginationConfiguration,
  ListServiceSpecificCredentialsCommand,
  type ListServiceSpecificCredentialsCommandInput,
  type ListServiceSpecificCredentialsCommandOutput,
} from '@aws-sdk/client-iam';
import { createPaginator } from '@smithy/core';

export const paginateListServiceSpecificCredentials = createPaginator<
  IAMPaginationConfiguration,
  ListServiceSpecificCredentialsCommandInput,
  ListServiceSpecificCredentialsCommandOutput
>(IAMClient, ListServiceSpecificCredentialsCommand, 'Marker', 'Marker', 'MaxItems');
