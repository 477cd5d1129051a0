/**
 * The fault proxy itself: how it names requests, that a seed fixes its decisions, and that the
 * real SDK sees each injected fault as the kind it stands for (against a stand-in upstream that
 * counts what reaches it).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetUserCommand, IAMClient } from '@aws-sdk/client-iam';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  classifyRequest,
  deriveSeed,
  type FaultKind,
  type FaultPlan,
  type FaultProxy,
  planDecider,
  type RequestInfo,
  startFaultProxy,
} from '../support/fault-proxy.ts';

const scope = (service: string) =>
  `AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE000000001/20260101/us-east-1/${service}/aws4_request, SignedHeaders=host, Signature=00`;

describe('classifyRequest', () => {
  it.each([
    [
      'a query-protocol call (IAM)',
      { authorization: scope('iam') },
      'Action=CreateAccessKey&Version=2010-05-08&UserName=alice',
      { service: 'iam', operation: 'CreateAccessKey', mutating: true },
    ],
    [
      'a query-protocol read (STS)',
      { authorization: scope('sts') },
      'Action=GetCallerIdentity&Version=2011-06-15',
      { service: 'sts', operation: 'GetCallerIdentity', mutating: false },
    ],
    [
      'a JSON-protocol call (Secrets Manager)',
      { authorization: scope('secretsmanager'), 'x-amz-target': 'secretsmanager.PutSecretValue' },
      '{"SecretId":"rekey/alice"}',
      { service: 'secretsmanager', operation: 'PutSecretValue', mutating: true },
    ],
    [
      'a JSON-protocol read (DynamoDB)',
      { authorization: scope('dynamodb'), 'x-amz-target': 'DynamoDB_20120810.GetItem' },
      '{}',
      { service: 'dynamodb', operation: 'GetItem', mutating: false },
    ],
    [
      'an unsigned request without an operation',
      {},
      '',
      { service: 'unknown', operation: 'Unknown', mutating: true },
    ],
  ])('%s', (_what, headers, body, expected) => {
    expect(classifyRequest(headers, body)).toEqual(expected);
  });
});

describe('planDecider', () => {
  const requests: RequestInfo[] = Array.from({ length: 400 }, (_, i) => ({
    service: i % 3 === 0 ? 'iam' : 'secretsmanager',
    operation: ['CreateAccessKey', 'ListAccessKeys', 'PutSecretValue', 'GetSecretValue'][i % 4] ?? '',
    mutating: i % 2 === 0,
  }));
  const random: (seed: number) => FaultPlan = (seed) => ({
    seed,
    rules: [{ rate: 0.2, kinds: { throttle: 1, 'server-error': 1, reset: 1, timeout: 1, lost: 1 } }],
  });
  const decisions = (plan: FaultPlan) => requests.map(planDecider(plan));

  it('decides the same faults for the same seed, and others for another seed', () => {
    const first = decisions(random(42));
    expect(decisions(random(42))).toEqual(first);
    expect(decisions(random(43))).not.toEqual(first);
    const kinds = new Set(first.filter((d) => d !== null).map((d) => d.kind));
    expect(kinds).toEqual(new Set<FaultKind>(['throttle', 'server-error', 'reset', 'timeout', 'lost']));
    const rate = first.filter((d) => d !== null).length / requests.length;
    expect(rate).toBeGreaterThan(0.1);
    expect(rate).toBeLessThan(0.3);
  });

  it('keeps to the operations, mutating calls and limit a rule names', () => {
    const targeted = decisions({
      seed: 7,
      rules: [{ operations: ['CreateAccessKey'], limit: 3, kinds: { lost: 1 } }],
    });
    const hit = targeted.flatMap((d, i) => (d ? [requests[i]?.operation] : []));
    expect(hit).toEqual(['CreateAccessKey', 'CreateAccessKey', 'CreateAccessKey']);
    const mutating = decisions({ seed: 7, rules: [{ mutatingOnly: true, kinds: { reset: 1 } }] });
    expect(mutating.every((d, i) => (d !== null) === requests[i]?.mutating)).toBe(true);
  });

  it('derives independent, reproducible seeds per run', () => {
    expect(deriveSeed(1, 5)).toBe(deriveSeed(1, 5));
    expect(new Set(Array.from({ length: 100 }, (_, i) => deriveSeed(1, i))).size).toBe(100);
  });
});

describe('the proxy, seen by the SDK', () => {
  let upstream: Server;
  let proxy: FaultProxy;
  let reached = 0;
  const credentials = { accessKeyId: 'AKIAEXAMPLE000000001', secretAccessKey: 'not-a-secret' };
  const client = <T>(Client: new (config: object) => T): T =>
    new Client({
      endpoint: proxy.endpoint,
      region: 'us-east-1',
      credentials,
      maxAttempts: 1,
      requestHandler: { requestTimeout: 300, throwOnRequestTimeout: true },
    });
  const errorOf = (promise: Promise<unknown>) =>
    promise.then(
      () => new Error('no error'),
      (e: Error) => e,
    );

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      reached++;
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(
          '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>' +
            '<Arn>arn:aws:iam::123456789012:user/alice</Arn><UserId>AIDAEXAMPLE</UserId><Account>123456789012</Account>' +
            '</GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>',
        );
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const { port } = upstream.address() as AddressInfo;
    proxy = await startFaultProxy({ target: `http://127.0.0.1:${port}`, maxHoldMs: 5_000 });
  });
  afterAll(async () => {
    await proxy?.stop();
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
  });
  beforeEach(() => {
    reached = 0;
  });

  const only = (kind: FaultKind): FaultPlan => ({ seed: 1, rules: [{ kinds: { [kind]: 1 } }] });

  it('passes requests through unchanged when no fault is planned', async () => {
    proxy.setPlan(null);
    const out = await client(STSClient).send(new GetCallerIdentityCommand({}));
    expect(out.Arn).toBe('arn:aws:iam::123456789012:user/alice');
    expect(reached).toBe(1);
  });

  it('throttles with each protocol’s own error, which the SDK names as throttling', async () => {
    proxy.setPlan(only('throttle'));
    const sts = await errorOf(client(STSClient).send(new GetCallerIdentityCommand({})));
    const sm = await errorOf(client(SecretsManagerClient).send(new GetSecretValueCommand({ SecretId: 'x' })));
    const sns = await errorOf(
      client(SNSClient).send(new PublishCommand({ TopicArn: 'arn:aws:sns:us-east-1:1:t', Message: 'm' })),
    );
    expect([sts.name, sm.name, sns.name]).toEqual([
      'Throttling',
      'ThrottlingException',
      'ThrottledException',
    ]);
    expect(reached).toBe(0);
  });

  it('answers a 500 with the service’s internal error', async () => {
    proxy.setPlan(only('server-error'));
    const error = await errorOf(client(IAMClient).send(new GetUserCommand({ UserName: 'alice' })));
    // IAM's ServiceFailure code, as the SDK's modelled exception names it.
    expect(error.name).toBe('ServiceFailureException');
    expect((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(500);
    expect(reached).toBe(0);
  });

  it('resets the connection without forwarding anything', async () => {
    proxy.setPlan(only('reset'));
    const error = await errorOf(client(STSClient).send(new GetCallerIdentityCommand({})));
    expect((error as { code?: string }).code).toBe('ECONNRESET');
    expect(reached).toBe(0);
  });

  it('holds a request until the client’s time limit gives up on it', async () => {
    proxy.setPlan(only('timeout'));
    const error = await errorOf(client(STSClient).send(new GetCallerIdentityCommand({})));
    expect(error.name).toBe('TimeoutError');
    expect(reached).toBe(0);
  });

  it('applies a request upstream and loses the answer', async () => {
    proxy.setPlan({ seed: 3, rules: [{ kinds: { lost: 1 } }] });
    const names = new Set<string>();
    for (let i = 0; i < 8; i++) {
      names.add((await errorOf(client(STSClient).send(new GetCallerIdentityCommand({})))).name);
    }
    // A 500 after the fact, or a dropped connection (the SDK names a hang-up TimeoutError).
    expect(names).toEqual(new Set(['InternalFailure', 'TimeoutError']));
    expect(reached).toBe(8);
    const stats = proxy.stats();
    expect(stats.byOperation['sts:GetCallerIdentity']?.lost).toBe(8);
    expect(stats.faults).toMatchObject({ throttle: 3, 'server-error': 1, reset: 1, timeout: 1, lost: 8 });
  });
});
