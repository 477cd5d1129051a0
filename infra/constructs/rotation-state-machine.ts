import { Duration, Lazy, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import {
  ELIGIBILITY_STOPS,
  REJECTION_ERRORS,
  type ROLLBACK_ERRORS,
  SAFE_STOP_ERRORS,
} from '../../contract/errors.ts';
import type { StepName } from '../../contract/functions.ts';
import type { NotificationEvent } from '../../contract/schemas.ts';
import { FAIL_ERRORS, STATE, type StateName, TRANSIENT_ERRORS } from '../../contract/states.ts';
import { type RekeyConfig, stateMachineTimeoutSeconds } from '../config.ts';

/**
 * 2 s, doubling, 6 attempts, each wait capped at 60 s, full jitter: up to ~2 minutes of backoff,
 * enough to outlast an IAM or Secrets Manager throttling burst (IAM's control-plane limits are
 * low and shared account-wide) without holding a rotation for long. Full jitter spreads the
 * retries of rotations the audit started together, so they do not throttle each other again.
 */
export const TRANSIENT_ERRORS_RETRY: sfn.RetryProps = {
  errors: [...TRANSIENT_ERRORS],
  interval: Duration.seconds(2),
  backoffRate: 2,
  maxAttempts: 6,
  maxDelay: Duration.seconds(60),
  jitterStrategy: sfn.JitterType.FULL,
};

const VERIFICATION_FAILED: (typeof ROLLBACK_ERRORS)[number] = 'RotationVerificationFailed';

/**
 * A literal JSON null in Parameters. CDK's TaskInput.fromObject silently drops null-valued
 * fields; a token that resolves to null survives rendering.
 */
const jsonNull = () => Lazy.any({ produce: () => null });

export interface RotationStateMachineProps {
  /**
   * One Lambda per workflow step (contract/functions.ts).
   * @default - required
   */
  readonly functions: Readonly<Record<StepName, lambda.IFunction>>;
  /**
   * Waits, the execution timeout and log retention come from here.
   * @default - required
   */
  readonly config: RekeyConfig;
  /**
   * The KMS key that encrypts the execution log group.
   * @default - encrypted by CloudWatch Logs with a key AWS owns
   */
  readonly logsKey?: kms.IKey;
}

/**
 * The rotation workflow of docs/design.md as a Standard, JSONPath-only state machine whose Tasks
 * all invoke Lambdas directly (Resource = function ARN): exactly what the local engine runs.
 */
export class RotationStateMachine extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: RotationStateMachineProps) {
    super(scope, id);
    const { functions, config } = props;

    const invoke = (
      name: StateName,
      step: StepName,
      comment: string,
      /** resultPath: where the result goes (default: discarded); replaceState: it becomes the state. */
      options: { payload?: sfn.TaskInput; resultPath?: string; replaceState?: boolean } = {},
    ): tasks.LambdaInvoke => {
      const task = new tasks.LambdaInvoke(this, name, {
        stateName: name,
        comment,
        lambdaFunction: functions[step],
        // Resource = the function ARN: the Lambda gets the payload as its event and its return
        // value is the result, with no {Payload} envelope to unwrap.
        payloadResponseOnly: true,
        // Replaced by TRANSIENT_ERRORS_RETRY, which covers the same Lambda errors and more.
        retryOnServiceExceptions: false,
        ...(options.payload ? { payload: options.payload } : {}),
        // Replacing the state is the ASL default, so it is left implicit (never "ResultPath": "$").
        ...(options.replaceState ? {} : { resultPath: options.resultPath ?? sfn.JsonPath.DISCARD }),
      });
      task.addRetry(TRANSIENT_ERRORS_RETRY);
      return task;
    };
    /** One notify invocation announces `events` (one SNS PublishBatch, one PutEvents). */
    const notify = (
      name: StateName,
      events: readonly NotificationEvent[],
      comment: string,
      resultPath?: string,
    ) =>
      invoke(name, 'notify', comment, {
        payload: sfn.TaskInput.fromObject({ events, state: sfn.JsonPath.entirePayload }),
        ...(resultPath ? { resultPath } : {}),
      });

