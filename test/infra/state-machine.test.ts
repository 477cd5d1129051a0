import { createRequire } from 'node:module';
import * as dynamodb from '@aws-sdk/client-dynamodb';
import * as eventBridge from '@aws-sdk/client-eventbridge';
import * as iam from '@aws-sdk/client-iam';
import * as secretsManager from '@aws-sdk/client-secrets-manager';
import * as sns from '@aws-sdk/client-sns';
import { describe, expect, it } from 'vitest';
import type { StepName } from '../../contract/functions.ts';
import { STATE, TRANSIENT_ERRORS } from '../../contract/states.ts';
import { stateMachineTimeoutSeconds } from '../../infra/config.ts';
import { type AslState, definitionOf, getAttId, lambdaArn, onlyLogicalId, synth } from './helpers.ts';

// asl-validator 4 is CommonJS without type declarations.
type AslValidator = (
  definition: unknown,
  options?: { checkPaths: boolean; checkArn: boolean },
) => { isValid: boolean; errorsText: (separator?: string) => string };
const aslValidator = createRequire(import.meta.url)('asl-validator') as AslValidator;

const DAY = 86_400;
const ALL = ['States.ALL'];
const notifyPayload = (...events: string[]) => ({ events, 'state.$': '$' });
const toFailure = { ErrorEquals: ALL, ResultPath: '$.error', Next: 'Clean up after the failure' };
const toFailed = { ErrorEquals: ALL, Next: 'Rotation failed' };
/** A step's re-check refused to act: a safe, resumable stop, reported with an alert. */
const ELIGIBILITY = ['UserExempt', 'UserProtected', 'UserOutOfScope'];
const toStopped = (errors: string[]) => ({
  ErrorEquals: errors,
  ResultPath: '$.error',
  Next: 'Report that the rotation stopped',
});
const task = (step: StepName, rest: Partial<AslState>): AslState => ({
  Type: 'Task',
  Resource: lambdaArn(step),
  ResultPath: null,
  Catch: [toFailure],
  ...rest,
});

