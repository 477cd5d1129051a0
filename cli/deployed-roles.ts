/**
 * Each rekey Lambda's deployed role, for local runs against an emulator: the workflow tests, the
 * reliability campaign, `rekey demo`, and `rekey rotate` / `rekey audit` when AWS_ENDPOINT_URL is
 * a local moto server. A run as an administrator proves the logic, not the product: here every
 * handler invocation signs as its own Lambda's role and is refused what that role may not do.
 *
 * From the synthesized template this module takes every AWS::Lambda::Function carrying
 * `rekey:lambda` metadata (each step, the audit, any later Lambda made with RekeyFunction), its
 * role and every statement of the role's policies, and resolves the CloudFormation references in
 * their resources to the local resources of the run (lock table, topic, KMS key, state machine:
 * through the Lambdas' own environment, which names them). A reference without a local
 * counterpart matches nothing, never everything.
 *
 * What moto (5.2.1, request signing on) enforces and what this module adds:
 * - moto checks the action of every request against the caller's policies, but matches only
 *   Resource `*` (a statement scoped to an ARN allows nothing there, and a Deny scoped to an ARN
 *   never fires). So each Lambda gets a moto role allowing its Allow actions on `*`, assumed once
 *   per emulator, and `authorize` (run before every call, lambdas/shared/clients/invocation.ts)
 *   does the resource half: it derives what the call acts on (the IAM user's ARN with its path,
 *   the secret, table, topic, event bus, state machine or execution, the Security Hub product or
 *   hub, the S3 object) and evaluates the role's statements for that action on it, Deny first, with IAM's
 *   wildcards. Conditions are evaluated for the operators rekey uses (Null, StringEquals,
 *   StringLike and their negations) on the keys a direct call has: the target user's tags
 *   (aws:ResourceTag/..., iam:ResourceTag/...); every other key is absent, as for a call made
 *   straight to the service (kms:ViaService included).
 * - moto ignores resource policies (secret policies, the KMS key policies, the topic policy) and
 *   makes no KMS call on the caller's behalf when Secrets Manager or SNS encrypt: those stay
 *   covered by template assertions (test/infra), as README's "What the deployed-permission tests
 *   cannot see" explains.
 * - APIs moto lacks are answered by test stand-ins, which put each command to the same
 *   `authorize` (authorizeCommand), so the resource and action check still applies to them.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateRoleCommand,
  EntityAlreadyExistsException,
  GetAccessKeyLastUsedCommand,
  GetUserCommand,
  IAMClient,
  ListUserTagsCommand,
  NoSuchEntityException,
  PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import { DescribeKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { LAMBDA_METADATA_KEY } from '../contract/functions.ts';
import {
  DEFAULT_MEMBER_ROLE_PREFIX,
  isMemberLambda,
  MEMBER_ROLE_METADATA_KEY,
  MEMBER_SECRETS_KEY_ALIAS,
  memberRoleArn,
  memberRoleName,
} from '../contract/organization.ts';
import {
  AccessDenied,
  type AuthorizationRequest,
  type InvocationContext,
  type InvocationCredentials,
  OPERATION_ACTIONS,
} from '../lambdas/shared/clients/invocation.ts';
import { type CfnResource, type CfnTemplate, REPO_ROOT } from './definition.ts';

/** The template cannot be turned into local roles, or a call's target cannot be told. */
export class DeployedRolesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeployedRolesError';
  }
}

/** One policy statement of a Lambda's role, its CloudFormation references resolved. */
export interface RoleStatement {
  sid?: string;
  effect: 'Allow' | 'Deny';
  actions: string[];
  /** Resource patterns; null where the template names a resource the local run does not have. */
  resources: Array<string | null>;
  /** Operator -> condition key -> values (null: an unresolvable value, equal to nothing). */
  conditions: Record<string, Record<string, Array<string | null>>>;
}

export interface LambdaRole {
  /** Its `rekey:lambda` name (the folder under lambdas/). */
  lambda: string;
  /** The function's logical id; absent for a member role (the member template has no functions). */
  functionId?: string;
  roleId: string;
  statements: RoleStatement[];
  /**
   * A member role (the member template, in a member account): its ARN there, which a refusal
   * names. Absent for the Lambda's own role in the hub.
   */
  memberRoleArn?: string;
}

/** The pseudo parameters of the local run: where its ARNs live. */
export interface LocalAccount {
  partition: string;
  region: string;
  account: string;
}

// ---------------------------------------------------------------------------------------------
// The template: every rekey Lambda, its role and its statements.

