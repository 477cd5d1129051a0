import { CfnOutput, Fn, Lazy, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { STEP_NAMES, type StepName } from '../contract/functions.ts';
import type { RekeyConfig, RekeyResources } from './config.ts';
import { Alarms } from './constructs/alarms.ts';
import { Audit } from './constructs/audit.ts';
import { Dashboard } from './constructs/dashboard.ts';
import { ExecutionCleanup } from './constructs/execution-cleanup.ts';
import { LockTable } from './constructs/lock-table.ts';
import { LogsKey } from './constructs/logs-key.ts';
import { MemberStackSet } from './constructs/member-stack-set.ts';
import { Notifications } from './constructs/notifications.ts';
import { OrganizationAudit } from './constructs/organization-audit.ts';
import { RekeyFunction } from './constructs/rekey-function.ts';
import { RotationStateMachine } from './constructs/rotation-state-machine.ts';
import { SecretsKey } from './constructs/secrets-key.ts';
import { acknowledgeAssumeMemberRole, assumeMemberRole, grantStepPermissions } from './step-permissions.ts';
import { UserScope } from './user-scope.ts';

export interface RekeyStackProps extends StackProps {
  /**
   * The validated configuration (infra/config.ts `loadConfig`).
   * @default - required
   */
  readonly config: RekeyConfig;
}

/** `create-second-key` -> `CreateSecondKey`: readable construct ids and logical ids. */
const constructId = (step: StepName) =>
  step
    .split('-')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');

/** One value per workflow step, in STEPS order. */
function byStep<T>(make: (step: StepName) => T): Record<StepName, T> {
  return Object.fromEntries(STEP_NAMES.map((step) => [step, make(step)])) as Record<StepName, T>;
}

/**
 * rekey: the rotation state machine, one Lambda per step with least-privilege permissions
 * (step-permissions.ts), the secrets key, the notifications topic and the lock table. Wiring
 * only: each concern is a construct or a module of its own.
 */
export class RekeyStack extends Stack {
  readonly functions: Readonly<Record<StepName, RekeyFunction>>;
  readonly rotation: RotationStateMachine;
  readonly cleanup: ExecutionCleanup;
  readonly audit: Audit;
  readonly alarms: Alarms;
  readonly dashboard: Dashboard;
  /** The StackSet of the member stack, with `organization`. */
  readonly memberStackSet: MemberStackSet | undefined;
  /** The organization audit (its state machine the schedule starts), with `organization`. */
  readonly organizationAudit: OrganizationAudit | undefined;

  constructor(scope: Construct, id: string, props: RekeyStackProps) {
    super(scope, id, props);
    const { config } = props;

    const secretsKeyConstruct = new SecretsKey(this, 'SecretsKey', {
      secretPrefix: config.secretPrefix,
      userPathPrefix: config.userPathPrefix,
      consumerPrincipals: config.consumerPrincipals,
      consumersByTag: config.consumerTag !== false,
      ...(config.organization?.secrets === 'hub'
        ? { organizationId: config.organization.organizationId }
        : {}),
    });
    const secretsKey = secretsKeyConstruct.key;
    const logsKey = new LogsKey(this, 'LogsKey').key;
    const notifications = new Notifications(this, 'Notifications', { emails: config.notificationEmails });
    const lockTable = new LockTable(this, 'LockTable').table;

    // The verify steps' roles, the only rekey principals a secret's policy lets read it; they are
    // created with their functions, after the create step's environment names them.
    const secretReaders: StepName[] = ['verify-new-key', 'verify-rotation'];
    const resources: RekeyResources = {
      hubAccountId: this.account,
      kmsKeyId: secretsKey.keyArn,
      topicArn: notifications.topic.topicArn,
      lockTable: lockTable.tableName,
      secretReaderRoles: Lazy.string({
        produce: () =>
          Fn.join(
            ',',
            secretReaders.map((step) => this.functions[step].role.roleArn),
          ),
      }),
    };
    const functions = byStep(
      (step) =>
        new RekeyFunction(this, constructId(step), {
          name: step,
          config,
          resources,
          logsKey,
          // An EventBridge rule invokes it too (asynchronously).
          ...(step === 'cleanup' ? { invokedAsynchronously: true } : {}),
        }),
    );
    this.functions = functions;

    // Scoped resources. IAM users: only those under the configured path (changing a key also
    // needs the opt-in tag, when configured); secrets: only ours.
    const userScope = new UserScope(this, config);
    grantStepPermissions(this, {
      config,
      functions,
      userScope,
      lockTable,
      secretsKey,
      notifications,
    });
    // The key policy names the same roles: the identity policies alone cannot use the key.
    secretsKeyConstruct.allowEncrypt('CreateStepEncrypts', functions['create-second-key'].role);
    for (const step of secretReaders) {
      secretsKeyConstruct.allowDecrypt(`${constructId(step)}StepDecrypts`, functions[step].role);
    }

    this.rotation = new RotationStateMachine(this, 'Rotation', {
      functions: byStep((step) => functions[step].lambdaFunction),
      config,
      logsKey,
    });
    this.cleanup = new ExecutionCleanup(this, 'ExecutionCleanup', {
      stateMachine: this.rotation.stateMachine,
      cleanupFunction: functions.cleanup.lambdaFunction,
    });

    const organization = config.organization;
    // Its table and listing first: the audit's environment names the table, and the audit builds
    // the state machine around its function.
    this.organizationAudit = organization
      ? new OrganizationAudit(this, 'OrganizationAudit', { config, logsKey })
      : undefined;
    this.audit = new Audit(this, 'Audit', {
      config,
      stateMachine: this.rotation.stateMachine,
      topic: notifications.topic,
      topicKey: notifications.key,
      userScope,
      logsKey,
      ...(this.organizationAudit ? { organizationAudit: this.organizationAudit } : {}),
    });

    if (organization) {
      // The audit acts in a member account through its member role, as the steps do.
      this.audit.function.role.addToPrincipalPolicy(assumeMemberRole(this, organization, 'audit'));
      acknowledgeAssumeMemberRole(this.audit.function.role, organization, 'audit');
    }
    this.memberStackSet = organization
      ? new MemberStackSet(this, 'Members', {
          config,
          hubRoles: {
            ...byStep((step) => functions[step].role),
            audit: this.audit.function.role,
          },
        })
      : undefined;

    this.alarms = new Alarms(this, 'Alarms', {
      topic: notifications.topic,
      stateMachine: this.rotation.stateMachine,
      functions: {
        ...byStep((step) => functions[step].lambdaFunction),
        audit: this.audit.function.lambdaFunction,
      },
      auditFunction: this.audit.function.lambdaFunction,
      runbookBaseUrl: config.runbookBaseUrl,
    });
    this.dashboard = new Dashboard(this, 'Dashboard', {
      auditFunction: this.audit.function.lambdaFunction,
      stateMachine: this.rotation.stateMachine,
      alarms: this.alarms.alarms,
    });

    new CfnOutput(this, 'StateMachineArn', {
      description:
        'Start a rotation: {"userName": "..."} (add "serviceName" for a service-specific credential)',
      value: this.rotation.stateMachine.stateMachineArn,
    });
    new CfnOutput(this, 'TopicArn', {
      description: 'rekey notifications',
      value: notifications.topic.topicArn,
    });
    new CfnOutput(this, 'LockTableName', {
      description: 'One rotation lock per user',
      value: lockTable.tableName,
    });
    new CfnOutput(this, 'SecretsKeyArn', {
      description: 'Encrypts the stored access keys',
      value: secretsKey.keyArn,
    });
    if (this.organizationAudit)
      new CfnOutput(this, 'OrganizationAuditStateMachineArn', {
        description:
          'Audit the organization now: {} or {"dryRun": true}, plus "accounts": [...] to audit only those',
        value: this.organizationAudit.stateMachine.stateMachineArn,
      });
  }
}