/** The whole workflow, as the issue specifies it (Comment and Retry are checked separately). */
function expectedStates(adoptionWaitDays: number, deleteAfterDays: number): Record<string, AslState> {
  return {
    'Plan the rotation': task('plan', {
      // No ResultPath: the result replaces the state (the default, left implicit).
      ResultPath: undefined,
      Parameters: { 'input.$': '$', 'executionId.$': '$$.Execution.Id' },
      Next: 'What does the plan say?',
      Catch: [
        { ErrorEquals: ['InvalidInput', 'UserNotFound', 'AccountRefused'], Next: 'Reject the request' },
        toFailure,
      ],
    }),
    'Reject the request': { Type: 'Fail', Error: 'RotationRequestRejected', CausePath: '$.Cause' },
    // One Choice routes every plan; its rules are tried in this order.
    'What does the plan say?': {
      Type: 'Choice',
      Choices: [
        { Variable: '$.dryRun', BooleanEquals: true, Next: 'Report the dry-run plan' },
        { Variable: '$.action', StringEquals: 'STOP', Next: 'Does the stop need an alert?' },
        // A resumed rotation creates no key: it re-enters where its keys are.
        { Variable: '$.resumeStage', StringEquals: 'ADOPTION', Next: 'Verify the new key works' },
        { Variable: '$.resumeStage', StringEquals: 'DELETION', Next: 'Wait before deleting the old key' },
        { Variable: '$.extraKey.accessKeyId', IsPresent: true, Next: 'Remove the unused extra key' },
      ],
      Default: 'Create the second key',
    },
    'Report the dry-run plan': {
      Type: 'Pass',
      Parameters: { status: 'DRY_RUN', 'message.$': '$.message' },
      ResultPath: '$.outcome',
      End: true,
    },
    'Does the stop need an alert?': {
      Type: 'Choice',
      Choices: [{ Variable: '$.alert', BooleanEquals: true, Next: 'Report that the rotation stopped' }],
      Default: 'Record the safe stop',
    },
    'Report that the rotation stopped': task('notify', {
      Parameters: notifyPayload('ROTATION_STOPPED'),
      ResultPath: '$.outcome',
      Next: 'Stopped safely',
      Catch: [toFailed],
    }),
    'Record the safe stop': {
      Type: 'Pass',
      Parameters: { status: 'STOPPED', 'reason.$': '$.stopReason', 'message.$': '$.message' },
      ResultPath: '$.outcome',
      Next: 'Stopped safely',
    },
    'Stopped safely': { Type: 'Succeed' },
    'Remove the unused extra key': task('delete-key', {
      Parameters: {
        'userName.$': '$.userName',
        // The account the plan names (the hub's own when the request named none).
        'accountId.$': '$.accountId',
        'accessKeyId.$': '$.extraKey.accessKeyId',
        notUsedSince: null,
      },
      Next: 'Create the second key',
      Catch: [toStopped(ELIGIBILITY), toFailure],
    }),
    'Create the second key': task('create-second-key', {
      ResultPath: '$.newKey',
      Next: 'Verify the new key works',
      Catch: [toStopped(ELIGIBILITY), toFailure],
    }),
    // Its result is the quiet-since instant Q (the hand-out, or a resumed run's own start).
    'Verify the new key works': task('verify-new-key', {
      ResultPath: '$.quietSince',
      Next: 'Tell consumers the new key is ready',
    }),
    // One invocation announces both: the start (unless the run resumes one) and the new key.
    'Tell consumers the new key is ready': task('notify', {
      Parameters: notifyPayload('ROTATION_STARTED', 'NEW_KEY_READY'),
      Next: 'Wait for consumers to adopt the new key',
    }),
    'Wait for consumers to adopt the new key': {
      Type: 'Wait',
      Seconds: adoptionWaitDays * DAY,
      Next: 'Check whether the old key is still used',
    },
    'Check whether the old key is still used': task('check-last-used', {
      ResultPath: '$.adoption',
      Next: 'Is the old key still in use?',
    }),
    'Is the old key still in use?': {
      Type: 'Choice',
      Choices: [
        { Variable: '$.adoption.inUse', BooleanEquals: false, Next: 'Deactivate the old key' },
        {
          Variable: '$.adoption.mayWaitAgain',
          BooleanEquals: true,
          Next: 'Count only uses from this check on',
        },
      ],
      Default: 'Report that the rotation stopped',
    },
    // Q moves to the time of the check that found use: the consumer may switch before the next one.
    'Count only uses from this check on': {
      Type: 'Pass',
      InputPath: '$.adoption.quietSince',
      ResultPath: '$.quietSince',
      Next: 'Warn that the old key is still in use',
    },
    'Warn that the old key is still in use': task('notify', {
      Parameters: notifyPayload('OLD_KEY_STILL_IN_USE'),
      Next: 'Wait for consumers to adopt the new key',
    }),
    'Deactivate the old key': task('deactivate-old-key', {
      ResultPath: '$.deactivation',
      Next: 'Report that the old key was deactivated',
      Catch: [toStopped([...ELIGIBILITY, 'OldKeyStillInUse']), toFailure],
    }),
    'Report that the old key was deactivated': task('notify', {
      Parameters: notifyPayload('KEY_DEACTIVATED'),
      Next: 'Wait before deleting the old key',
    }),
    'Wait before deleting the old key': {
      Type: 'Wait',
      Seconds: deleteAfterDays * DAY,
      Next: 'Verify the old key stayed unused, then delete it',
    },
    // The checks and the delete in one Task: a failed check rolls back, a user who left rekey's
    // scope stops it with the old key kept inactive.
    'Verify the old key stayed unused, then delete it': task('verify-rotation', {
      Next: 'Report that the rotation is complete',
      Catch: [
        {
          ErrorEquals: ['RotationVerificationFailed'],
          ResultPath: '$.error',
          Next: 'Reactivate the old key',
        },
        toStopped(ELIGIBILITY),
        toFailure,
      ],
    }),
    'Report that the rotation is complete': task('notify', {
      Parameters: notifyPayload('ROTATION_COMPLETED'),
      ResultPath: '$.outcome',
      Next: 'Rotation complete',
      Catch: [toFailed],
    }),
    'Rotation complete': { Type: 'Succeed' },
    'Reactivate the old key': task('reactivate-old-key', { Next: 'Report the rollback' }),
    'Report the rollback': task('notify', {
      Parameters: notifyPayload('ROLLED_BACK'),
      ResultPath: '$.outcome',
      Next: 'Rotation rolled back',
      Catch: [toFailed],
    }),
    'Rotation rolled back': {
      Type: 'Fail',
      Error: 'RotationRolledBack',
      Cause: 'the old key was reactivated; see the notification',
    },
    // The failure path cleans up first (the same input as the rule on the execution's end gets),
    // and alerts even when the cleanup fails.
    'Clean up after the failure': task('cleanup', {
      Parameters: {
        'executionArn.$': '$$.Execution.Id',
        status: 'FAILED',
        'input.$': 'States.JsonToString($$.Execution.Input)',
      },
      ResultPath: '$.cleanup',
      Next: 'Report the failure',
      Catch: [{ ErrorEquals: ALL, ResultPath: '$.cleanupError', Next: 'Report the failure' }],
    }),
    'Report the failure': task('notify', {
      Parameters: notifyPayload('ROTATION_FAILED'),
      ResultPath: '$.outcome',
      Next: 'Rotation failed',
      Catch: [toFailed],
    }),
    'Rotation failed': {
      Type: 'Fail',
      Error: 'RotationFailed',
      Cause: 'the rotation did not finish; see the failure notification and the execution history',
    },
  };
}

