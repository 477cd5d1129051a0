/**
 * The member stack (docs/organizations.md): what a member account of the organization holds so
 * that the hub can act in it. A service-managed StackSet of the hub stack deploys it
 * (infra/constructs/member-stack-set.ts); `cdk synth` also writes it on its own
 * (cdk.out/RekeyMemberStack.template.json) for local runs.
 *
 * One IAM role per hub Lambda that acts in a member account (MEMBER_LAMBDAS), named
 * `<memberRolePrefix><lambda>` so that the hub assumes it by ARN, holding exactly that Lambda's
 * member-side statements of the one permission table (infra/step-permissions.ts memberGrants; the
 * audit's from infra/constructs/audit.ts auditAccountStatements) on this account's resources, and
 * trusted only by that hub Lambda's role (a template parameter) from inside the organization.
 * With `secrets: member`, also the KMS key that encrypts the secrets kept in this account.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  App,
  CfnParameter,
  type CfnResource,
  DefaultStackSynthesizer,
  Stack,
  type StackProps,
  Validations,
} from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import {
  MEMBER_LAMBDAS,
  MEMBER_ROLE_METADATA_KEY,
  MEMBER_SECRETS_KEY_ALIAS,
  type MemberLambda,
  memberRoleName,
  memberServices,
} from '../contract/organization.ts';
import type { OrganizationConfig, RekeyConfig } from './config.ts';
import { auditAccountStatements } from './constructs/audit.ts';
import { FUNCTION_DESCRIPTIONS } from './constructs/rekey-function.ts';
import { SecretsKey } from './constructs/secrets-key.ts';
import {
  acknowledgePrefixWildcards,
  memberGrants,
  secretsArn,
  statementsOf,
  stepGrants,
  withProtectedUsersDeny,
} from './step-permissions.ts';
import { UserScope } from './user-scope.ts';

/** The member stack's construct id (and its template's name in cdk.out). */
export const MEMBER_STACK_ID = 'RekeyMemberStack';

/** `create-second-key` -> `CreateSecondKey`: readable construct ids, logical ids and parameter names. */
export const pascalCase = (name: string): string =>
  name
    .split('-')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');

/** The member template's parameter holding the ARN of a hub Lambda's role: `HubRole<PascalCase>`. */
export const hubRoleParameter = (lambda: MemberLambda): string => `HubRole${pascalCase(lambda)}`;

/** The Lambdas whose member roles the member secrets key lets encrypt (create) and decrypt (verify). */
const SECRET_WRITER: MemberLambda = 'create-second-key';
const SECRET_READERS: readonly MemberLambda[] = ['verify-new-key', 'verify-rotation'];

export interface RekeyMemberStackProps extends StackProps {
  /**
   * The validated configuration (infra/config.ts `loadConfig`), with `organization` set.
   * @default - required
   */
  readonly config: RekeyConfig;
}

export class RekeyMemberStack extends Stack {
  /** Each Lambda's member role. */
  readonly roles: Readonly<Record<MemberLambda, iam.Role>>;
  /** The key of the secrets kept in this account, with `secrets: member`. */
  readonly secretsKey: SecretsKey | undefined;

  constructor(scope: Construct, id: string, props: RekeyMemberStackProps) {
    super(scope, id, {
      description:
        'rekey member account: the roles the rekey hub assumes to rotate and audit access keys here',
      // A StackSet deploys it to accounts that are not CDK-bootstrapped: no bootstrap version
      // rule, no assets; and no CDK metadata, so that the StackSet's body and the template in
      // cdk.out are the same bytes.
      synthesizer: new DefaultStackSynthesizer({ generateBootstrapVersionRule: false }),
      analyticsReporting: false,
      ...props,
    });
    const { config } = props;
    const organization = config.organization;
    if (!organization) throw new Error(`${id}: the member stack needs the organization setting`);
    const secrets = organization.secrets;
    const userScope = new UserScope(this, config);
    const secretsInHere = secretsArn(this, config.secretPrefix);

    this.secretsKey =
      secrets === 'member'
        ? new SecretsKey(this, 'SecretsKey', {
            alias: MEMBER_SECRETS_KEY_ALIAS,
            description:
              'rekey: encrypts the rotated IAM access keys of this member account stored in Secrets Manager',
            secretPrefix: config.secretPrefix,
            userPathPrefix: config.userPathPrefix,
            consumerPrincipals: config.consumerPrincipals,
            consumersByTag: config.consumerTag !== false,
          })
        : undefined;

    const table = stepGrants(config);
    const statementsFor = (lambda: MemberLambda): iam.PolicyStatement[] =>
      lambda === 'audit'
        ? Object.values(auditAccountStatements(this, config, userScope)).flat()
        : withProtectedUsersDeny(
            statementsOf(memberGrants(table[lambda], secrets), {
              stack: this,
              userScope,
              arns: {
                secrets: [secretsInHere],
                ...(this.secretsKey ? { secretsKey: [this.secretsKey.key.keyArn] } : {}),
              },
            }),
            userScope,
          );

    const roles = {} as Record<MemberLambda, iam.Role>;
    for (const lambda of MEMBER_LAMBDAS) {
      const statements = statementsFor(lambda);
      for (const action of statements.flatMap((s) => s.actions)) {
        if (!memberServices(secrets).includes(action.split(':')[0] ?? ''))
          throw new Error(`${lambda}: ${action} does not act in the member account`);
      }
      const { role, policy } = this.memberRole(organization, lambda, statements);
      roles[lambda] = role;
      acknowledgeMemberWildcards(policy, lambda, statements, userScope, config, secretsInHere);
    }
    this.roles = roles;

    if (this.secretsKey) {
      // The key policy names the same roles as the hub's key does the hub's: the identity
      // policies alone cannot use the key.
      this.secretsKey.allowEncrypt(`${pascalCase(SECRET_WRITER)}Encrypts`, roles[SECRET_WRITER]);
      for (const lambda of SECRET_READERS) {
        this.secretsKey.allowDecrypt(`${pascalCase(lambda)}Decrypts`, roles[lambda]);
      }
    }
  }

