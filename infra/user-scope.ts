/**
 * Which IAM users rekey may touch, as IAM policy: users under the configured path (the Resource of
 * every IAM statement), carrying the opt-in tag when one is configured (a condition on the
 * actions that change keys), never a protected user (an explicit Deny). The Lambdas enforce the
 * same rules in code (lambdas/rotation/plan/plan.ts); the policies hold even if the code did not.
 */
import { ArnFormat, type Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { RekeyConfig } from './config.ts';

/**
 * The IAM actions that change a user's access keys. They act on the `user` resource type, whose
 * condition keys are aws:ResourceTag/${TagKey} and iam:ResourceTag/${TagKey} (Service
 * Authorization Reference, IAM: resource types), so IAM evaluates the opt-in tag on them.
 */
export const MUTATING_KEY_ACTIONS = ['iam:CreateAccessKey', 'iam:UpdateAccessKey', 'iam:DeleteAccessKey'];

/**
 * The same for service-specific credentials (Keyspaces, CodeCommit): their actions act on the
 * `user` resource type too, so the path, the opt-in tag and the protected-users Deny scope them
 * exactly as they scope the access-key actions.
 */
export const MUTATING_SERVICE_CREDENTIAL_ACTIONS = [
  'iam:CreateServiceSpecificCredential',
  'iam:UpdateServiceSpecificCredential',
  'iam:DeleteServiceSpecificCredential',
];

/** Every action that changes a user's credentials. */
export const MUTATING_CREDENTIAL_ACTIONS = [...MUTATING_KEY_ACTIONS, ...MUTATING_SERVICE_CREDENTIAL_ACTIONS];

/** Whether an action changes a credential (an access key or a service-specific credential). */
export const isMutatingKeyAction = (action: string): boolean => MUTATING_CREDENTIAL_ACTIONS.includes(action);

export type UserScopeConfig = Pick<RekeyConfig, 'userPathPrefix' | 'optInTag' | 'protectedUsers'>;

export class UserScope {
  /** `arn:<partition>:iam::<account>:user<userPathPrefix>*`: every user under the path. */
  readonly users: string;
  /**
   * `arn:<partition>:iam::<account>:user/*`: every user of the account, at any path. Only for
   * reading what decides whether a user is in scope (its path): IAM authorizes a request on a user
   * by the user's ARN, path included, so a role scoped to the path could not even read the path of
   * a user outside it, and would fail with AccessDenied instead of refusing it.
   */
  readonly everyUser: string;
  private readonly stack: Stack;
  private readonly config: UserScopeConfig;

  constructor(stack: Stack, config: UserScopeConfig) {
    this.stack = stack;
    this.config = config;
    this.users = this.userArn(`${config.userPathPrefix}*`);
    this.everyUser = this.userArn('/*');
  }

  /**
   * Statements allowing `actions` on the users in scope. Key-changing actions get their own
   * statement, conditioned on the opt-in tag when one is configured; reads do not, so that the
   * plan can read a user's tags and refuse it cleanly instead of failing on AccessDenied.
   */
  allow(actions: readonly string[]): iam.PolicyStatement[] {
    const reads = actions.filter((a) => !isMutatingKeyAction(a));
    const writes = actions.filter(isMutatingKeyAction);
    const statements: iam.PolicyStatement[] = [];
    if (reads.length > 0)
      statements.push(new iam.PolicyStatement({ actions: reads, resources: [this.users] }));
    if (writes.length > 0) {
      statements.push(
        new iam.PolicyStatement({
          actions: writes,
          resources: [this.users],
          ...(this.config.optInTag === undefined
            ? {}
            : // Null = false: the tag is present, whatever its value (the code tests presence too).
              { conditions: { Null: { [`aws:ResourceTag/${this.config.optInTag}`]: 'false' } } }),
        }),
      );
    }
    return statements;
  }

  /**
   * The explicit Deny of `actions` (by default every key-changing action; the rotation steps pass
   * MUTATING_CREDENTIAL_ACTIONS) on the protected users, for each role that may change keys (none
   * when no user is protected). A user's ARN holds its path, so each name
   * is matched at the root path (`user/<name>`) and under any path (`user/*\/<name>`), and only
   * as the whole name. ARN matching is case-sensitive: protectedUsers must be spelt as IAM
   * spells the names (the code's check ignores case).
   */
  protectedUsersDeny(actions: readonly string[] = MUTATING_KEY_ACTIONS): iam.PolicyStatement | undefined {
    if (this.config.protectedUsers.length === 0) return undefined;
    return new iam.PolicyStatement({
      sid: 'NeverTouchProtectedUsers',
      effect: iam.Effect.DENY,
      actions: [...actions],
      resources: this.config.protectedUsers.flatMap((name) => [
        this.userArn(`/${name}`),
        this.userArn(`/*/${name}`),
      ]),
    });
  }

  private userArn(pathAndName: string): string {
    return this.stack.formatArn({
      service: 'iam',
      region: '',
      resource: `user${pathAndName}`,
      arnFormat: ArnFormat.NO_RESOURCE_NAME,
    });
  }
}