    // Terminal states.
    const rotationFailed = new sfn.Fail(this, STATE.rotationFailed, {
      stateName: STATE.rotationFailed,
      comment: 'The rotation failed; the failure notification and the execution history say where.',
      error: FAIL_ERRORS.failed,
      cause: 'the rotation did not finish; see the failure notification and the execution history',
    });
    const reportFailure = notify(
      STATE.reportFailure,
      ['ROTATION_FAILED'],
      'Alert that the rotation failed (the error is in $.error) and release the user lock.',
      '$.outcome',
    );
    reportFailure.addCatch(rotationFailed);
    reportFailure.next(rotationFailed);
    // The same input the EventBridge rule on the execution's end gives the cleanup.
    const cleanUpAfterFailure = invoke(
      STATE.cleanUpAfterFailure,
      'cleanup',
      "Remove the key this execution made and never handed out, and release the user's lock; a key already handed out is kept.",
      {
        payload: sfn.TaskInput.fromObject({
          executionArn: sfn.JsonPath.executionId,
          status: 'FAILED',
          input: sfn.JsonPath.jsonToString(sfn.JsonPath.objectAt('$$.Execution.Input')),
        }),
        resultPath: '$.cleanup',
      },
    );
    // A cleanup that fails still lets the failure alert go out (the rule runs the cleanup again).
    cleanUpAfterFailure.addCatch(reportFailure, { resultPath: '$.cleanupError' });
    cleanUpAfterFailure.next(reportFailure);
    /** Any unexpected error of a working step: clean up, alert, then fail. */
    const onFailure = (task: tasks.LambdaInvoke) =>
      task.addCatch(cleanUpAfterFailure, { resultPath: '$.error' });

    const reject = new sfn.Fail(this, STATE.reject, {
      stateName: STATE.reject,
      comment:
        'The request is invalid, names no IAM user or an account rekey may not act in; nothing was changed.',
      error: FAIL_ERRORS.rejected,
      causePath: '$.Cause',
    });
    const stoppedSafely = new sfn.Succeed(this, STATE.stoppedSafely, {
      stateName: STATE.stoppedSafely,
      comment: 'Nothing unsafe was done; the outcome says why the rotation stopped.',
    });
    const rotationComplete = new sfn.Succeed(this, STATE.rotationComplete, {
      stateName: STATE.rotationComplete,
      comment: 'The new key is in use and in the secret; the old key is deleted.',
    });
    const rolledBack = new sfn.Fail(this, STATE.rolledBack, {
      stateName: STATE.rolledBack,
      comment: 'Verification failed after deactivation; the old key is active again.',
      error: FAIL_ERRORS.rolledBack,
      cause: 'the old key was reactivated; see the notification',
    });

    // 1. Plan.
    const plan = invoke(
      STATE.plan,
      'plan',
      'Validate the request, check the user and its keys, take the user lock, and decide what to do.',
      {
        payload: sfn.TaskInput.fromObject({
          input: sfn.JsonPath.entirePayload,
          executionId: sfn.JsonPath.executionId,
        }),
        replaceState: true,
      },
    );
    // A rejected request (nothing was changed, so no notification) replaces the state with {Error, Cause}: the raw input is not carried on.
    plan.addCatch(reject, { errors: [...REJECTION_ERRORS] });
    onFailure(plan);

    // Stops.
    const reportStopped = notify(
      STATE.reportStopped,
      ['ROTATION_STOPPED'],
      'Alert that the rotation stopped safely and why, and release the user lock.',
      '$.outcome',
    );
    reportStopped.addCatch(rotationFailed);
    reportStopped.next(stoppedSafely);
    /**
     * A step's re-check refused to act (the user became exempt or out of scope, the old key was
     * used again): nothing unsafe was done and a new rotation resumes, so it is a stop, with an alert.
     */
    const onSafeStop = (task: tasks.LambdaInvoke, errors: readonly string[]) =>
      task.addCatch(reportStopped, { errors: [...errors], resultPath: '$.error' });
    const recordSafeStop = new sfn.Pass(this, STATE.recordSafeStop, {
      stateName: STATE.recordSafeStop,
      comment: 'A stop that needs no alert (for example an exempt user): record why.',
      parameters: {
        status: 'STOPPED',
        'reason.$': '$.stopReason',
        'message.$': '$.message',
      },
      resultPath: '$.outcome',
    }).next(stoppedSafely);
    const doesStopNeedAlert = new sfn.Choice(this, STATE.doesStopNeedAlert, {
      stateName: STATE.doesStopNeedAlert,
      comment: 'Two active keys deserve an alert; an exempt or protected user does not.',
    })
      .when(sfn.Condition.booleanEquals('$.alert', true), reportStopped)
      .otherwise(recordSafeStop);

    // Rollback.
    const reportRollback = notify(
      STATE.reportRollback,
      ['ROLLED_BACK'],
      'Alert that the rotation was rolled back (the error is in $.error) and release the user lock.',
      '$.outcome',
    );
    reportRollback.addCatch(rotationFailed);
    reportRollback.next(rolledBack);
    const reactivateOldKey = invoke(
      STATE.reactivateOldKey,
      'reactivate-old-key',
      'Rollback: make the old key active again, so consumers that still use it keep working.',
    );
    onFailure(reactivateOldKey);
    reactivateOldKey.next(reportRollback);

