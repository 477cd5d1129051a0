/**
 * The EventBridge rule that runs the cleanup after a rotation execution ended without finishing
 * (console Stop, execution timeout, a failure the failure path could not handle). moto cannot
 * create EventBridge rules with Lambda targets, so this is covered by the template: the pattern,
 * the input the cleanup gets, delivery retries and the dead-letter queue.
 */
import type { CfnElement, Stack } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import type { Construct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { CleanupInput } from '../../contract/schemas.ts';
import { functionOf, logicalIds, onlyLogicalId, synth } from './helpers.ts';

const logicalIdOf = (stack: Stack, construct: Construct) =>
  stack.resolve(stack.getLogicalId((construct.node.defaultChild ?? construct) as CfnElement)) as string;

function cleanupIds() {
  const synthesized = synth();
  const { stack, resources } = synthesized;
  return {
    ...synthesized,
    rule: logicalIdOf(stack, stack.cleanup.rule),
    queue: logicalIdOf(stack, stack.cleanup.deadLetterQueue),
    fn: logicalIds(resources, 'AWS::Lambda::Function').find(
      (id) => resources[id] === functionOf(resources, 'cleanup'),
    ),
    machine: onlyLogicalId(resources, 'AWS::StepFunctions::StateMachine'),
  };
}

/** EventBridge's input transformer: each <name> becomes the JSON of the value at its path. */
function transform(
  transformer: { InputPathsMap: Record<string, string>; InputTemplate: string },
  event: Record<string, unknown>,
): unknown {
  let text = transformer.InputTemplate;
  for (const [name, path] of Object.entries(transformer.InputPathsMap)) {
    const value = path
      .replace(/^\$\./, '')
      .split('.')
      .reduce<unknown>((at, key) => (at as Record<string, unknown> | undefined)?.[key], event);
    text = text.replaceAll(`<${name}>`, JSON.stringify(value ?? null));
  }
  return JSON.parse(text);
}

describe('the cleanup after an ended execution', () => {
  it("matches the rotation state machine's FAILED, ABORTED and TIMED_OUT status changes only", () => {
    const { resources, rule, machine } = cleanupIds();
    expect(resources[rule]?.Properties?.EventPattern).toEqual({
      source: ['aws.states'],
      'detail-type': ['Step Functions Execution Status Change'],
      detail: { status: ['FAILED', 'ABORTED', 'TIMED_OUT'], stateMachineArn: [{ Ref: machine }] },
    });
  });

  it('gives the cleanup the input the failure path gives it, built from the event', () => {
    const { resources, rule, fn } = cleanupIds();
    const [target] = (resources[rule]?.Properties?.Targets ?? []) as Array<{
      Arn: unknown;
      InputTransformer: { InputPathsMap: Record<string, string>; InputTemplate: string };
    }>;
    expect(target?.Arn).toEqual({ 'Fn::GetAtt': [fn, 'Arn'] });
    // A status change event as Step Functions sends it (the execution input is JSON text).
    const event = {
      source: 'aws.states',
      'detail-type': 'Step Functions Execution Status Change',
      detail: {
        executionArn: 'arn:aws:states:us-east-1:123456789012:execution:rekey:alice-1',
        stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:rekey',
        status: 'ABORTED',
        input: '{"userName":"alice","reason":"say \\"why\\""}',
      },
    };
    const input = transform(target?.InputTransformer ?? { InputPathsMap: {}, InputTemplate: '' }, event);
    expect(CleanupInput.parse(input)).toEqual({
      executionArn: event.detail.executionArn,
      status: 'ABORTED',
      input: event.detail.input,
    });
  });

  it('retries delivery for hours, then sends the event to an encrypted, TLS-only dead-letter queue', () => {
    const { resources, template, rule, queue } = cleanupIds();
    expect(resources[rule]?.Properties?.Targets).toEqual([
      expect.objectContaining({
        RetryPolicy: { MaximumRetryAttempts: 10, MaximumEventAgeInSeconds: 6 * 3600 },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [queue, 'Arn'] } },
      }),
    ]);
    expect(resources[queue]?.Properties).toMatchObject({
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 86_400,
    });
    template.hasOutput('CleanupDeadLetterQueueUrl', { Value: { Ref: queue } });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: queue }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 'sqs:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
          Match.objectLike({
            Effect: 'Allow',
            Action: 'sqs:SendMessage',
            Principal: { Service: 'events.amazonaws.com' },
            Condition: { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [rule, 'Arn'] } } },
          }),
        ]),
      },
    });
  });

  it('lets only this rule invoke the cleanup, which retries twice and sends what still fails to the queue', () => {
    const { template, rule, queue, fn } = cleanupIds();
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [fn, 'Arn'] },
      Principal: 'events.amazonaws.com',
      SourceArn: { 'Fn::GetAtt': [rule, 'Arn'] },
    });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: fn },
      Qualifier: '$LATEST',
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 6 * 3600,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [queue, 'Arn'] } } },
    });
  });
});
