/**
 * The kinds of credential the workflow rotates, behind one interface: a user's access keys, and
 * its service-specific credentials for one service (Amazon Keyspaces, CodeCommit). Both have the
 * same lifecycle (at most two per user, resp. per user and service; Active/Inactive; delete), so
 * the steps hold the rotation logic once and ask the kind only for the IAM calls and the words.
 *
 * What differs, and why the safety rules still hold for service-specific credentials:
 * - IAM keeps no last-used data for them (`lastUse` answers `untracked`). Every "was it used?"
 *   check therefore finds no use: the adoption wait is what the rotation relies on before
 *   deactivating, and the wait before deleting is the window in which a consumer that still
 *   held the old password fails, is noticed, and the credential can be reactivated.
 * - An extra Inactive credential is never deleted: no one can show it was never used (the plan
 *   stops with InactiveUsageUnknown and leaves it to a human).
 * - An orphan of a crashed create step was never stored: nobody holds its password.
 */
import {
  CreateAccessKeyCommand,
  CreateServiceSpecificCredentialCommand,
  DeleteServiceSpecificCredentialCommand,
  type IAMClient,
  type StatusType,
  UpdateAccessKeyCommand,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { isAwsError, UnexpectedKeyState } from '../../contract/errors.ts';
import type { ServiceName } from '../../contract/schemas.ts';
import { paginateListServiceSpecificCredentials } from './iam-paginators.ts';
import {
  type AccessKeyInfo,
  deleteAccessKey,
  getLastUse,
  iso,
  type LastUse,
  listAccessKeys,
} from './keys.ts';
import type { StoredCredential } from './secret.ts';

/** A credential just created, with what goes into its secret (the secret never leaves the create step). */
export interface CreatedCredential {
  id: string;
  createDate: Date;
  /** A service-specific credential's user name (not a secret). */
  serviceUserName?: string;
  value: StoredCredential;
}

/** The IAM calls and the words for one kind of credential. `id` is an access key id or a ServiceSpecificCredentialId. */
export interface CredentialKind {
  /** Present for service-specific credentials of one service. */
  readonly serviceName?: ServiceName;
  /** "access key" / "service-specific credential for cassandra.amazonaws.com". */
  readonly noun: string;
  /** "access keys" / "service-specific credentials for cassandra.amazonaws.com". */
  readonly plural: string;
  /** Whether IAM records when a credential was last used. */
  readonly tracksLastUse: boolean;
  list(userName: string): Promise<AccessKeyInfo[]>;
  lastUse(id: string): Promise<LastUse>;
  /** Creates a credential; `now` stands in for a creation date IAM did not return. */
  create(userName: string, now: Date): Promise<CreatedCredential>;
  setStatus(userName: string, id: string, status: 'Active' | 'Inactive'): Promise<void>;
  remove(userName: string, id: string): Promise<void>;
}

export function accessKeys(iam: IAMClient): CredentialKind {
  return {
    noun: 'access key',
    plural: 'access keys',
    tracksLastUse: true,
    list: (userName) => listAccessKeys(iam, userName),
    lastUse: (id) => getLastUse(iam, id),
    async create(userName, now) {
      const created = (await iam.send(new CreateAccessKeyCommand({ UserName: userName }))).AccessKey;
      if (!created?.AccessKeyId || !created.SecretAccessKey) {
        throw new UnexpectedKeyState('CreateAccessKey returned no key');
      }
      const createDate = created.CreateDate ?? now;
      return {
        id: created.AccessKeyId,
        createDate,
        value: {
          Version: 1,
          AccessKeyId: created.AccessKeyId,
          SecretAccessKey: created.SecretAccessKey,
          UserName: userName,
          CreateDate: iso(createDate),
        },
      };
    },
    async setStatus(userName, id, status) {
      await iam.send(new UpdateAccessKeyCommand({ UserName: userName, AccessKeyId: id, Status: status }));
    },
    remove: (userName, id) => deleteAccessKey(iam, userName, id),
  };
}

/** IAM has no last-used API for service-specific credentials: unknown, never "unused". */
export const NO_LAST_USE_DATA: LastUse = { date: null, service: null, region: null, untracked: true };

/**
 * The user's service-specific credentials for `serviceName`; without it, for every service (the
 * delete step knows only a credential's id, and Update/Delete need no service name).
 */
export function serviceCredentials(iam: IAMClient, serviceName?: ServiceName): CredentialKind {
  const noun = serviceName ? `service-specific credential for ${serviceName}` : 'service-specific credential';
  return {
    ...(serviceName ? { serviceName } : {}),
    noun,
    plural: noun.replace('credential', 'credentials'),
    tracksLastUse: false,
    async list(userName) {
      const found: AccessKeyInfo[] = [];
      const input = { UserName: userName, ...(serviceName ? { ServiceName: serviceName } : {}) };
      for await (const page of paginateListServiceSpecificCredentials({ client: iam }, input)) {
        for (const c of page.ServiceSpecificCredentials ?? []) {
          if (!c.ServiceSpecificCredentialId || !c.CreateDate) continue;
          found.push({
            accessKeyId: c.ServiceSpecificCredentialId,
            status: (c.Status ?? 'Unknown') as StatusType | string,
            createDate: c.CreateDate,
            ...(c.ServiceUserName ? { serviceUserName: c.ServiceUserName } : {}),
          });
        }
      }
      return found;
    },
    lastUse: async () => NO_LAST_USE_DATA,
    async create(userName, now) {
      if (!serviceName) throw new UnexpectedKeyState('a service-specific credential needs a service name');
      const out = await iam.send(
        new CreateServiceSpecificCredentialCommand({ UserName: userName, ServiceName: serviceName }),
      );
      const c = out.ServiceSpecificCredential;
      if (!c?.ServiceSpecificCredentialId || !c.ServicePassword || !c.ServiceUserName) {
        throw new UnexpectedKeyState('CreateServiceSpecificCredential returned no credential');
      }
      const createDate = c.CreateDate ?? now;
      return {
        id: c.ServiceSpecificCredentialId,
        createDate,
        serviceUserName: c.ServiceUserName,
        value: {
          ServiceUserName: c.ServiceUserName,
          ServicePassword: c.ServicePassword,
          ServiceSpecificCredentialId: c.ServiceSpecificCredentialId,
          ServiceName: serviceName,
          UserName: userName,
          CreateDate: iso(createDate),
        },
      };
    },
    async setStatus(userName, id, status) {
      await iam.send(
        new UpdateServiceSpecificCredentialCommand({
          UserName: userName,
          ServiceSpecificCredentialId: id,
          Status: status,
        }),
      );
    },
    async remove(userName, id) {
      try {
        await iam.send(
          new DeleteServiceSpecificCredentialCommand({ UserName: userName, ServiceSpecificCredentialId: id }),
        );
      } catch (error) {
        // As for access keys: an SDK retry of a delete whose response was lost finds it gone.
        if (!isAwsError(error, 'NoSuchEntity', 'NoSuchEntityException')) throw error;
      }
    },
  };
}

/** The kind a state document describes: its `serviceName` is the discriminator. */
export function credentialKind(iam: IAMClient, serviceName: ServiceName | undefined): CredentialKind {
  return serviceName ? serviceCredentials(iam, serviceName) : accessKeys(iam);
}

/**
 * IAM's unique-id prefix of service-specific ("context-specific") credentials. Access key ids
 * start with AKIA (long-term) or ASIA (temporary), never with this.
 */
export const SERVICE_CREDENTIAL_ID_PREFIX = 'ACCA';

/**
 * The kind of a credential known only by its id: the delete step's payload names the user and
 * the id (the state machine passes the same three fields for both kinds).
 */
export function credentialKindOfId(iam: IAMClient, id: string): CredentialKind {
  return id.startsWith(SERVICE_CREDENTIAL_ID_PREFIX) ? serviceCredentials(iam) : accessKeys(iam);
}