    // The rotation itself.
    const removeExtraKey = invoke(
      STATE.removeExtraKey,
      'delete-key',
      'Delete the inactive extra key to free the second key slot; it must never have been used.',
      {
        payload: sfn.TaskInput.fromObject({
          userName: sfn.JsonPath.stringAt('$.userName'),
          // The plan always names the account (the hub's own when the request named none).
          accountId: sfn.JsonPath.stringAt('$.accountId'),
          accessKeyId: sfn.JsonPath.stringAt('$.extraKey.accessKeyId'),
          // null = the key must never have been used (the schema requires the field).
          notUsedSince: jsonNull(),
        }),
      },
    );
    onSafeStop(removeExtraKey, ELIGIBILITY_STOPS);
    onFailure(removeExtraKey);

    const createSecondKey = invoke(
      STATE.createSecondKey,
      'create-second-key',
      'Create the new access key and store it in Secrets Manager in the same invocation.',
      { resultPath: '$.newKey' },
    );
    onSafeStop(createSecondKey, ELIGIBILITY_STOPS);
    onFailure(createSecondKey);
    const verifyNewKey = invoke(
      STATE.verifyNewKey,
      'verify-new-key',
      'Sign a call with the stored key, retrying while IAM propagates it, then make it AWSCURRENT; ' +
        'the hand-out is the instant the old key must be quiet since (a resumed run keeps its own).',
      { resultPath: '$.quietSince' },
    );
    onFailure(verifyNewKey);
    // The start and the new key in one invocation: nothing a subscriber could act on happens
    // between them (the create and the proof), and a resumed run announces no start (notify.ts).
    const reportNewKeyReady = notify(
      STATE.reportNewKeyReady,
      ['ROTATION_STARTED', 'NEW_KEY_READY'],
      'Announce that the rotation started (unless it resumes one) and tell consumers to switch to the new key in the secret.',
    );
    onFailure(reportNewKeyReady);
    const waitForAdoption = new sfn.Wait(this, STATE.waitForAdoption, {
      stateName: STATE.waitForAdoption,
      comment: `Give consumers ${config.adoptionWaitDays} day(s) to switch to the new key.`,
      time: sfn.WaitTime.duration(Duration.days(config.adoptionWaitDays)),
    });
    const checkLastUsed = invoke(
      STATE.checkLastUsed,
      'check-last-used',
      'Check whether the old key was used since the instant it must be quiet since (the hand-out, or the last check that found use).',
      { resultPath: '$.adoption' },
    );
    onFailure(checkLastUsed);
    const warnStillInUse = notify(
      STATE.warnStillInUse,
      ['OLD_KEY_STILL_IN_USE'],
      'Warn that the old key is still used, with where it was last used, before waiting again.',
    );
    onFailure(warnStillInUse);
    // No Assign in the local engine: a Pass moves the check's instant into the state.
    const moveQuietSince = new sfn.Pass(this, STATE.moveQuietSince, {
      stateName: STATE.moveQuietSince,
      comment:
        'The consumer may switch before the next check: from now on only uses from this check on keep the old key in use.',
      inputPath: '$.adoption.quietSince',
      resultPath: '$.quietSince',
    });
    moveQuietSince.next(warnStillInUse);
    warnStillInUse.next(waitForAdoption);

    const deactivateOldKey = invoke(
      STATE.deactivateOldKey,
      'deactivate-old-key',
      'Deactivate the old key, after re-checking it stayed quiet and the user may still be rotated.',
      { resultPath: '$.deactivation' },
    );
    onSafeStop(deactivateOldKey, SAFE_STOP_ERRORS);
    onFailure(deactivateOldKey);
    const reportDeactivated = notify(
      STATE.reportDeactivated,
      ['KEY_DEACTIVATED'],
      'Announce that the old key is inactive (and can be reactivated until it is deleted).',
    );
    onFailure(reportDeactivated);
    const waitBeforeDelete = new sfn.Wait(this, STATE.waitBeforeDelete, {
      stateName: STATE.waitBeforeDelete,
      comment: `Keep the old key inactive for ${config.deleteAfterDays} day(s) before deleting it.`,
      time: sfn.WaitTime.duration(Duration.days(config.deleteAfterDays)),
    });
    // One step checks and deletes: its last-use read of the old key and the user's re-check come
    // right before DeleteAccessKey, so the delete acts on nothing older than that invocation.
    const verifyRotation = invoke(
      STATE.verifyRotation,
      'verify-rotation',
      'Check the new key still works and the old key stayed inactive and unused since the instant it must be ' +
        'quiet since, then delete the old key; roll back if a check fails.',
    );
    verifyRotation.addCatch(reactivateOldKey, { errors: [VERIFICATION_FAILED], resultPath: '$.error' });
    onSafeStop(verifyRotation, ELIGIBILITY_STOPS);
    onFailure(verifyRotation);
    const reportComplete = notify(
      STATE.reportComplete,
      ['ROTATION_COMPLETED'],
      'Announce that the rotation is complete and release the user lock.',
      '$.outcome',
    );
    reportComplete.addCatch(rotationFailed);

