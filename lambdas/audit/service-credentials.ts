/**
 * The service-specific credentials (Amazon Keyspaces, CodeCommit) of every user, for the audit.
 *
 * ListServiceSpecificCredentials with `AllUsers: true` lists the credentials of all the account's
 * users for the `ServiceName` given, paginated with Marker / MaxItems like every IAM list: one
 * pass per service in SERVICE_NAMES costs O(pages) calls, not a call per user. It cannot filter by
 * user path or tag, so the audit's scope (path, opt-in tag, protected users, exemptions) is applied
 * afterwards, by the same code as for access keys (findings.ts, actions.ts `refusal`).
 * The pages come from the IAM paginator the SDK does not generate (lambdas/shared/iam-paginators.ts).
 *
 * The answer holds no secret: ServiceSpecificCredentialMetadata has no password or API key.
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import { SERVICE_NAMES, type ServiceName } from '../../contract/schemas.ts';
import { paginateListServiceSpecificCredentials } from '../shared/iam-paginators.ts';
import type { CallCounter } from './calls.ts';
import type { ServiceCredential } from './findings.ts';

/** The largest page IAM's list operations allow. */
const PAGE_SIZE = 1000;

export interface ServiceCredentialsDeps {
  iam: IAMClient;
  calls: CallCounter;
}

/**
 * Every service-specific credential of every user for `services`, one paginated pass per service.
 * An error (AccessDenied included) is thrown, never skipped: an audit that silently missed a kind
 * of credential would report a clean account.
 */
export async function listServiceCredentials(
  deps: ServiceCredentialsDeps,
  services: readonly ServiceName[] = SERVICE_NAMES,
): Promise<ServiceCredential[]> {
  const found: ServiceCredential[] = [];
  for (const serviceName of services) {
    const pages = paginateListServiceSpecificCredentials(
      { client: deps.iam, pageSize: PAGE_SIZE },
      { AllUsers: true, ServiceName: serviceName },
    );
    try {
      for await (const page of pages) {
        deps.calls.add('ListServiceSpecificCredentials');
        for (const c of page?.ServiceSpecificCredentials ?? []) {
          // Asked for one service: anything else (an emulator ignoring the filter) is not this pass's.
          if (c.ServiceName !== serviceName || !c.UserName || !c.ServiceSpecificCredentialId || !c.CreateDate)
            continue;
          found.push({
            userName: c.UserName,
            serviceName,
            serviceSpecificCredentialId: c.ServiceSpecificCredentialId,
            status: c.Status ?? 'Unknown',
            createDate: c.CreateDate,
          });
        }
      }
    } catch (error) {
      // The request that failed was sent too.
      deps.calls.add('ListServiceSpecificCredentials');
      throw error;
    }
  }
  return found;
}