const asArray = <T>(value: T | T[] | undefined): T[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

/** The template's references to deployed resources, as the local run's counterparts. */
type Bindings = Map<string, Record<string, string>>;

/**
 * What each attribute of a bound resource is, given the one value the local environment names
 * (the Lambdas' variables hold a table name, a topic, key or state machine ARN).
 */
const ATTRIBUTES: Record<
  string,
  (value: string, attribute: string, at: LocalAccount) => Record<string, string>
> = {
  'AWS::DynamoDB::Table': (value, attribute, at) => {
    const name = attribute === 'Arn' ? (value.split('/').pop() ?? value) : value;
    return { Ref: name, Arn: `arn:${at.partition}:dynamodb:${at.region}:${at.account}:table/${name}` };
  },
  'AWS::SNS::Topic': (value) => ({ Ref: value, TopicArn: value, TopicName: value.split(':').pop() ?? value }),
  'AWS::KMS::Key': (value): Record<string, string> => {
    if (!value.startsWith('arn:')) return { Ref: value, KeyId: value };
    const keyId = value.split('/').pop() ?? value;
    return { Arn: value, Ref: keyId, KeyId: keyId };
  },
  // S3 ARNs name neither region nor account: `arn:<partition>:s3:::<bucket>`.
  'AWS::S3::Bucket': (value, _attribute, at) => ({ Ref: value, Arn: `arn:${at.partition}:s3:::${value}` }),
  'AWS::StepFunctions::StateMachine': (value) => ({
    Ref: value,
    Arn: value,
    Name: value.split(':').pop() ?? value,
  }),
};

/**
 * Binds each resource a Lambda's environment variable references (`{Ref}` or `{Fn::GetAtt}`) to
 * the value the local run gives that variable.
 */
function bindingsOf(
  resources: Record<string, CfnResource>,
  env: Record<string, string | undefined>,
  at: LocalAccount,
): Bindings {
  const bindings: Bindings = new Map();
  for (const [functionId, resource] of Object.entries(resources)) {
    if (resource.Type !== 'AWS::Lambda::Function') continue;
    const variables = ((
      resource.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined
    )?.Variables ?? {}) as Record<string, unknown>;
    for (const [variable, value] of Object.entries(variables)) {
      const local = env[variable];
      const reference = referenceOf(value);
      if (local === undefined || !reference) continue;
      const type = resources[reference.id]?.Type ?? '';
      const attributesOf = ATTRIBUTES[type];
      if (!attributesOf) continue;
      const attributes = attributesOf(local, reference.attribute, at);
      const known = bindings.get(reference.id);
      if (known && known.Ref !== attributes.Ref) {
        throw new DeployedRolesError(
          `${functionId}'s ${variable} names ${reference.id} as ${local}, another Lambda as ${known.Ref}: one resource, two local values`,
        );
      }
      bindings.set(reference.id, attributes);
    }
  }
  return bindings;
}

function referenceOf(value: unknown): { id: string; attribute: string } | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const token = value as Record<string, unknown>;
  if (typeof token.Ref === 'string' && !token.Ref.startsWith('AWS::'))
    return { id: token.Ref, attribute: 'Ref' };
  const getAtt = token['Fn::GetAtt'];
  if (Array.isArray(getAtt) && typeof getAtt[0] === 'string' && typeof getAtt[1] === 'string')
    return { id: getAtt[0], attribute: getAtt[1] };
  return undefined;
}

/** A CloudFormation value as the local run sees it; null when it has no local counterpart. */
function resolve(value: unknown, bindings: Bindings, at: LocalAccount): string | null {
  if (typeof value === 'string') return value;
  if (typeof value !== 'object' || value === null) return null;
  const token = value as Record<string, unknown>;
  const pseudo: Record<string, string> = {
    'AWS::Partition': at.partition,
    'AWS::Region': at.region,
    'AWS::AccountId': at.account,
    'AWS::URLSuffix': 'amazonaws.com',
  };
  if (typeof token.Ref === 'string' && pseudo[token.Ref] !== undefined) return pseudo[token.Ref] ?? null;
  const reference = referenceOf(value);
  if (reference) return bindings.get(reference.id)?.[reference.attribute] ?? null;
  const sub = token['Fn::Sub'];
  if (typeof sub === 'string' || (Array.isArray(sub) && typeof sub[0] === 'string')) {
    const [text, variables] =
      typeof sub === 'string' ? [sub, {}] : [sub[0] as string, (sub[1] ?? {}) as Record<string, unknown>];
    let unresolved = false;
    // `${Name}`, `${Resource.Attribute}` or a variable of the second form; `${!Text}` is literal.
    const substituted = text.replace(/\$\{([^}]+)\}/g, (_match, name: string) => {
      if (name.startsWith('!')) return `\${${name.slice(1)}}`;
      const [id = '', attribute] = name.split('.');
      const value = resolve(
        name in variables
          ? variables[name]
          : attribute === undefined
            ? { Ref: id }
            : { 'Fn::GetAtt': [id, attribute] },
        bindings,
        at,
      );
      if (value === null) unresolved = true;
      return value ?? '';
    });
    return unresolved ? null : substituted;
  }
  const join = token['Fn::Join'];
  if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) {
    const parts = join[1].map((part: unknown) => resolve(part, bindings, at));
    return parts.some((part) => part === null) ? null : parts.join(join[0]);
  }
  return null;
}

/** Every statement of the policy documents attached to a role, by any route in the template. */
function statementsOf(
  resources: Record<string, CfnResource>,
  roleId: string,
  bindings: Bindings,
  at: LocalAccount,
): RoleStatement[] {
  const role = resources[roleId];
  if (role?.Type !== 'AWS::IAM::Role') throw new DeployedRolesError(`${roleId} is not an AWS::IAM::Role`);
  const managed = asArray(role.Properties?.ManagedPolicyArns as unknown[] | undefined);
  if (managed.length > 0) {
    // An AWS managed policy's statements are not in the template: the run could not know them.
    throw new DeployedRolesError(
      `role ${roleId} attaches managed policies by ARN (${JSON.stringify(managed)}), whose statements the template does not hold`,
    );
  }
  const documents: unknown[] = asArray(
    role.Properties?.Policies as Array<{ PolicyDocument: unknown }> | undefined,
  ).map((p) => p.PolicyDocument);
  for (const resource of Object.values(resources)) {
    if (resource.Type !== 'AWS::IAM::Policy' && resource.Type !== 'AWS::IAM::ManagedPolicy') continue;
    const roles = asArray(resource.Properties?.Roles as unknown[] | undefined);
    if (roles.some((r) => (r as { Ref?: unknown }).Ref === roleId))
      documents.push(resource.Properties?.PolicyDocument);
  }
  const statements: RoleStatement[] = [];
  for (const document of documents) {
    for (const raw of asArray((document as { Statement?: unknown }).Statement) as Record<string, unknown>[]) {
      if (raw.NotAction !== undefined || raw.NotResource !== undefined || raw.Principal !== undefined) {
        throw new DeployedRolesError(
          `role ${roleId} has a statement with NotAction, NotResource or Principal, which local runs do not evaluate: ${JSON.stringify(raw)}`,
        );
      }
      if (raw.Effect !== 'Allow' && raw.Effect !== 'Deny') {
        throw new DeployedRolesError(`role ${roleId} has a statement without Effect Allow or Deny`);
      }
      const conditions: RoleStatement['conditions'] = {};
      for (const [operator, keys] of Object.entries(
        (raw.Condition ?? {}) as Record<string, Record<string, unknown>>,
      )) {
        conditions[operator] = Object.fromEntries(
          Object.entries(keys).map(([key, values]) => [
            key,
            asArray(values).map((v) => resolve(v, bindings, at)),
          ]),
        );
      }
      statements.push({
        ...(typeof raw.Sid === 'string' ? { sid: raw.Sid } : {}),
        effect: raw.Effect,
        actions: asArray(raw.Action as string | string[] | undefined),
        resources: asArray(raw.Resource).map((r) => resolve(r, bindings, at)),
        conditions,
      });
    }
  }
  return statements;
}