const withoutDocs = ({ Comment: _comment, Retry: _retry, ...rest }: AslState) => rest;

describe('the rotation state machine', () => {
  const { resources, config } = synth();
  const definition = definitionOf(resources);
  const states = Object.entries(definition.States);
  const tasks = states.filter(([, s]) => s.Type === 'Task');

  it('starts by planning', () => {
    expect(definition.StartAt).toBe('Plan the rotation');
  });

  it('has exactly the specified states and transitions', () => {
    const expected = expectedStates(config.adoptionWaitDays, config.deleteAfterDays);
    expect(Object.keys(definition.States).sort()).toEqual(Object.keys(expected).sort());
    for (const [name, state] of states) expect(withoutDocs(state), name).toEqual(expected[name]);
  });

  it('exports the state names it uses', () => {
    expect(Object.values(STATE).sort()).toEqual(Object.keys(definition.States).sort());
  });

  it('gives every state a Comment', () => {
    for (const [name, state] of states) expect(state.Comment, name).toMatch(/\w{3,}/);
  });

  it('retries every Task on transient errors with capped, jittered backoff, and nothing else', () => {
    for (const [name, state] of tasks) {
      expect(state.Retry, name).toEqual([
        {
          ErrorEquals: [...TRANSIENT_ERRORS],
          IntervalSeconds: 2,
          BackoffRate: 2,
          MaxAttempts: 6,
          MaxDelaySeconds: 60,
          JitterStrategy: 'FULL',
        },
      ]);
    }
    expect(TRANSIENT_ERRORS).toEqual(
      expect.arrayContaining([
        'Lambda.ServiceException',
        'Lambda.TooManyRequestsException',
        'ThrottlingException',
      ]),
    );
  });

  it('retries a step whose Lambda timed out, by every name a function timeout surfaces as, on every Task', () => {
    // The runtime's error type for "Task timed out after N seconds", and the name the Step
    // Functions guide gives unhandled Lambda errors, function timeouts among them.
    for (const [name, state] of tasks) {
      expect(state.Retry?.[0]?.ErrorEquals, name).toEqual(
        expect.arrayContaining(['Sandbox.Timedout', 'Lambda.Unknown']),
      );
    }
    // A Task timeout would abandon a running invocation: neither retried nor ever set.
    expect(TRANSIENT_ERRORS).not.toContain('States.Timeout');
    for (const [name, state] of tasks) expect(state, name).not.toHaveProperty('TimeoutSeconds');
  });

  it("retries the throttling and 5xx errors of every service the steps call, by the SDK's own error names", () => {
    // A step rethrows the SDK's exception; Step Functions matches its `name`. These are the
    // classes the SDK raises for a 5xx or a throttle of each service (found by the fault campaign:
    // IAM's 500 is ServiceFailureException, not ServiceFailure).
    const transient = [
      new iam.ServiceFailureException({ message: '', $metadata: {} }),
      new sns.ThrottledException({ message: '', $metadata: {} }),
      new sns.InternalErrorException({ message: '', $metadata: {} }),
      new eventBridge.InternalException({ message: '', $metadata: {} }),
      new dynamodb.InternalServerError({ message: '', $metadata: {} }),
      new dynamodb.ProvisionedThroughputExceededException({ message: '', $metadata: {} }),
      new secretsManager.InternalServiceError({ message: '', $metadata: {} }),
    ];
    for (const error of transient) expect(TRANSIENT_ERRORS, error.name).toContain(error.name);
  });

  it('invokes Lambda functions directly: every Task Resource is a function ARN', () => {
    expect(tasks.length).toBeGreaterThan(0);
    for (const [name, state] of tasks) {
      expect(state.Resource, name).toMatch(/^arn:aws:lambda:[a-z0-9-]+:\d{12}:function:[a-z-]+$/);
    }
  });

  it('uses JSONPath only: no JSONata, no variables, no Map or Parallel', () => {
    const json = JSON.stringify(definition);
    expect(definition.QueryLanguage ?? 'JSONPath').toBe('JSONPath');
    for (const [name, state] of states) {
      expect(state.QueryLanguage ?? 'JSONPath', name).toBe('JSONPath');
      expect(state, name).not.toHaveProperty('Assign');
      expect(state, name).not.toHaveProperty('Arguments');
      expect(state, name).not.toHaveProperty('Output');
      expect(['Task', 'Choice', 'Pass', 'Wait', 'Succeed', 'Fail'], name).toContain(state.Type);
    }
    expect(json).not.toContain('{%');
  });

  it('is valid Amazon States Language', () => {
    // structuredClone: asl-validator writes QueryLanguage into the definition it checks.
    const result = aslValidator(structuredClone(definition), { checkPaths: true, checkArn: true });
    expect(result.errorsText('\n')).toBe('');
    expect(result.isValid).toBe(true);
  });

  it('times out after every wait it may take, plus a day', () => {
    expect(definition.TimeoutSeconds).toBe(stateMachineTimeoutSeconds(config));
    expect(definition.Comment).toMatch(/rekey/);
  });

  it('takes its waits from the configuration', () => {
    const { resources: custom } = synth({ adoptionWaitDays: 2, deleteAfterDays: 3, maxAdoptionChecks: 4 });
    const custom_ = definitionOf(custom);
    expect(custom_.States['Wait for consumers to adopt the new key']?.Seconds).toBe(2 * DAY);
    expect(custom_.States['Wait before deleting the old key']?.Seconds).toBe(3 * DAY);
    expect(custom_.TimeoutSeconds).toBe((2 * 4 + 3 + 1) * DAY);
  });

  it('is a Standard workflow with X-Ray and full logging without execution data', () => {
    const machine = resources[onlyLogicalId(resources, 'AWS::StepFunctions::StateMachine')];
    expect(machine?.Properties).toMatchObject({
      StateMachineType: 'STANDARD',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: { Level: 'ALL', IncludeExecutionData: false },
    });
    const logging = machine?.Properties?.LoggingConfiguration as { Destinations: unknown[] } | undefined;
    const destinations = logging?.Destinations ?? [];
    expect(destinations).toHaveLength(1);
    const destination = destinations[0] as { CloudWatchLogsLogGroup: { LogGroupArn: unknown } };
    const logGroup = resources[getAttId(destination.CloudWatchLogsLogGroup.LogGroupArn)];
    expect(logGroup?.Type).toBe('AWS::Logs::LogGroup');
    expect(logGroup?.Properties).toMatchObject({
      RetentionInDays: config.logRetentionDays,
      LogGroupName: expect.stringMatching(/^\/aws\/vendedlogs\/states\//),
    });
  });
});
