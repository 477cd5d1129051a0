/**
 * Owner routing on the emulator: a subscription of the rekey topic to an SQS queue with a filter
 * policy on the message attribute `owner` receives the notifications of that owner's users only
 * (a rotation through the synthesized state machine, the user's owner read by the plan from its
 * tag) and that owner's audit digest only (not the full one, not another owner's).
 */
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishAlerts } from '../../lambdas/audit/alerts.ts';
import { systemClock } from '../../lambdas/shared/clock.ts';
import { FINDINGS, report } from '../lambdas/audit/fixtures.ts';
import { outcomeStatus, startWorld, type World } from './harness.ts';

let world: World;
let sqs: SQSClient;
let sns: SNSClient;

beforeAll(async () => {
  world = await startWorld({ quiet: true });
  const config = { endpoint: world.moto.endpoint, region: 'us-east-1', credentials: world.admin };
  sqs = new SQSClient(config);
  sns = new SNSClient(config);
});
afterAll(async () => {
  sqs?.destroy();
  sns?.destroy();
  await world?.stop();
});

/** A queue subscribed to the rekey topic with this filter policy on the message attributes. */
async function subscribedQueue(name: string, filterPolicy: Record<string, unknown>): Promise<string> {
  const url = (await sqs.send(new CreateQueueCommand({ QueueName: name }))).QueueUrl ?? '';
  const arn =
    (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] })))
      .Attributes?.QueueArn ?? '';
  await sns.send(
    new SubscribeCommand({
      TopicArn: world.env.REKEY_TOPIC_ARN,
      Protocol: 'sqs',
      Endpoint: arn,
      Attributes: { FilterPolicy: JSON.stringify(filterPolicy) },
    }),
  );
  return url;
}

/** The SNS envelopes in the queue (not raw delivery: the envelope shows the attributes). */
async function received(
  url: string,
): Promise<
  Array<{ Subject?: string; Message: string; MessageAttributes: Record<string, { Value: string }> }>
> {
  const all: Message[] = [];
  for (;;) {
    const out = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        VisibilityTimeout: 600,
      }),
    );
    if (!out.Messages?.length) break;
    all.push(...out.Messages);
  }
  return all.map((m) => JSON.parse(m.Body ?? '{}'));
}

describe('a filter policy on the owner attribute', () => {
  it('delivers the rotation notifications of that owner’s users only', async () => {
    const teamA = await subscribedQueue('owner-team-a', { owner: ['team-a'] });
    await world.createUser('ana', { tags: { 'rekey:owner': 'team-a' } });
    await world.createUser('ben', { tags: { 'rekey:owner': 'ben@example.com' } });
    await world.createUser('cat', { tags: { 'rekey:owner': 'not an owner!' } });

    for (const userName of ['ana', 'ben', 'cat'])
      expect(outcomeStatus(await world.run({ userName }))).toBe('ROTATED');

    const messages = await received(teamA);
    expect(messages.map((m) => m.Subject)).toEqual([
      '[rekey] Access Key Rotation Started: ana',
      '[rekey] New Access Key Ready: ana',
      '[rekey] Access Key Deactivated: ana',
      '[rekey] Access Key Rotation Completed: ana',
    ]);
    for (const m of messages) expect(m.MessageAttributes.owner?.Value).toBe('team-a');
    const { events } = await world.drainNotifications();
    expect(new Set(events.map((e) => `${e.detail.userName}:${e.detail.owner}`))).toEqual(
      new Set(['ana:team-a', 'ben:ben@example.com', 'cat:null']),
    );
  });

  it('delivers that owner’s audit digest only, and a catch-all on * the full one', async () => {
    const ben = await subscribedQueue('owner-ben', { owner: ['ben@example.com'] });
    const all = await subscribedQueue('owner-all', { owner: ['*'] });
    const [a, b, ...rest] = FINDINGS;
    if (!a || !b) throw new Error('fixtures changed');
    const findings = [{ ...a, owner: 'team-a' }, { ...b, owner: 'ben@example.com' }, ...rest];
    const eventBridge = new EventBridgeClient({
      endpoint: world.moto.endpoint,
      region: 'us-east-1',
      credentials: world.admin,
    });

    await publishAlerts(
      {
        sns,
        eventBridge,
        clock: systemClock,
        topicArn: world.env.REKEY_TOPIC_ARN as string,
        eventBusName: 'default',
      },
      report({ findings, actions: [] }),
    );
    eventBridge.destroy();

    const forBen = await received(ben);
    expect(forBen.map((m) => m.Subject)).toEqual([
      '[rekey] Access key audit for ben@example.com: 1 finding (1 old)',
    ]);
    expect(forBen[0]?.Message).toContain(b.userName);
    expect(forBen[0]?.Message).not.toContain(`${a.userName} `);
    const full = await received(all);
    expect(full).toHaveLength(1);
    expect(full[0]?.MessageAttributes.owner?.Value).toBe('*');
    for (const f of findings) expect(full[0]?.Message).toContain(f.userName);
  });
});