/** The Lambda a resource's metadata names (undefined: none); a second resource naming it is refused. */
function metadataName(
  resource: CfnResource,
  key: string,
  id: string,
  seen: readonly LambdaRole[],
): string | undefined {
  const name = resource.Metadata?.[key];
  if (name === undefined) return undefined;
  if (typeof name !== 'string') throw new DeployedRolesError(`${id} has a non-string ${key}`);
  if (seen.some((r) => r.lambda === name))
    throw new DeployedRolesError(`two resources carry ${key} "${name}"`);
  return name;
}

/**
 * Every rekey Lambda of the template with its role's statements, resolved against the local
 * run's environment (the REKEY_* variables it gives the handlers) and account.
 */
export function lambdaRoles(
  template: CfnTemplate,
  env: Record<string, string | undefined>,
  at: LocalAccount,
): LambdaRole[] {
  const resources = template.Resources ?? {};
  const bindings = bindingsOf(resources, env, at);
  const roles: LambdaRole[] = [];
  for (const [functionId, resource] of Object.entries(resources)) {
    if (resource.Type !== 'AWS::Lambda::Function') continue;
    // A function without the metadata is not rekey code (e.g. a CDK provider): no local run calls it.
    const lambda = metadataName(resource, LAMBDA_METADATA_KEY, functionId, roles);
    if (lambda === undefined) continue;
    const roleId = referenceOf(resource.Properties?.Role)?.id;
    if (!roleId) throw new DeployedRolesError(`${functionId} (${lambda}) has no role of the template`);
    roles.push({ lambda, functionId, roleId, statements: statementsOf(resources, roleId, bindings, at) });
  }
  return roles;
}

/**
 * The member roles of the member template (each AWS::IAM::Role carrying `rekey:member-role`, the
 * Lambda that assumes it), their statements resolved in one member account: `AWS::AccountId` is
 * that account and the template's KMS key (the member secrets key) is `memberKeyArn`, that
 * account's local key; without one, the key's ARN matches nothing.
 */
export function memberRoles(template: CfnTemplate, at: LocalAccount, memberKeyArn?: string): LambdaRole[] {
  const resources = template.Resources ?? {};
  const bindings: Bindings = new Map();
  const keyAttributes = ATTRIBUTES['AWS::KMS::Key'];
  for (const [id, resource] of Object.entries(resources)) {
    if (resource.Type === 'AWS::KMS::Key' && memberKeyArn && keyAttributes)
      bindings.set(id, keyAttributes(memberKeyArn, 'Arn', at));
  }
  const roles: LambdaRole[] = [];
  for (const [roleId, resource] of Object.entries(resources)) {
    if (resource.Type !== 'AWS::IAM::Role') continue;
    const lambda = metadataName(resource, MEMBER_ROLE_METADATA_KEY, roleId, roles);
    if (lambda === undefined) continue;
    const roleName = resolve(resource.Properties?.RoleName, bindings, at);
    if (roleName === null)
      throw new DeployedRolesError(`member role ${roleId} (${lambda}) has no fixed RoleName`);
    roles.push({
      lambda,
      roleId,
      statements: statementsOf(resources, roleId, bindings, at),
      memberRoleArn: `arn:${at.partition}:iam::${at.account}:role/${roleName}`,
    });
  }
  return roles;
}

// ---------------------------------------------------------------------------------------------
// IAM's evaluation of one call against one role.

