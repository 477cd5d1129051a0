/**
 * An AWS Organization in the local emulator (moto 5.2.1), for the workflow tests, `rekey demo` and
 * the bench: the emulator's default account as the management account (rekey's hub), member
 * accounts made with CreateAccount, organizational units with accounts moved into them, an
 * administrator user in each member account, and, given rekey's deployed roles
 * (cli/deployed-roles.ts), each member account's member roles made from the member template and,
 * with `secrets: member`, its member secrets key (MEMBER_SECRETS_KEY_ALIAS).
 *
 * How moto lets a caller into another account with request signing on is measured in
 * docs/testing.md ("Several accounts in the emulator"): a request acts in the account its access
 * key belongs to; the `x-moto-account-id` header makes moto look the key up in that account, so a
 * hub key with it is refused (InvalidClientTokenId); and the OrganizationAccountAccessRole moto
 * makes in each new account has no policy, so it may do nothing. Hence each member account gets
 * an administrator of its own, made while signing is still off (the header picks the account),
 * and every later call into the account signs as that administrator.
 */

import { IAMClient } from '@aws-sdk/client-iam';
import { CreateAliasCommand, CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import {
  CloseAccountCommand,
  CreateAccountCommand,
  CreateOrganizationalUnitCommand,
  CreateOrganizationCommand,
  ListRootsCommand,
  MoveAccountCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { STSClient } from '@aws-sdk/client-sts';
import { MEMBER_SECRETS_KEY_ALIAS, type SecretsLocation } from '../contract/organization.ts';
import { type Credentials, createAdmin } from './demo-seed.ts';
import type { DeployedRoles, EmulatorOrganization } from './deployed-roles.ts';

/** Any key id and secret: what moto accepts while request signing is off. */
const ANYBODY = { accessKeyId: 'testing', secretAccessKey: 'testing' };

/** One account of the organization, with its administrator's clients (they act in that account). */
export interface OrganizationAccount {
  accountId: string;
  name: string;
  /** The OU it was moved into (`ou-...`), or the root (`r-...`). */
  parentId: string;
  /** Its administrator's key: a user with `*` on `*` in that account. */
  credentials: Credentials;
  iam: IAMClient;
  secrets: SecretsManagerClient;
  kms: KMSClient;
  sts: STSClient;
  /** Its member secrets key (MEMBER_SECRETS_KEY_ALIAS), with `secrets: member`; none in the hub. */
  memberKeyArn?: string;
}

export interface MemberAccountSpec {
  /** @default `member-<n>` (n from 1) */
  name?: string;
  /** The name of one of `organizationalUnits` to move it into. @default the root */
  organizationalUnit?: string;
}

export interface SeedOrganizationOptions {
  endpoint: string;
  region: string;
  /** The emulator default account's administrator: the management account, rekey's hub. */
  admin: Credentials;
  /** The member accounts: how many, or each one's name and OU. */
  members: number | readonly MemberAccountSpec[];
  /**
   * Organizational units to create, by name: under the root, or under another of them with
   * `parent/child` (e.g. `workloads`, `workloads/prod`).
   */
  organizationalUnits?: readonly string[];
  /** Where member secrets live; with `member` each member account gets the member secrets key. @default 'member' */
  secrets?: SecretsLocation;
}

export interface SeededOrganization {
  organizationId: string;
  rootId: string;
  /** The hub, the emulator's default account (the management account here). */
  hub: OrganizationAccount;
  /** The member accounts, in the order of `members`. */
  members: OrganizationAccount[];
  /** The hub, then the members. */
  accounts: OrganizationAccount[];
  /** OU ids by the names given in `organizationalUnits`. */
  organizationalUnits: Record<string, string>;
  /** The organization for connectEmulator (cli/deployed-roles.ts): each member's administrator. */
  emulatorOrganization(): EmulatorOrganization;
  /**
   * Makes the member roles of `roles`' member template in every member account, but those listed
   * in `except` (account id -> Lambdas): how a test makes one account lack one member role.
   * Returns the ARNs of the roles made.
   */
  installMemberRoles(
    roles: DeployedRoles,
    options?: { except?: Readonly<Record<string, readonly string[]>> },
  ): Promise<string[]>;
  /** CloseAccount: moto marks the account SUSPENDED at once (Status and State). */
  suspend(accountId: string): Promise<void>;
  /** Releases every client. */
  close(): void;
}

/**
 * Creates the organization with the hub as its management account, its OUs and member accounts.
 * Request signing must still be off (moto's default): each member account's administrator is
 * made then; everything after works with signing on.
 */
export async function seedOrganization(options: SeedOrganizationOptions): Promise<SeededOrganization> {
  const { endpoint, region } = options;
  const base = { endpoint, region, maxAttempts: 3 };
  const specs: MemberAccountSpec[] =
    typeof options.members === 'number'
      ? Array.from({ length: options.members }, () => ({}))
      : [...options.members];
  const organizations = new OrganizationsClient({ ...base, credentials: options.admin });
  const clients: Array<{ destroy(): void }> = [organizations];
  const clientsOf = (accountId: string, name: string, parentId: string, credentials: Credentials) => {
    const config = { ...base, credentials };
    const account: OrganizationAccount = {
      accountId,
      name,
      parentId,
      credentials,
      iam: new IAMClient(config),
      secrets: new SecretsManagerClient(config),
      kms: new KMSClient(config),
      sts: new STSClient(config),
    };
    clients.push(account.iam, account.secrets, account.kms, account.sts);
    return account;
  };
  try {
    const organization = (await organizations.send(new CreateOrganizationCommand({ FeatureSet: 'ALL' })))
      .Organization;
    const organizationId = organization?.Id;
    const hubId = organization?.MasterAccountId;
    const rootId = (await organizations.send(new ListRootsCommand({}))).Roots?.[0]?.Id;
    if (!organizationId || !hubId || !rootId) throw new Error('CreateOrganization answered no organization');

    const organizationalUnits: Record<string, string> = {};
    for (const path of options.organizationalUnits ?? []) {
      const slash = path.lastIndexOf('/');
      const parentName = slash < 0 ? undefined : path.slice(0, slash);
      const parentId = parentName === undefined ? rootId : organizationalUnits[parentName];
      if (!parentId)
        throw new Error(`organizational unit ${path}: its parent ${parentName} is not listed before it`);
      const made = await organizations.send(
        new CreateOrganizationalUnitCommand({ ParentId: parentId, Name: path.slice(slash + 1) }),
      );
      const id = made.OrganizationalUnit?.Id;
      if (!id) throw new Error(`CreateOrganizationalUnit ${path} answered no id`);
      organizationalUnits[path] = id;
    }

    const members: OrganizationAccount[] = [];
    for (const [index, spec] of specs.entries()) {
      const name = spec.name ?? `member-${index + 1}`;
      const status = (
        await organizations.send(
          new CreateAccountCommand({ AccountName: name, Email: `${name}@example.com` }),
        )
      ).CreateAccountStatus;
      const accountId = status?.AccountId;
      if (!accountId || status?.State !== 'SUCCEEDED') {
        throw new Error(`CreateAccount ${name} did not succeed: ${JSON.stringify(status)}`);
      }
      let parentId = rootId;
      if (spec.organizationalUnit !== undefined) {
        const ou = organizationalUnits[spec.organizationalUnit];
        if (!ou) throw new Error(`account ${name}: no organizational unit ${spec.organizationalUnit}`);
        await organizations.send(
          new MoveAccountCommand({ AccountId: accountId, SourceParentId: rootId, DestinationParentId: ou }),
        );
        parentId = ou;
      }
      members.push(clientsOf(accountId, name, parentId, await accountAdmin(base, accountId)));
    }
    if ((options.secrets ?? 'member') === 'member') {
      for (const member of members) member.memberKeyArn = await createMemberKey(member.kms);
    }
    const hub = clientsOf(hubId, 'hub', rootId, options.admin);
    return {
      organizationId,
      rootId,
      hub,
      members,
      accounts: [hub, ...members],
      organizationalUnits,
      emulatorOrganization: () => ({
        organizationId,
        members: members.map(({ iam, sts, kms }) => ({ iam, sts, kms })),
      }),
      async installMemberRoles(roles, { except = {} } = {}) {
        const made: string[] = [];
        for (const member of members) {
          const lacking = except[member.accountId] ?? [];
          made.push(...(await roles.installMemberRoles(member.accountId, { except: lacking })));
        }
        return made;
      },
      async suspend(accountId) {
        await organizations.send(new CloseAccountCommand({ AccountId: accountId }));
      },
      close() {
        for (const client of clients) client.destroy();
      },
    };
  } catch (error) {
    for (const client of clients) client.destroy();
    throw error;
  }
}

/**
 * An administrator user in a member account, made while signing is off: moto then takes the
 * account from the `x-moto-account-id` header. Its key works with signing on (moto finds the
 * account by the key).
 */
async function accountAdmin(
  base: { endpoint: string; region: string },
  accountId: string,
): Promise<Credentials> {
  const bootstrap = new IAMClient({ ...base, credentials: ANYBODY, maxAttempts: 3 });
  bootstrap.middlewareStack.add(
    (next) => async (args) => {
      (args.request as { headers: Record<string, string> }).headers['x-moto-account-id'] = accountId;
      return next(args);
    },
    { step: 'build', name: 'motoAccountId' },
  );
  try {
    return await createAdmin(bootstrap);
  } finally {
    bootstrap.destroy();
  }
}

/** The member stack's secrets key of an account, found by the Lambdas through its alias. */
async function createMemberKey(kms: KMSClient): Promise<string> {
  const key = (
    await kms.send(
      new CreateKeyCommand({
        Description: 'rekey member secrets key (the member stack makes it when deployed)',
      }),
    )
  ).KeyMetadata;
  if (!key?.KeyId || !key.Arn) throw new Error('CreateKey answered no key');
  await kms.send(new CreateAliasCommand({ AliasName: MEMBER_SECRETS_KEY_ALIAS, TargetKeyId: key.KeyId }));
  return key.Arn;
}
