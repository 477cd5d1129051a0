import { CfnOutput, type CfnResource, Duration, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { ENDED_STATUSES } from '../../contract/schemas.ts';

/** The detail-type of Step Functions' own events for a Standard workflow's execution. */
export const EXECUTION_STATUS_CHANGE = 'Step Functions Execution Status Change';

/**
 * EventBridge's delivery of a status change to the cleanup: a Lambda throttle or a short service
 * problem is ridden out for hours; after that the event goes to the dead-letter queue (the lock
 * then still expires with the execution timeout, and the next plan finds what the journal says).
 */
export const CLEANUP_DELIVERY_RETRY = { retryAttempts: 10, maxEventAge: Duration.hours(6) } as const;

/**
 * The cleanup's own asynchronous invocations: it is idempotent (it acts only while the ended
 * execution holds the lock), so Lambda's two retries are safe; what still fails goes to the queue.
 */
export const CLEANUP_ASYNC_INVOKE = { retryAttempts: 2, maxEventAge: Duration.hours(6) } as const;

/** How long an event the cleanup could not handle stays in the queue to be looked at. */
const DEAD_LETTER_RETENTION = Duration.days(14);

export interface ExecutionCleanupProps {
  /**
   * The rotation state machine whose ended executions are cleaned up after.
   * @default - required
   */
  readonly stateMachine: sfn.IStateMachine;
  /**
   * The cleanup Lambda (the `cleanup` step, also the head of the state machine's failure path).
   * @default - required
   */
  readonly cleanupFunction: lambda.IFunction;
}

/**
 * Console Stop, an execution timeout and a failure the failure path could not handle (a failing
 * terminal notification) all end an execution without its terminal notify; the EventBridge rule
 * on Step Functions' status change events hands each to the cleanup, which releases the user's
 * lock and removes a key that execution made and never handed out.
 */
export class ExecutionCleanup extends Construct {
  readonly rule: events.Rule;
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: ExecutionCleanupProps) {
    super(scope, id);
    const { stateMachine, cleanupFunction } = props;

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: DEAD_LETTER_RETENTION,
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'this is the dead-letter queue: of the status change rule (undelivered events) and of the cleanup function (failed asynchronous runs)',
    });

    cleanupFunction.configureAsyncInvoke({
      ...CLEANUP_ASYNC_INVOKE,
      onFailure: new destinations.SqsDestination(this.deadLetterQueue),
    });
    Validations.of(cleanupFunction.node.defaultChild as CfnResource).acknowledge({
      id: 'NIST.800.53.R5-LambdaDLQ',
      reason:
        "a failed asynchronous cleanup goes to the cleanup's dead-letter queue through the on-failure destination, which records the error with the event (a DLQ would record the event only)",
    });

    this.rule = new events.Rule(this, 'Rule', {
      description: 'rekey: clean up after a rotation that failed, was stopped or timed out',
      eventPattern: {
        source: ['aws.states'],
        detailType: [EXECUTION_STATUS_CHANGE],
        detail: { status: [...ENDED_STATUSES], stateMachineArn: [stateMachine.stateMachineArn] },
      },
    });
    this.rule.addTarget(
      new targets.LambdaFunction(cleanupFunction, {
        // The cleanup's input, the same shape the failure path gives it (contract/schemas.ts
        // CleanupInput): the event's detail carries the execution input as JSON text.
        event: events.RuleTargetInput.fromObject({
          executionArn: events.EventField.fromPath('$.detail.executionArn'),
          status: events.EventField.fromPath('$.detail.status'),
          input: events.EventField.fromPath('$.detail.input'),
        }),
        deadLetterQueue: this.deadLetterQueue,
        ...CLEANUP_DELIVERY_RETRY,
      }),
    );

    new CfnOutput(this, 'DeadLetterQueueUrl', {
      description: 'Execution ends the cleanup could not handle (undelivered events, failed cleanups)',
      value: this.deadLetterQueue.queueUrl,
    }).overrideLogicalId('CleanupDeadLetterQueueUrl');
  }
}