/** IAM's wildcards: `*` any run of characters, `?` one character. */
function wildcard(pattern: string, value: string, ignoreCase: boolean): boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${source}$`, ignoreCase ? 'is' : 's').test(value);
}

/** Action names are case-insensitive. */
export const actionMatches = (pattern: string, action: string): boolean => wildcard(pattern, action, true);

/**
 * A Resource pattern against an ARN. IAM lets a `*` at the end of an ARN segment match across
 * the colons after it, so the pattern is matched against the whole ARN (rekey's patterns have
 * wildcards only at their end). `*` alone matches anything, and is the only pattern that matches
 * the account-wide target `*` (an action without a resource type).
 */
export function resourceMatches(pattern: string | null, arn: string): boolean {
  if (pattern === null) return false;
  if (pattern === '*') return true;
  return arn !== '*' && wildcard(pattern, arn, false);
}

/** What a call acts on: an ARN (or `*`, an account-wide action), with the condition keys it carries. */
export interface Target {
  arn: string;
  /** The target's condition keys (lower-cased names), looked up only when a condition asks. */
  keys?: () => Promise<Record<string, string>>;
}

const NEGATED: Record<string, string> = { StringNotEquals: 'StringEquals', StringNotLike: 'StringLike' };

/** Whether a statement's conditions hold for the target; unsupported operators are refused. */
async function conditionsHold(statement: RoleStatement, target: Target, lambda: string): Promise<boolean> {
  const entries = Object.entries(statement.conditions);
  if (entries.length === 0) return true;
  const keys = (await target.keys?.()) ?? {};
  for (const [operator, conditions] of entries) {
    for (const [key, expected] of Object.entries(conditions)) {
      const actual = keys[key.toLowerCase()];
      if (!(await holds(operator, actual, expected, lambda))) return false;
    }
  }
  return true;
}

async function holds(
  operator: string,
  actual: string | undefined,
  expected: Array<string | null>,
  lambda: string,
): Promise<boolean> {
  const positive = NEGATED[operator];
  if (positive) return !(await holds(positive, actual, expected, lambda));
  switch (operator) {
    case 'Null':
      // "true": the key must be absent; "false": present.
      return expected.some((value) => (value === 'true') === (actual === undefined));
    case 'StringEquals':
      return actual !== undefined && expected.some((value) => value === actual);
    case 'StringLike':
      return (
        actual !== undefined && expected.some((value) => value !== null && wildcard(value, actual, false))
      );
    default:
      throw new DeployedRolesError(
        `the ${lambda} role has a condition with ${operator}, which local runs do not evaluate: teach cli/deployed-roles.ts`,
      );
  }
}

const describeStatement = (s: RoleStatement) => {
  const on = s.resources.map((r) => r ?? '<a resource the local run does not have>').join(', ');
  const when = Object.keys(s.conditions).length ? ` if ${JSON.stringify(s.conditions)}` : '';
  return `${s.effect} on ${on}${when}${s.sid ? ` (${s.sid})` : ''}`;
};

/**
 * IAM's answer for one call of `role`'s Lambda on each target: an explicit Deny wins, else some
 * Allow must match action, resource and conditions. Throws AccessDenied naming why.
 */
export async function evaluate(role: LambdaRole, action: string, targets: readonly Target[]): Promise<void> {
  const forAction = role.statements.filter((s) =>
    s.actions.some((pattern) => actionMatches(pattern, action)),
  );
  for (const target of targets) {
    const onTarget = forAction.filter((s) =>
      s.resources.some((pattern) => resourceMatches(pattern, target.arn)),
    );
    for (const statement of onTarget.filter((s) => s.effect === 'Deny')) {
      if (await conditionsHold(statement, target, role.lambda)) {
        throw new AccessDenied({
          step: role.lambda,
          memberRole: role.memberRoleArn,
          action,
          resource: target.arn,
          reason: `explicitly denied by its statement ${describeStatement(statement)}`,
        });
      }
    }
    let allowed = false;
    for (const statement of onTarget.filter((s) => s.effect === 'Allow')) {
      if (await conditionsHold(statement, target, role.lambda)) {
        allowed = true;
        break;
      }
    }
    if (allowed) continue;
    const allows = forAction.filter((s) => s.effect === 'Allow');
    throw new AccessDenied({
      step: role.lambda,
      memberRole: role.memberRoleArn,
      action,
      resource: target.arn,
      reason:
        allows.length === 0
          ? 'no statement of the role has this action'
          : `no statement allowing it matches this resource and its conditions (${allows.map(describeStatement).join('; ')})`,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// What a call acts on.

/** IAM actions without a resource type: only Resource `*` grants them. */
const ACCOUNT_WIDE_IAM = new Set([
  'iam:GenerateCredentialReport',
  'iam:GetCredentialReport',
  'iam:GetAccountAuthorizationDetails',
  'iam:GetAccountSummary',
  'iam:ListUsers',
]);

/** Reads the emulator as its administrator, to learn what a call acts on (never inside a check's own invocation). */
export interface EmulatorAdmin {
  iam: IAMClient;
  sts: STSClient;
  /** A member account's: finds its member secrets key (MEMBER_SECRETS_KEY_ALIAS). */
  kms?: KMSClient;
}

const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/**
 * Derives the target of each call in one account, read through that account's administrator, with
 * the few lookups that needs (cached per emulator and account).
 */
class Targets {
  private readonly userArns = new Map<string, Promise<string>>();
  private readonly keyOwners = new Map<string, Promise<string | undefined>>();

  constructor(
    private readonly admin: EmulatorAdmin,
    private readonly at: LocalAccount,
    /** The organization an account belongs to (aws:ResourceOrgID of a role there), if any. */
    private readonly organizationOf: (accountId: string) => string | undefined,
  ) {}

  private arn(service: string, resource: string, region = this.at.region): string {
    return `arn:${this.at.partition}:${service}:${region}:${this.at.account}:${resource}`;
  }

  /** The user's ARN, path included (what IAM authorizes against); the root path if it does not exist. */
  private userArn(userName: string): Promise<string> {
    let found = this.userArns.get(userName);
    if (!found) {
      found = this.admin.iam.send(new GetUserCommand({ UserName: userName })).then(
        (out) => out.User?.Arn ?? this.arn('iam', `user/${userName}`, ''),
        (error: unknown) => {
          // Not remembered: the user may be created later, under a path.
          this.userArns.delete(userName);
          if (error instanceof NoSuchEntityException) return this.arn('iam', `user/${userName}`, '');
          throw error;
        },
      );
      this.userArns.set(userName, found);
    }
    return found;
  }

  private user(userName: string): Target {
    return {
      arn: '',
      keys: async () => {
        const keys: Record<string, string> = {};
        try {
          const out = await this.admin.iam.send(new ListUserTagsCommand({ UserName: userName }));
          for (const tag of out.Tags ?? []) {
            keys[`aws:resourcetag/${tag.Key ?? ''}`.toLowerCase()] = tag.Value ?? '';
            keys[`iam:resourcetag/${tag.Key ?? ''}`.toLowerCase()] = tag.Value ?? '';
          }
        } catch (error) {
          if (!(error instanceof NoSuchEntityException)) throw error;
        }
        return keys;
      },
    };
  }

  private async userTarget(userName: string): Promise<Target> {
    return { ...this.user(userName), arn: await this.userArn(userName) };
  }

  /** The user an access key belongs to (GetAccessKeyLastUsed authorizes on that user). */
  private keyOwner(accessKeyId: string): Promise<string | undefined> {
    let owner = this.keyOwners.get(accessKeyId);
    if (!owner) {
      owner = this.admin.iam.send(new GetAccessKeyLastUsedCommand({ AccessKeyId: accessKeyId })).then(
        (out) => out.UserName,
        () => {
          this.keyOwners.delete(accessKeyId);
          return undefined;
        },
      );
      this.keyOwners.set(accessKeyId, owner);
    }
    return owner;
  }

  /**
   * The targets of a call, or null for a call that needs no permission. Throws for a call whose
   * target this module cannot tell: a new kind of call must be taught here, not waved through.
   */
  async of(request: AuthorizationRequest): Promise<Target[] | null> {
    const { service, action, input } = request;
    const one = (arn: string): Target[] => [{ arn }];
    switch (service) {
      case 'iam': {
        if (ACCOUNT_WIDE_IAM.has(action)) return one('*');
        const userName = str(input.UserName);
        if (userName) return [await this.userTarget(userName)];
        if (action === 'iam:ListServiceSpecificCredentials' && input.AllUsers === true) {
          // AWS does not document which resource an AllUsers listing is authorized against; the
          // stack grants it on '*' for that reason, and only '*' is sure to match here too.
          return one('*');
        }
        const accessKeyId = str(input.AccessKeyId);
        if (action === 'iam:GetAccessKeyLastUsed' && accessKeyId) {
          const owner = await this.keyOwner(accessKeyId);
          // A key that exists nowhere has no user to authorize on; the emulator answers for it.
          return owner ? [await this.userTarget(owner)] : [];
        }
        break;
      }
      case 'secretsmanager': {
        if (action === 'secretsmanager:ListSecrets' || action === 'secretsmanager:GetRandomPassword')
          return one('*');
        const id = str(input.SecretId) ?? str(input.Name);
        // Secrets Manager appends six random characters to a secret's name in its ARN.
        if (id) return one(id.startsWith('arn:') ? id : this.arn('secretsmanager', `secret:${id}-XXXXXX`));
        break;
      }
      case 'dynamodb': {
        const tableArn = (table: string) =>
          table.startsWith('arn:') ? table : this.arn('dynamodb', `table/${table}`);
        const table = str(input.TableName);
        if (table) return one(tableArn(table));
        // BatchGetItem, BatchWriteItem: every table the request names is a target.
        const items = input.RequestItems;
        if (typeof items === 'object' && items !== null && Object.keys(items).length > 0)
          return Object.keys(items).map((name) => ({ arn: tableArn(name) }));
        break;
      }
      case 'sns': {
        const topic = str(input.TopicArn) ?? str(input.TargetArn);
        if (topic) return one(topic);
        break;
      }
      case 'events': {
        if (action === 'events:PutEvents' && Array.isArray(input.Entries)) {
          const buses = new Set(
            (input.Entries as Array<{ EventBusName?: unknown }>).map((e) => str(e.EventBusName) ?? 'default'),
          );
          return [...buses].map((bus) => ({
            arn: bus.startsWith('arn:') ? bus : this.arn('events', `event-bus/${bus}`),
          }));
        }
        break;
      }
      case 'states': {
        const arn = str(input.executionArn) ?? str(input.stateMachineArn);
        if (arn) return one(arn);
        break;
      }
      case 'securityhub': {
        if (action === 'securityhub:GetFindings') return one(this.arn('securityhub', 'hub/default'));
        if (action === 'securityhub:BatchImportFindings' && Array.isArray(input.Findings)) {
          const products = new Set(
            (input.Findings as Array<{ ProductArn?: unknown }>).map((f) => str(f.ProductArn) ?? ''),
          );
          return [...products].map((arn) => ({ arn }));
        }
        break;
      }
      case 'cloudtrail':
        // LookupEvents has no resource type.
        if (action === 'cloudtrail:LookupEvents') return one('*');
        break;
      case 'kms': {
        const key = str(input.KeyId);
        if (key)
          return one(
            key.startsWith('arn:') ? key : this.arn('kms', key.startsWith('alias/') ? key : `key/${key}`),
          );
        break;
      }
      case 's3': {
        // An object operation acts on the object: `arn:<partition>:s3:::<bucket>/<key>`.
        const bucket = str(input.Bucket);
        const key = str(input.Key);
        if (bucket && key) return one(`arn:${this.at.partition}:s3:::${bucket}/${key}`);
        break;
      }
      case 'organizations': {
        // Organizations ARNs name the management account (the emulator's default: the hub) and
        // the organization: `arn:<partition>:organizations::<management>:account/<org>/<id>`.
        const organizationId = this.organizationOf(this.at.account);
        const organizationArn = (resource: string) =>
          `arn:${this.at.partition}:organizations::${this.at.account}:${resource}`;
        // DescribeOrganization, ListAccounts and ListRoots have no resource type; for
        // ListAccountsForParent only `*` is sure to match.
        if (
          action === 'organizations:DescribeOrganization' ||
          action === 'organizations:ListAccounts' ||
          action === 'organizations:ListRoots' ||
          action === 'organizations:ListAccountsForParent'
        )
          return one('*');
        // ListOrganizationalUnitsForParent acts on its parent (an OU or the root).
        const id = str(input.AccountId) ?? str(input.ChildId) ?? str(input.ParentId);
        if (id && organizationId) {
          if (id.startsWith('ou-')) return one(organizationArn(`ou/${organizationId}/${id}`));
          if (id.startsWith('r-')) return one(organizationArn(`root/${organizationId}/${id}`));
          return one(organizationArn(`account/${organizationId}/${id}`));
        }
        break;
      }
      case 'sts':
        // GetCallerIdentity needs no permission (IAM and moto allow it even under an explicit Deny).
        if (action === 'sts:GetCallerIdentity') return null;
        if (str(input.RoleArn)) {
          // A role's aws:ResourceOrgID is the organization of its account (a hub Lambda assumes
          // its member roles only inside the organization).
          const roleArn = String(input.RoleArn);
          const organizationId = this.organizationOf(roleArn.split(':')[4] ?? '');
          return [
            {
              arn: roleArn,
              keys: async (): Promise<Record<string, string>> =>
                organizationId ? { 'aws:resourceorgid': organizationId } : {},
            },
          ];
        }
        break;
    }
    throw new DeployedRolesError(
      `cannot tell what ${action} (from the ${request.step} Lambda) acts on: teach cli/deployed-roles.ts (Targets.of) its resource`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// The roles in the emulator.

/** One account of the emulator, read through its own administrator. */
export interface EmulatorAccount {
  admin: EmulatorAdmin;
  at: LocalAccount;
  targets: Targets;
}

/** The emulator's default account (the hub) and, in an organization, its member accounts. */
export interface Emulator extends EmulatorAccount {
  /** The role's moto policy -> its assumed credentials, once per role and emulator. */
  sessions: Map<string, Promise<InvocationCredentials>>;
  /** The member accounts, by account id (none outside an organization). */
  members: Map<string, EmulatorAccount>;
}

export interface EmulatorOrganization {
  organizationId: string;
  /** The administrator of each member account (clients acting in that account). */
  members: readonly EmulatorAdmin[];
}

async function connectAccount(
  admin: EmulatorAdmin,
  region: string,
  organizationOf: (accountId: string) => string | undefined,
): Promise<EmulatorAccount> {
  const identity = await admin.sts.send(new GetCallerIdentityCommand({}));
  const account = identity.Account;
  if (!account) throw new DeployedRolesError('the emulator did not say which account it is');
  const partition = identity.Arn?.split(':')[1] ?? 'aws';
  const at = { partition, region, account };
  return { admin, at, targets: new Targets(admin, at, organizationOf) };
}

/**
 * Connects to the emulator as its administrator (the clients must reach it directly, not through
 * a fault proxy, and must not be rekey's invocation-bound clients), and to each member account of
 * its organization as that account's administrator.
 */
export async function connectEmulator(
  admin: EmulatorAdmin,
  region: string,
  organization?: EmulatorOrganization,
): Promise<Emulator> {
  const accounts = new Set<string>();
  const organizationOf = (accountId: string) =>
    organization && accounts.has(accountId) ? organization.organizationId : undefined;
  const [hub, ...members] = await Promise.all(
    [admin, ...(organization?.members ?? [])].map((a) => connectAccount(a, region, organizationOf)),
  );
  if (!hub) throw new DeployedRolesError('no hub account');
  for (const account of [hub, ...members]) accounts.add(account.at.account);
  return { ...hub, sessions: new Map(), members: new Map(members.map((m) => [m.at.account, m])) };
}

/**
 * The moto policy of a role: its Allow actions on `*` (moto matches no other resource), plus the
 * operation names moto checks where IAM's action is named otherwise (OPERATION_ACTIONS).
 */
function emulatorPolicy(role: LambdaRole): string {
  const allowed = role.statements.filter((s) => s.effect === 'Allow').flatMap((s) => s.actions);
  const operations = Object.entries(OPERATION_ACTIONS).flatMap(([operation, action]) =>
    allowed.some((pattern) => actionMatches(pattern, action)) ? [operation] : [],
  );
  const actions = [...new Set([...allowed, ...operations])].sort();
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: actions.length ? [{ Effect: 'Allow', Action: actions, Resource: '*' }] : [],
  });
}

/**
 * Makes (or updates) a role in the account `admin` acts in, with `policy` as its only moto policy.
 * Anyone may assume it: it exists only in the emulator, which does not evaluate trust policies
 * (the member roles' trust is covered by template assertions, test/infra).
 */
async function putRole(admin: EmulatorAdmin, roleName: string, description: string, policy: string) {
  try {
    await admin.iam.send(
      new CreateRoleCommand({
        RoleName: roleName,
        Description: description,
        AssumeRolePolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 'sts:AssumeRole' }],
        }),
      }),
    );
  } catch (error) {
    if (!(error instanceof EntityAlreadyExistsException)) throw error;
  }
  if (JSON.parse(policy).Statement.length > 0) {
    await admin.iam.send(
      new PutRolePolicyCommand({
        RoleName: roleName,
        PolicyName: 'deployed-actions',
        PolicyDocument: policy,
      }),
    );
  }
}

async function assumeRole(emulator: Emulator, role: LambdaRole): Promise<InvocationCredentials> {
  const policy = emulatorPolicy(role);
  // Named by its policy: a changed role (another configuration, a mutation test) is another role.
  const hash = createHash('sha256').update(policy).digest('hex').slice(0, 10);
  const roleName = `rekey-local-${role.lambda}-${hash}`.slice(0, 64);
  let session = emulator.sessions.get(roleName);
  if (!session) {
    session = (async () => {
      await putRole(
        emulator.admin,
        roleName,
        `rekey local run: the deployed role of the ${role.lambda} Lambda (actions only; the resources are checked by rekey)`,
        policy,
      );
      const out = await emulator.admin.sts.send(
        new AssumeRoleCommand({
          RoleArn: `arn:${emulator.at.partition}:iam::${emulator.at.account}:role/${roleName}`,
          RoleSessionName: `rekey-${role.lambda}`.slice(0, 64),
        }),
      );
      const c = out.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken) {
        throw new DeployedRolesError(`AssumeRole ${roleName} returned no credentials`);
      }
      return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken };
    })();
    session.catch(() => emulator.sessions.delete(roleName));
    emulator.sessions.set(roleName, session);
  }
  return session;
}

/** The member secrets key of an account (by MEMBER_SECRETS_KEY_ALIAS), if it has one. */
async function memberKeyArn(account: EmulatorAccount): Promise<string | undefined> {
  if (!account.admin.kms) return undefined;
  try {
    const out = await account.admin.kms.send(new DescribeKeyCommand({ KeyId: MEMBER_SECRETS_KEY_ALIAS }));
    return out.KeyMetadata?.Arn;
  } catch (error) {
    if ((error as Error).name === 'NotFoundException') return undefined;
    throw error;
  }
}

/** Each Lambda's role for one local run, and the invocation context each of its calls runs in. */
export interface DeployedRoles {
  readonly roles: readonly LambdaRole[];
  /** The context an invocation of `lambda` runs in (its role assumed on first use). */
  contextFor(lambda: string): Promise<InvocationContext>;
  /**
   * The member role of `lambda` in a member account: the member template's, resolved in that
   * account (`mutate` applied). What `authorize` evaluates a call for that account against.
   */
  memberRole(accountId: string, lambda: string): Promise<LambdaRole>;
  /**
   * Makes each member role of the member template (but those of `except`'s Lambdas) in a member
   * account of the emulator, under its fixed name (what the Lambdas assume by ARN), with its Allow
   * actions on `*` as its moto policy. The roles are the account's, not this object's: the last
   * call for an account sets their moto policies. Returns the ARNs of the roles made.
   */
  installMemberRoles(accountId: string, options?: { except?: readonly string[] }): Promise<string[]>;
}

export interface DeployedRolesOptions {
  template: CfnTemplate;
  /** The REKEY_* variables the run gives its handlers: they name the local resources. */
  env: Record<string, string | undefined>;
  /**
   * The member template (infra/member-stack.ts): with it, a call made for a member account
   * (AuthorizationRequest.account) is evaluated against the Lambda's member role there.
   */
  memberTemplate?: CfnTemplate;
  /**
   * Changes a Lambda's statements before its role is made (mutation tests: a role missing an
   * action must make a run fail). `account` is set for a member role: the account it is in.
   */
  mutate?: (lambda: string, statements: RoleStatement[], account?: string) => RoleStatement[];
}

export function deployedRoles(emulator: Emulator, options: DeployedRolesOptions): DeployedRoles {
  const { mutate, memberTemplate } = options;
  const roles = lambdaRoles(options.template, options.env, emulator.at).map((role) =>
    mutate ? { ...role, statements: mutate(role.lambda, role.statements) } : role,
  );
  const byName = new Map(roles.map((role) => [role.lambda, role]));
  const prefix = options.env.REKEY_MEMBER_ROLE_PREFIX ?? DEFAULT_MEMBER_ROLE_PREFIX;
  if (memberTemplate) {
    for (const member of memberRoles(memberTemplate, emulator.at)) {
      if (!isMemberLambda(member.lambda) || !byName.has(member.lambda)) {
        throw new DeployedRolesError(
          `the member template's role ${member.roleId} is for "${member.lambda}", which is no Lambda of the hub template with a member role (it has ${[...byName.keys()].join(', ')})`,
        );
      }
      const expected = memberRoleArn(emulator.at.partition, emulator.at.account, prefix, member.lambda);
      if (member.memberRoleArn !== expected) {
        throw new DeployedRolesError(
          `the member template names the ${member.lambda} role ${member.memberRoleArn?.split('/').pop()}, not ${memberRoleName(prefix, member.lambda)}: the Lambdas would assume a role that is not there`,
        );
      }
    }
  }
  const accountOf = (accountId: string): EmulatorAccount => {
    const account = emulator.members.get(accountId);
    if (!account) {
      throw new DeployedRolesError(
        `account ${accountId} is no member account of the emulator's organization (it has ${[...emulator.members.keys()].join(', ') || 'none'})`,
      );
    }
    return account;
  };
  const resolvedMembers = new Map<string, Promise<Map<string, LambdaRole>>>();
  const memberRolesIn = (accountId: string): Promise<Map<string, LambdaRole>> => {
    let found = resolvedMembers.get(accountId);
    if (!found) {
      found = (async () => {
        const account = accountOf(accountId);
        if (!memberTemplate) {
          throw new DeployedRolesError(
            `a call for member account ${accountId}, but the run has no member template to take its roles from`,
          );
        }
        const resolved = memberRoles(memberTemplate, account.at, await memberKeyArn(account));
        return new Map(
          resolved.map((r) => [
            r.lambda,
            mutate ? { ...r, statements: mutate(r.lambda, r.statements, accountId) } : r,
          ]),
        );
      })();
      found.catch(() => resolvedMembers.delete(accountId));
      resolvedMembers.set(accountId, found);
    }
    return found;
  };
  const memberRole = async (accountId: string, lambda: string): Promise<LambdaRole> => {
    const inAccount = await memberRolesIn(accountId);
    const role = inAccount.get(lambda);
    if (!role) {
      throw new DeployedRolesError(
        `the member template has no member role for the ${lambda} Lambda (it has ${[...inAccount.keys()].join(', ')}): its calls in account ${accountId} would run with no role`,
      );
    }
    return role;
  };
  return {
    roles,
    memberRole,
    async installMemberRoles(accountId, { except = [] } = {}) {
      const account = accountOf(accountId);
      const made: string[] = [];
      for (const role of (await memberRolesIn(accountId)).values()) {
        if (except.includes(role.lambda) || !role.memberRoleArn) continue;
        await putRole(
          account.admin,
          role.memberRoleArn.split('/').pop() ?? '',
          `rekey local run: the member role of the ${role.lambda} Lambda (actions only; the resources are checked by rekey)`,
          emulatorPolicy(role),
        );
        made.push(role.memberRoleArn);
      }
      return made;
    },
    async contextFor(lambda) {
      const role = byName.get(lambda);
      if (!role) {
        throw new DeployedRolesError(
          `the template has no Lambda "${lambda}" (it has ${[...byName.keys()].join(', ')}): it would run with no role`,
        );
      }
      const credentials = await assumeRole(emulator, role);
      return {
        step: lambda,
        credentials,
        authorize: async (request) => {
          // A member-side call for another account acts there, as the Lambda's member role.
          const member = request.account !== undefined && request.account !== emulator.at.account;
          const acting = member ? await memberRole(request.account ?? '', lambda) : role;
          const account = member ? accountOf(request.account ?? '') : emulator;
          const targets = await account.targets.of(request);
          if (targets === null) return undefined;
          await evaluate(acting, request.action, targets);
          return targets.map((t) => t.arn).join(', ') || undefined;
        },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Where the template and the emulator come from.

/** The synthesized template as `cdk synth` wrote it. */
export function readTemplate(path: string): CfnTemplate {
  return JSON.parse(readFileSync(path, 'utf8')) as CfnTemplate;
}

/** cdk.json's context (the feature flags) without its `rekey` configuration. */
function cdkContextWithoutRekey(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')) as {
    context?: Record<string, unknown>;
  };
  const { rekey: _ignored, ...context } = cdkJson.context ?? {};
  return context;
}

const synthesized = new Map<string, Promise<CfnTemplate>>();

/**
 * The stack's template for a `rekey` configuration, synthesized in this process with cdk.json's
 * other context (feature flags) and no bundling: the roles of a run whose configuration is not
 * cdk.json's (a test world's, the demo's). About 2 s the first time (aws-cdk-lib loads).
 */
export function synthesizeTemplate(rawConfig: unknown): Promise<CfnTemplate> {
  const key = JSON.stringify(rawConfig);
  let template = synthesized.get(key);
  if (!template) {
    template = (async () => {
      const [{ App }, { loadConfig }, { RekeyStack }] = await Promise.all([
        import('aws-cdk-lib'),
        import('../infra/config.ts'),
        import('../infra/rekey-stack.ts'),
      ]);
      const context = cdkContextWithoutRekey();
      const outdir = mkdtempSync(join(tmpdir(), 'rekey-roles-'));
      try {
        const app = new App({ outdir, context: { ...context, 'aws:cdk:bundling-stacks': [] } });
        new RekeyStack(app, 'RekeyStack', { config: loadConfig(rawConfig) });
        return app.synth().getStackByName('RekeyStack').template as CfnTemplate;
      } finally {
        rmSync(outdir, { recursive: true, force: true });
      }
    })();
    synthesized.set(key, template);
  }
  return template;
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[?::1\]?)$/i;

/**
 * The endpoint when AWS_ENDPOINT_URL points at a moto server on this machine (a loopback host
 * that answers moto's own `/moto-api/`), else undefined: real AWS, or an endpoint that is not
 * known to be moto, keeps the caller's credentials as they are.
 */
export async function motoEndpoint(
  env: Record<string, string | undefined> = process.env,
): Promise<string | undefined> {
  const raw = env.AWS_ENDPOINT_URL;
  if (!raw) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  if (!LOOPBACK.test(url.hostname)) return undefined;
  try {
    const response = await fetch(new URL('/moto-api/', url), { signal: AbortSignal.timeout(2_000) });
    await response.body?.cancel();
    return response.ok ? raw : undefined;
  } catch {
    return undefined;
  }
}

/** The roles of a local run against moto, for as long as the command runs. */
export interface EmulatorRoles extends DeployedRoles {
  endpoint: string;
  /** Releases the administrator clients. */
  close(): void;
}

/**
 * For the command line: when AWS_ENDPOINT_URL is a local moto server, each Lambda's role of the
 * template, made in the emulator with the caller's credentials (the SDK's default chain); else
 * undefined, and the caller's credentials are used as they are (real AWS).
 */
export async function emulatorRoles(options: {
  /** Read only when an emulator is found. */
  template: () => CfnTemplate | Promise<CfnTemplate>;
  /** The REKEY_* variables the run gives its handlers. */
  env: Record<string, string | undefined>;
  /** Where AWS_ENDPOINT_URL is read. @default process.env */
  source?: Record<string, string | undefined>;
}): Promise<EmulatorRoles | undefined> {
  const endpoint = await motoEndpoint(options.source);
  if (!endpoint) return undefined;
  const admin = { iam: new IAMClient({ maxAttempts: 3 }), sts: new STSClient({ maxAttempts: 3 }) };
  const close = () => {
    admin.iam.destroy();
    admin.sts.destroy();
  };
  try {
    const [template, emulator] = await Promise.all([
      options.template(),
      admin.iam.config.region().then((region) => connectEmulator(admin, region)),
    ]);
    return { ...deployedRoles(emulator, { template, env: options.env }), endpoint, close };
  } catch (error) {
    close();
    throw error;
  }
}

const synthesizedMembers = new Map<string, Promise<CfnTemplate>>();

/**
 * The member stack's template (infra/member-stack.ts) for a `rekey` configuration with
 * `organization`, synthesized in this process with cdk.json's other context, as synthesizeTemplate
 * does the hub's: the member roles of a run whose configuration is not cdk.json's.
 */
export function synthesizeMemberTemplate(rawConfig: unknown): Promise<CfnTemplate> {
  const key = JSON.stringify(rawConfig);
  let template = synthesizedMembers.get(key);
  if (!template) {
    template = (async () => {
      const [{ loadConfig }, { synthesizeMemberStack }] = await Promise.all([
        import('../infra/config.ts'),
        import('../infra/member-stack.ts'),
      ]);
      const context = cdkContextWithoutRekey();
      return synthesizeMemberStack(loadConfig(rawConfig), context) as CfnTemplate;
    })();
    synthesizedMembers.set(key, template);
  }
  return template;
}