    const isOldKeyInUse = new sfn.Choice(this, STATE.isOldKeyInUse, {
      stateName: STATE.isOldKeyInUse,
      comment:
        'Deactivate only a key that went quiet; otherwise wait again, or stop safely with both keys active.',
    })
      .when(sfn.Condition.booleanEquals('$.adoption.inUse', false), deactivateOldKey)
      .when(sfn.Condition.booleanEquals('$.adoption.mayWaitAgain', true), moveQuietSince)
      .otherwise(reportStopped);

    createSecondKey
      .next(verifyNewKey)
      .next(reportNewKeyReady)
      .next(waitForAdoption)
      .next(checkLastUsed)
      .next(isOldKeyInUse);
    deactivateOldKey
      .next(reportDeactivated)
      .next(waitBeforeDelete)
      .next(verifyRotation)
      .next(reportComplete)
      .next(rotationComplete);

    const reportDryRun = new sfn.Pass(this, STATE.reportDryRun, {
      stateName: STATE.reportDryRun,
      comment: 'A dry run ends with the plan; nothing was changed.',
      parameters: { status: 'DRY_RUN', 'message.$': '$.message' },
      resultPath: '$.outcome',
    });
    // One Choice, its rules in order: the first that matches decides. The plan always writes
    // `resumeStage` (null unless it resumes), so every rule reads a field that is there.
    const followPlan = new sfn.Choice(this, STATE.followPlan, {
      stateName: STATE.followPlan,
      comment:
        'A dry run reports the plan; a stop stops; a resumed rotation re-enters where its keys are ' +
        '(both active: re-prove the new key, then the adoption checks; the old one inactive: the ' +
        'verification); an inactive, unused extra key is removed first; else the rotation starts.',
    })
      .when(sfn.Condition.booleanEquals('$.dryRun', true), reportDryRun)
      .when(sfn.Condition.stringEquals('$.action', 'STOP'), doesStopNeedAlert)
      .when(sfn.Condition.stringEquals('$.resumeStage', 'ADOPTION'), verifyNewKey)
      .when(sfn.Condition.stringEquals('$.resumeStage', 'DELETION'), waitBeforeDelete)
      // A type test for true (the local engine cannot test for false): a null extraKey has no id.
      .when(sfn.Condition.isPresent('$.extraKey.accessKeyId'), removeExtraKey)
      .otherwise(createSecondKey);
    removeExtraKey.next(createSecondKey);
    plan.next(followPlan);

    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      // The vendedlogs prefix keeps Step Functions from growing the account's CloudWatch Logs
      // resource policy (a 5,120-character limit) with one entry per log group.
      logGroupName: `/aws/vendedlogs/states/${Stack.of(this).stackName}-rotation`,
      retention: config.logRetentionDays as logs.RetentionDays,
      ...(props.logsKey ? { encryptionKey: props.logsKey } : {}),
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineType: sfn.StateMachineType.STANDARD,
      comment:
        'rekey: rotate one IAM user access key safely (create, verify, hand out, wait for adoption, ' +
        'deactivate, verify, delete; roll back on failed verification). Input: {"userName": "..."}, ' +
        'plus "serviceName" to rotate a Keyspaces or CodeCommit service-specific credential instead, ' +
        'and "accountId" for a user of a member account of the organization.',
      definitionBody: sfn.DefinitionBody.fromChainable(plan),
      timeout: Duration.seconds(stateMachineTimeoutSeconds(config)),
      tracingEnabled: true,
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });

    const role = this.stateMachine.role;
    Validations.of(role).acknowledge({
      id: 'NIST.800.53.R5-IAMNoInlinePolicy',
      reason:
        "the policy CDK derives from the definition belongs to this role alone: inline, it lives and dies with the role and cannot be attached to another principal by mistake (IAM's guidance for a strict one-to-one relationship)",
    });
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'X-Ray tracing (xray:PutTraceSegments, ...) and log delivery (logs:CreateLogDelivery, ...) ' +
        'have no resource type',
    });
    for (const fn of new Set(Object.values(functions))) {
      const logicalId = Stack.of(this).getLogicalId(fn.node.defaultChild as lambda.CfnFunction);
      Validations.of(role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${logicalId}.Arn>:*]`,
        reason: 'LambdaInvoke grants the function and its versions/aliases (<arn>:*); only these functions',
      });
    }
  }
}
