import { Aws, CfnRule, Fn } from 'aws-cdk-lib';
import * as cloudformation from 'aws-cdk-lib/aws-cloudformation';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { MEMBER_LAMBDAS, type MemberLambda } from '../../contract/organization.ts';
import type { RekeyConfig } from '../config.ts';
import { hubRoleParameter, synthesizeMemberStack } from '../member-stack.ts';

/** The StackSet's name: `aws cloudformation list-stack-instances --stack-set-name <this>`. */
export const MEMBER_STACK_SET_NAME = 'rekey-member';

/** CloudFormation's limit on a TemplateBody passed inline. */
export const TEMPLATE_BODY_LIMIT_BYTES = 51_200;

export interface MemberStackSetProps {
  /**
   * The validated configuration, with `organization` set.
   * @default - required
   */
  readonly config: RekeyConfig;
  /**
   * Each hub Lambda's role, which its member role trusts (the template parameters).
   * @default - required
   */
  readonly hubRoles: Readonly<Record<MemberLambda, iam.IRole>>;
}

/**
 * The service-managed StackSet that deploys the member stack (infra/member-stack.ts) to every
 * account of the target OUs, and to each account that joins them later (automatic deployment),
 * removing it from an account that leaves. The member template goes inline (TemplateBody, checked
 * against CloudFormation's 51,200-byte limit): no asset bucket that every member account's
 * StackSet execution would have to be allowed to read. StackSets never deploy to the management
 * account; the hub's own account needs no member roles (the hub Lambdas act there with their own).
 */
export class MemberStackSet extends Construct {
  readonly stackSet: cloudformation.CfnStackSet;
  /** The member template the StackSet deploys. */
  readonly templateBody: string;

  constructor(scope: Construct, id: string, props: MemberStackSetProps) {
    super(scope, id);
    const { config, hubRoles } = props;
    const organization = config.organization;
    if (!organization) throw new Error(`${id}: the StackSet needs the organization setting`);
    this.templateBody = JSON.stringify(synthesizeMemberStack(config));
    const bytes = Buffer.byteLength(this.templateBody, 'utf8');
    if (bytes > TEMPLATE_BODY_LIMIT_BYTES)
      throw new Error(
        `${id}: the member template is ${bytes} bytes; a TemplateBody takes ${TEMPLATE_BODY_LIMIT_BYTES}`,
      );

    this.stackSet = new cloudformation.CfnStackSet(this, 'StackSet', {
      stackSetName: MEMBER_STACK_SET_NAME,
      description: 'rekey member accounts: the roles the rekey hub assumes (docs/organizations.md)',
      permissionModel: 'SERVICE_MANAGED',
      // SELF from the management account, DELEGATED_ADMIN from the registered delegated administrator.
      callAs: organization.stackSetCallAs,
      autoDeployment: { enabled: true, retainStacksOnAccountRemoval: false },
      // The member roles have fixed names (the hub assumes them by ARN).
      capabilities: ['CAPABILITY_NAMED_IAM'],
      // StackSets queues conflicting operations (an auto-deployment during an update) instead of failing them.
      managedExecution: { Active: true },
      operationPreferences: {
        regionConcurrencyType: 'PARALLEL',
        // Up to a quarter of the accounts at once; a failing account (an SCP, a name already
        // taken) stops the operation once a tenth have failed, without slowing the rest down.
        maxConcurrentPercentage: 25,
        failureTolerancePercentage: 10,
        concurrencyMode: 'SOFT_FAILURE_TOLERANCE',
      },
      parameters: MEMBER_LAMBDAS.map((lambda) => ({
        parameterKey: hubRoleParameter(lambda),
        parameterValue: hubRoles[lambda].roleArn,
      })),
      stackInstancesGroup: [
        {
          deploymentTargets: { organizationalUnitIds: [...organization.stackSetTargets] },
          regions: [...organization.stackSetRegions],
        },
      ],
      templateBody: this.templateBody,
    });

    if (organization.secrets === 'member') {
      // The hub's Lambdas keep a member account's secrets in their own region, encrypted under
      // the member key of that region: the StackSet must deploy there.
      const [region] = organization.stackSetRegions;
      new CfnRule(this, 'MemberKeysInTheHubRegion', {
        assertions: [
          {
            assert: Fn.conditionEquals(Aws.REGION, region ?? ''),
            assertDescription: `With secrets: member, the hub must be deployed in the StackSet's region (${region}): the secrets of a member account live in the hub's region, under that region's member key`,
          },
        ],
      });
    }
  }
}
