/**
 * The IAM table of the rotation steps: each step's role gets exactly the actions its calls need,
 * on the resources rekey owns (users under the path, secrets under the prefix, its lock table,
 * topic and keys), and every role that can change a key also carries the protected users' Deny.
 * The deployed-permission tests (test/workflow/deployed-roles.test.ts) run every step under the
 * role this synthesizes, and remove each action in turn to see a test fail.
 *
 * One table, two consumers (docs/organizations.md): each grant names the place its resource is in
 * (an IAM user, a secret, the lock table, ...), not an ARN. The hub's roles get every grant, on the
 * hub's resources. Each member role of the member stack (infra/member-stack.ts) gets the grants whose
 * place is in the account acted on (memberGrants), on that account's resources; everything else
 * (lock table, topic, bus) stays the hub's.
 */
import { ArnFormat, type Stack, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type { IConstruct } from 'constructs';
import { STEP_NAMES, type StepName } from '../contract/functions.ts';
import {
  isMemberLambda,
  type MemberLambda,
  memberRoleName,
  memberServices,
  type SecretsLocation,
} from '../contract/organization.ts';
import type { OrganizationConfig, RekeyConfig } from './config.ts';
import type { Notifications } from './constructs/notifications.ts';
import type { RekeyFunction } from './constructs/rekey-function.ts';
import { isMutatingKeyAction, MUTATING_CREDENTIAL_ACTIONS, type UserScope } from './user-scope.ts';

/**
 * Where a grant's resource is. In the account acted on: `users` (the users under the path, with
 * the opt-in condition on key changes, UserScope.allow), `everyUser`, `anything` (`*`, actions
 * with no resource type), and, where secrets live in the member account, `secrets` and
 * `secretsKey`. In the hub only: the lock table, the topic and its key, the default event bus,
 * and the organization's accounts and OUs (Organizations answers only the management account or
 * a delegated administrator, never a member role).
 */
export type Place =
  | 'users'
  | 'everyUser'
  | 'anything'
  | 'secrets'
  | 'secretsKey'
  | 'lockTable'
  | 'topic'
  | 'topicKey'
  | 'bus'
  | 'organizationAccounts'
  | 'organizationChildren';

/** One line of the table: actions on the resources of one place. */
export interface Grant {
  readonly actions: readonly string[];
  readonly on: Place;
  /** A KMS key usable only through this service (kms:ViaService). */
  readonly via?: 'secretsmanager' | 'sns';
}

/** The places in the account a request names, by where secrets live. */
function accountPlaces(secrets: SecretsLocation): readonly Place[] {
  const always: Place[] = ['users', 'everyUser', 'anything'];
  return secrets === 'member' ? [...always, 'secrets', 'secretsKey'] : always;
}

/** The service (IAM signing prefix) of a grant's actions: one per grant. */
function serviceOf(grant: Grant): string {
  const services = new Set(grant.actions.map((a) => a.split(':')[0]));
  if (services.size !== 1) throw new Error(`a grant mixes services: ${grant.actions.join(', ')}`);
  return [...services][0] as string;
}

/**
 * The member side of a Lambda's grants: those acting in the account the request names. Each is of
 * a service memberServices lists (contract/organization.ts), whose clients sign as the member role.
 */
export function memberGrants(grants: readonly Grant[], secrets: SecretsLocation): Grant[] {
  const places = accountPlaces(secrets);
  const member = grants.filter((g) => places.includes(g.on));
  for (const grant of member) {
    if (!memberServices(secrets).includes(serviceOf(grant)))
      throw new Error(`${grant.actions.join(', ')} on ${grant.on} is no member-side service`);
  }
  return member;
}

/**
 * Each step's grants, in the order of its role's statements. Exactly what the configured step
 * calls; the comments say why (docs/organizations.md's table of the member roles is made of them).
 */
export function stepGrants(config: RekeyConfig): Record<StepName, Grant[]> {
  const onUsers = (actions: string[]): Grant => ({ actions, on: 'users' });
  const grant = (actions: string[], on: Place, via?: Grant['via']): Grant => ({
    actions,
    on,
    ...(via ? { via } : {}),
  });
  // Service-specific credentials (Keyspaces, CodeCommit) go through the same steps: each role
  // that lists, creates, updates or deletes access keys does the same to them, nothing more.
  // IAM keeps no last-used data for them, so nothing parallels GetAccessKeyLastUsed.
  const LIST_SSC = 'iam:ListServiceSpecificCredentials';
  return {
    plan: [
      // GetUser tells the plan the user's path and tags: it must answer for users outside the
      // path too, which the plan then refuses (UserOutOfScope) instead of failing.
      grant(['iam:GetUser'], 'everyUser'),
      onUsers(['iam:ListUserTags', 'iam:ListAccessKeys', 'iam:GetAccessKeyLastUsed', LIST_SSC]),
      // Reads the lock (and its journal) before deciding; takes it with a conditional update.
      grant(['dynamodb:GetItem', 'dynamodb:UpdateItem'], 'lockTable'),
      // Which secret exists and which of its versions is current: metadata, never a value.
      grant(['secretsmanager:DescribeSecret'], 'secrets'),
      ...(config.organization
        ? [
            // Validates a member account before any call into it: in the organization, not
            // suspended (DescribeAccount), and every OU above it for the scope (ListParents).
            grant(['organizations:DescribeAccount'], 'organizationAccounts'),
            grant(['organizations:ListParents'], 'organizationChildren'),
          ]
        : []),
    ],
    'create-second-key': [
      onUsers([
        // The eligibility re-check right before CreateAccessKey.
        'iam:GetUser',
        'iam:ListAccessKeys',
        'iam:CreateAccessKey',
        'iam:DeleteAccessKey',
        'iam:GetAccessKeyLastUsed',
        LIST_SSC,
        'iam:CreateServiceSpecificCredential',
        'iam:DeleteServiceSpecificCredential',
      ]),
      grant(
        [
          'secretsmanager:CreateSecret',
          // Each secret gets a policy naming who may read it (its user, the consumers).
          'secretsmanager:PutResourcePolicy',
          'secretsmanager:PutSecretValue',
          'secretsmanager:DescribeSecret',
          'secretsmanager:TagResource',
          // Drops the AWSPENDING label of a never-handed-out key it removes.
          'secretsmanager:UpdateSecretVersionStage',
        ],
        'secrets',
      ),
      // Secrets Manager encrypts the new version under the secrets key with the caller's rights.
      grant(['kms:Encrypt', 'kms:GenerateDataKey'], 'secretsKey', 'secretsmanager'),
      grant(['dynamodb:GetItem', 'dynamodb:UpdateItem'], 'lockTable'),
    ],
    'verify-new-key': [
      grant(
        [
          'secretsmanager:GetSecretValue',
          'secretsmanager:DescribeSecret',
          'secretsmanager:UpdateSecretVersionStage',
        ],
        'secrets',
      ),
      grant(['kms:Decrypt'], 'secretsKey', 'secretsmanager'),
      // To discard a new key that never authenticates (or a credential IAM does not list Active).
      onUsers(['iam:DeleteAccessKey', 'iam:ListAccessKeys', LIST_SSC, 'iam:DeleteServiceSpecificCredential']),
    ],
    'check-last-used': [
      onUsers(['iam:GetAccessKeyLastUsed']),
      // cloudtrail:LookupEvents has no resource type: '*' is the only possible resource.
      ...(config.cloudTrailLookup ? [grant(['cloudtrail:LookupEvents'], 'anything')] : []),
    ],
    // Re-reads the old key's last use right before deactivating it.
    'deactivate-old-key': [
      onUsers([
        'iam:GetUser',
        'iam:UpdateAccessKey',
        'iam:ListAccessKeys',
        'iam:GetAccessKeyLastUsed',
        LIST_SSC,
        'iam:UpdateServiceSpecificCredential',
      ]),
    ],
    // Verifies, then deletes the old key after re-reading its last use and the user (the re-check).
    'verify-rotation': [
      onUsers([
        'iam:GetUser',
        'iam:ListAccessKeys',
        'iam:GetAccessKeyLastUsed',
        'iam:DeleteAccessKey',
        LIST_SSC,
        'iam:DeleteServiceSpecificCredential',
      ]),
      grant(['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], 'secrets'),
      grant(['kms:Decrypt'], 'secretsKey', 'secretsmanager'),
    ],
    // Turns the old key back on when the verification fails (the rollback).
    'reactivate-old-key': [
      onUsers(['iam:UpdateAccessKey', 'iam:ListAccessKeys', LIST_SSC, 'iam:UpdateServiceSpecificCredential']),
    ],
    // Deletes the old key after re-reading its last use and the user.
    'delete-key': [
      onUsers([
        'iam:GetUser',
        'iam:DeleteAccessKey',
        'iam:ListAccessKeys',
        'iam:GetAccessKeyLastUsed',
        LIST_SSC,
        'iam:DeleteServiceSpecificCredential',
      ]),
    ],
    // After an ended execution: its journal and lock, the key it made, that key's secret version.
    cleanup: [
      grant(['dynamodb:GetItem', 'dynamodb:UpdateItem'], 'lockTable'),
      onUsers([
        'iam:ListAccessKeys',
        'iam:GetAccessKeyLastUsed',
        'iam:DeleteAccessKey',
        LIST_SSC,
        'iam:DeleteServiceSpecificCredential',
      ]),
      grant(['secretsmanager:DescribeSecret', 'secretsmanager:UpdateSecretVersionStage'], 'secrets'),
    ],
    notify: [
      // sns:Publish is also the action of PublishBatch, which notify sends.
      grant(['sns:Publish'], 'topic'),
      // Publishing to an encrypted topic: SNS generates a data key with the caller's rights.
      grant(['kms:GenerateDataKey', 'kms:Decrypt'], 'topicKey', 'sns'),
      grant(['events:PutEvents'], 'bus'),
      grant(['dynamodb:UpdateItem'], 'lockTable'),
    ],
  };
}

/** What the places are in one stack: the ARNs of its resources (a place it lacks is absent). */
export interface Places {
  readonly stack: Stack;
  readonly userScope: UserScope;
  readonly arns: Partial<Record<Exclude<Place, 'users' | 'everyUser' | 'anything'>, string[]>>;
}

/** `arn:<partition>:secretsmanager:<region>:<account>:secret:<secretPrefix>*`: rekey's secrets. */
export function secretsArn(stack: Stack, secretPrefix: string): string {
  return stack.formatArn({
    service: 'secretsmanager',
    resource: 'secret',
    resourceName: `${secretPrefix}*`,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}

/** The grants as policy statements on the places' resources. */
export function statementsOf(grants: readonly Grant[], places: Places): iam.PolicyStatement[] {
  const { stack, userScope, arns } = places;
  return grants.flatMap((g) => {
    const actions = [...g.actions];
    if (g.on === 'users') return userScope.allow(actions);
    const resources = g.on === 'everyUser' ? [userScope.everyUser] : g.on === 'anything' ? ['*'] : arns[g.on];
    if (!resources) throw new Error(`${actions.join(', ')}: no ${g.on} in ${stack.stackName}`);
    // The KMS keys are usable only through the service they serve, never directly.
    const conditions = g.via
      ? { StringEquals: { 'kms:ViaService': `${g.via}.${stack.region}.amazonaws.com` } }
      : undefined;
    return [new iam.PolicyStatement({ actions, resources, ...(conditions ? { conditions } : {}) })];
  });
}

/**
 * The statements of a role that acts on users (a step's, hub or member): the table's, plus the
 * protected users' Deny when it can change a key, whatever else it is allowed.
 */
export function withProtectedUsersDeny(
  statements: iam.PolicyStatement[],
  userScope: UserScope,
): iam.PolicyStatement[] {
  const deny = userScope.protectedUsersDeny(MUTATING_CREDENTIAL_ACTIONS);
  return deny && statements.some((s) => s.actions.some(isMutatingKeyAction))
    ? [...statements, deny]
    : statements;
}

/**
 * Acknowledges, for cdk-nag, the prefix wildcards of a role's statements. The users to rotate and
 * their secrets are not known at deploy time: the wildcard is the path (IAM) or name prefix
 * (Secrets Manager) rekey owns, nothing wider.
 */
export function acknowledgePrefixWildcards(
  scope: IConstruct,
  statements: readonly iam.PolicyStatement[],
  userScope: UserScope,
  config: Pick<RekeyConfig, 'userPathPrefix' | 'secretPrefix'>,
  secrets: string,
): void {
  const prefixWildcards = [
    {
      arn: userScope.everyUser,
      nagId: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user/*]',
      reason:
        'the plan reads any IAM user named in a request (GetUser: its path and tags) to tell whether it is in scope; every other user action is scoped to the path',
    },
    {
      arn: userScope.users,
      nagId: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user${config.userPathPrefix}*]`,
      reason: `rotates any IAM user under the path ${config.userPathPrefix}, chosen at run time`,
    },
    {
      arn: secrets,
      nagId: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:${config.secretPrefix}*]`,
      reason: `secrets are named ${config.secretPrefix}<userName> (plus the random suffix Secrets Manager adds)`,
    },
  ];
  // With the path '/', the users in scope are every user: one finding, both reasons.
  const reasons = new Map<string, string[]>();
  for (const { arn, nagId, reason } of prefixWildcards) {
    if (statements.some((s) => s.effect === iam.Effect.ALLOW && s.resources.includes(arn))) {
      reasons.set(nagId, [...(reasons.get(nagId) ?? []), reason]);
    }
  }
  for (const [id, why] of reasons) Validations.of(scope).acknowledge({ id, reason: why.join('; ') });
}

/**
 * What a hub Lambda needs to act in a member account: sts:AssumeRole on its own member role, in
 * every account of the organization (aws:ResourceOrgID), and no other role.
 */
export function assumeMemberRole(
  stack: Stack,
  organization: OrganizationConfig,
  lambda: MemberLambda,
): iam.PolicyStatement {
  return new iam.PolicyStatement({
    actions: ['sts:AssumeRole'],
    resources: [
      `arn:${stack.partition}:iam::*:role/${memberRoleName(organization.memberRolePrefix, lambda)}`,
    ],
    conditions: { StringEquals: { 'aws:ResourceOrgID': organization.organizationId } },
  });
}

/** Acknowledges the account wildcard of assumeMemberRole for cdk-nag. */
export function acknowledgeAssumeMemberRole(
  scope: IConstruct,
  organization: OrganizationConfig,
  lambda: MemberLambda,
): void {
  Validations.of(scope).acknowledge({
    id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::*:role/${memberRoleName(organization.memberRolePrefix, lambda)}]`,
    reason: `assumes its own member role (${memberRoleName(organization.memberRolePrefix, lambda)}) in whichever account of the organization a request names; the account is chosen at run time, aws:ResourceOrgID keeps it inside ${organization.organizationId}`,
  });
}

export interface StepPermissionsProps {
  readonly config: RekeyConfig;
  readonly functions: Readonly<Record<StepName, RekeyFunction>>;
  readonly userScope: UserScope;
  readonly lockTable: dynamodb.ITable;
  readonly secretsKey: kms.IKey;
  readonly notifications: Notifications;
}

/** Adds each step's statements (and the Deny) to its role, and acknowledges its prefix wildcards for cdk-nag. */
export function grantStepPermissions(stack: Stack, props: StepPermissionsProps): void {
  const { config, functions, userScope, lockTable, secretsKey, notifications } = props;
  const secrets = secretsArn(stack, config.secretPrefix);
  const organization = config.organization;
  // Organizations ARNs carry the management account, unknown here: `*` in its place.
  const inOrganization = (resource: string) =>
    `arn:${stack.partition}:organizations::*:${resource}/${organization?.organizationId}/*`;
  const places: Places = {
    stack,
    userScope,
    arns: {
      secrets: [secrets],
      secretsKey: [secretsKey.keyArn],
      lockTable: [lockTable.tableArn],
      topic: [notifications.topic.topicArn],
      topicKey: [notifications.key.keyArn],
      bus: [stack.formatArn({ service: 'events', resource: 'event-bus', resourceName: 'default' })],
      // DescribeAccount acts on an account; ListParents on the child it is asked about, an
      // account or an OU (never a root, which has no parent).
      organizationAccounts: [inOrganization('account')],
      organizationChildren: [inOrganization('account'), inOrganization('ou')],
    },
  };
  const table = stepGrants(config);
  for (const step of STEP_NAMES) {
    const fn = functions[step];
    const statements = withProtectedUsersDeny(statementsOf(table[step], places), userScope);
    for (const statement of statements) fn.lambdaFunction.addToRolePolicy(statement);
    acknowledgePrefixWildcards(fn.role, statements, userScope, config, secrets);
    if (organization && isMemberLambda(step)) {
      fn.lambdaFunction.addToRolePolicy(assumeMemberRole(stack, organization, step));
      acknowledgeAssumeMemberRole(fn.role, organization, step);
    }
    if (organization && step === 'plan') {
      Validations.of(fn.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:organizations::*:account/${organization.organizationId}/*]`,
        reason:
          'the plan describes the member account a request names (organizations:DescribeAccount, ListParents), chosen at run time; only accounts of this organization (the management account in the ARN is not known at deploy time)',
      });
      Validations.of(fn.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:organizations::*:ou/${organization.organizationId}/*]`,
        reason:
          "the plan walks up from the account to the root (organizations:ListParents on each OU above it) to apply the scope's OUs; only OUs of this organization",
      });
    }
  }
}
