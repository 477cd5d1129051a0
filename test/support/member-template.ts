/**
 * A small member-like template, made with aws-cdk-lib the way the member stack is specified
 * (docs/organizations.md): one AWS::IAM::Role per Lambda given, named `<prefix><lambda>`, carrying
 * `rekey:member-role` metadata, trusted by the hub Lambda's role (a `HubRole<PascalCase>`
 * parameter) inside the organization, its statements in an AWS::IAM::Policy attached to it, with
 * resources in the member account; and the member secrets key with its alias. The tests of the
 * several-account harness run against it, so that they do not depend on the real member stack's
 * exact statements (test/infra covers those).
 */
import { App, CfnParameter, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type { CfnTemplate } from '../../cli/definition.ts';
import {
  DEFAULT_MEMBER_ROLE_PREFIX,
  MEMBER_ROLE_METADATA_KEY,
  MEMBER_SECRETS_KEY_ALIAS,
  type MemberLambda,
  memberRoleName,
} from '../../contract/organization.ts';

export interface MemberLikeTemplateOptions {
  organizationId?: string;
  memberRolePrefix?: string;
  userPathPrefix?: string;
  secretPrefix?: string;
}

const pascal = (lambda: string) =>
  lambda
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');

/** plan's and create-second-key's member-side statements (IAM in the account; its secrets and key). */
export function memberLikeTemplate(options: MemberLikeTemplateOptions = {}): CfnTemplate {
  const prefix = options.memberRolePrefix ?? DEFAULT_MEMBER_ROLE_PREFIX;
  const path = options.userPathPrefix ?? '/';
  const secretPrefix = options.secretPrefix ?? 'rekey/';
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'MemberLike');
  const key = new kms.Key(stack, 'MemberSecretsKey', { enableKeyRotation: true });
  key.addAlias(MEMBER_SECRETS_KEY_ALIAS);
  const users = `arn:${stack.partition}:iam::${stack.account}:user${path}*`;
  const secrets = `arn:${stack.partition}:secretsmanager:${stack.region}:${stack.account}:secret:${secretPrefix}*`;
  const statements: Partial<Record<MemberLambda, iam.PolicyStatement[]>> = {
    plan: [
      new iam.PolicyStatement({
        actions: ['iam:GetUser'],
        resources: [`arn:${stack.partition}:iam::${stack.account}:user/*`],
      }),
      new iam.PolicyStatement({
        actions: ['iam:ListUserTags', 'iam:ListAccessKeys', 'iam:GetAccessKeyLastUsed'],
        resources: [users],
      }),
      new iam.PolicyStatement({ actions: ['secretsmanager:DescribeSecret'], resources: [secrets] }),
    ],
    'create-second-key': [
      new iam.PolicyStatement({
        actions: ['iam:GetUser', 'iam:ListAccessKeys', 'iam:CreateAccessKey', 'iam:DeleteAccessKey'],
        resources: [users],
      }),
      new iam.PolicyStatement({
        actions: ['secretsmanager:CreateSecret', 'secretsmanager:PutSecretValue'],
        resources: [secrets],
      }),
      new iam.PolicyStatement({ actions: ['kms:Encrypt', 'kms:GenerateDataKey'], resources: [key.keyArn] }),
    ],
  };
  for (const [lambda, allowed] of Object.entries(statements)) {
    const hubRole = new CfnParameter(stack, `HubRole${pascal(lambda)}`, { type: 'String' });
    const role = new iam.Role(stack, `${pascal(lambda)}MemberRole`, {
      roleName: memberRoleName(prefix, lambda as MemberLambda),
      assumedBy: new iam.ArnPrincipal(hubRole.valueAsString).withConditions({
        StringEquals: { 'aws:PrincipalOrgID': options.organizationId ?? 'o-exampleorgid' },
      }),
    });
    (role.node.defaultChild as iam.CfnRole).addMetadata(MEMBER_ROLE_METADATA_KEY, lambda);
    new iam.Policy(stack, `${pascal(lambda)}MemberPolicy`, { roles: [role], statements: allowed });
  }
  return app.synth().getStackByName('MemberLike').template as CfnTemplate;
}