  /** A member role: fixed name, trusted by its hub Lambda's role only, its statements in an AWS::IAM::Policy. */
  private memberRole(
    organization: OrganizationConfig,
    lambda: MemberLambda,
    statements: iam.PolicyStatement[],
  ): { role: iam.Role; policy: iam.Policy } {
    const hubRole = new CfnParameter(this, hubRoleParameter(lambda), {
      type: 'String',
      description: `The ARN of the rekey hub's ${lambda} Lambda role, the only principal that may assume ${memberRoleName(organization.memberRolePrefix, lambda)}`,
      allowedPattern: '^arn:aws[a-z-]*:iam::\\d{12}:role/.+$',
    });
    const role = new iam.Role(this, pascalCase(lambda), {
      roleName: memberRoleName(organization.memberRolePrefix, lambda),
      description: `rekey ${lambda}, acting in this member account for the hub: ${FUNCTION_DESCRIPTIONS[lambda]}`,
      // Exactly the hub Lambda's role, and only from inside the organization.
      assumedBy: new iam.ArnPrincipal(hubRole.valueAsString).withConditions({
        StringEquals: { 'aws:PrincipalOrgID': organization.organizationId },
      }),
    });
    (role.node.defaultChild as CfnResource).addMetadata(MEMBER_ROLE_METADATA_KEY, lambda);
    const policy = new iam.Policy(this, `${pascalCase(lambda)}Policy`, { roles: [role], statements });
    Validations.of(policy).acknowledge({
      id: 'NIST.800.53.R5-IAMNoInlinePolicy',
      reason:
        "the policy belongs to this member role alone: inline, it lives and dies with the role and cannot be attached to another principal by mistake (IAM's guidance for a strict one-to-one relationship)",
    });
    return { role, policy };
  }
}

/** Every wildcard of a member role's statements, acknowledged with why it cannot be narrower. */
function acknowledgeMemberWildcards(
  policy: iam.Policy,
  lambda: MemberLambda,
  statements: readonly iam.PolicyStatement[],
  userScope: UserScope,
  config: RekeyConfig,
  secrets: string,
): void {
  const acknowledge = (resource: string, reason: string) =>
    Validations.of(policy).acknowledge({ id: `AwsSolutions-IAM5[Resource::${resource}]`, reason });
  const allows = statements.filter((s) => s.effect === iam.Effect.ALLOW);
  if (allows.some((s) => s.resources.includes('*'))) {
    acknowledge(
      '*',
      lambda === 'audit'
        ? "the credential report, the account's authorization details and the AllUsers listing of service-specific credentials are account-wide (no resource type); every other action is scoped"
        : 'cloudtrail:LookupEvents has no resource type (cloudTrailLookup on); every other action is scoped',
    );
  }
  if (lambda !== 'audit') {
    acknowledgePrefixWildcards(policy, statements, userScope, config, secrets);
    return;
  }
  const reasons = [
    'the audit reads the key ids of any IAM user of this account that has a finding (iam:ListAccessKeys), at any path: it reports the whole account',
  ];
  const scoped = `the audit deactivates unused keys of IAM users under the path ${config.userPathPrefix}, chosen at run time`;
  const deactivates = allows.some((s) => s.actions.includes('iam:UpdateAccessKey'));
  if (deactivates && config.userPathPrefix === '/') reasons.push(scoped);
  acknowledge('arn:<AWS::Partition>:iam::<AWS::AccountId>:user/*', reasons.join('; '));
  if (deactivates && config.userPathPrefix !== '/') {
    acknowledge(`arn:<AWS::Partition>:iam::<AWS::AccountId>:user${config.userPathPrefix}*`, scoped);
  }
}

/**
 * The member stack's template for a configuration, synthesized in an app of its own (a temporary
 * directory, removed after): the hub stack's StackSet body, and local runs' member roles
 * (cli/deployed-roles.ts synthesizeMemberTemplate). `context` is the app's other context
 * (feature flags).
 */
export function synthesizeMemberStack(
  config: RekeyConfig,
  context: Record<string, unknown> = {},
): Record<string, unknown> {
  const outdir = mkdtempSync(join(tmpdir(), 'rekey-member-'));
  try {
    const app = new App({ outdir, context, autoSynth: false });
    new RekeyMemberStack(app, MEMBER_STACK_ID, { config });
    return app.synth().getStackByName(MEMBER_STACK_ID).template as Record<string, unknown>;
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}
