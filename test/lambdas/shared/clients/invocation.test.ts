/**
 * The per-invocation credentials and authorization context of the shared clients, against a
 * local HTTP server that records which access key signed each request and answers what a test
 * chooses (moto's 403s included). The clients are the real module singletons.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { GetUserCommand, ListServiceSpecificCredentialsCommand } from '@aws-sdk/client-iam';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AccessDenied,
  type AuthorizationRequest,
  authorizeCommand,
  emulatorRefusal,
  type InvocationContext,
  runInInvocation,
} from '../../../../lambdas/shared/clients/invocation.ts';
import { dynamodb, iam } from '../../../../lambdas/shared/clients.ts';

/** What moto answers a JSON or XML service when a role lacks the action (its body is XML for both). */
const MOTO_DENIAL = (action: string) =>
  '<?xml version="1.0" encoding="UTF-8"?><ErrorResponse><Errors><Error><Code>AccessDenied</Code>' +
  `<Message>User: arn:aws:sts::123456789012:assumed-role/r/s is not authorized to perform: ${action}</Message>` +
  '</Error></Errors><RequestId>1</RequestId></ErrorResponse>';

let server: Server;
/** The access key id of each request, in arrival order. */
let signedBy: string[] = [];
let answer: (request: IncomingMessage) => { status: number; body: string; type: string };
const saved = { ...process.env };
const ENV_KEY = 'AKIADEFAULTCHAIN0001';

const keyOf = (request: IncomingMessage) =>
  /Credential=([A-Z0-9]+)\//.exec(request.headers.authorization ?? '')?.[1] ?? 'unsigned';

beforeAll(async () => {
  server = createServer((request, response) => {
    signedBy.push(keyOf(request));
    request.resume();
    request.on('end', () => {
      const { status, body, type } = answer(request);
      // A short delay keeps concurrent requests in flight together.
      setTimeout(() => response.writeHead(status, { 'content-type': type }).end(body), 5);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  Object.assign(process.env, {
    AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: ENV_KEY,
    AWS_SECRET_ACCESS_KEY: 'not-a-secret',
  });
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_SESSION_TOKEN;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
  Object.assign(process.env, saved);
});
beforeEach(() => {
  signedBy = [];
  answer = () => ({ status: 200, body: '{"Item":{}}', type: 'application/x-amz-json-1.0' });
});

const context = (id: number, authorize?: InvocationContext['authorize']): InvocationContext => ({
  step: `step-${id}`,
  credentials: {
    accessKeyId: `ASIACONTEXT${String(id).padStart(9, '0')}`,
    secretAccessKey: 'x',
    sessionToken: 't',
  },
  ...(authorize ? { authorize } : {}),
});
const getItem = () =>
  dynamodb.send(new GetItemCommand({ TableName: 'locks', Key: { userName: { S: 'a' } } }));

describe('credentials per invocation', () => {
  it('concurrent invocations each sign with their own credentials', async () => {
    // Act: 20 invocations at once, as concurrent rotations make them.
    const contexts = Array.from({ length: 20 }, (_, i) => context(i));
    await Promise.all(contexts.map((c) => runInInvocation(c, getItem)));

    // Assess: every request was signed, and by its own invocation's key (none by another's).
    expect([...signedBy].sort()).toEqual(contexts.map((c) => c.credentials.accessKeyId).sort());
  });

  it('outside an invocation the default chain signs, before and after one', async () => {
    await getItem();
    await runInInvocation(context(1), getItem);
    await getItem();

    expect(signedBy).toEqual([ENV_KEY, context(1).credentials.accessKeyId, ENV_KEY]);
  });
});

describe('authorization hook', () => {
  it('is asked before the request is sent, with the Lambda, service, action and input', async () => {
    const authorize = vi.fn(async (_request: AuthorizationRequest) => 'arn:aws:dynamodb:::table/locks');

    await runInInvocation(context(7, authorize), getItem);

    expect(authorize).toHaveBeenCalledTimes(1);
    expect(authorize.mock.calls[0]?.[0]).toEqual({
      step: 'step-7',
      service: 'dynamodb',
      action: 'dynamodb:GetItem',
      input: { TableName: 'locks', Key: { userName: { S: 'a' } } },
    });
  });

  it('a refusal stops the call: nothing reaches the endpoint', async () => {
    const refuse = async (request: AuthorizationRequest): Promise<string> => {
      throw new AccessDenied({
        step: request.step,
        action: request.action,
        reason: 'no statement allows it',
      });
    };

    const error = await runInInvocation(context(2, refuse), getItem).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(AccessDenied);
    expect((error as Error).name).toBe('AccessDenied');
    expect((error as Error).message).toBe(
      "the step-2 Lambda's role does not allow dynamodb:GetItem: no statement allows it",
    );
    expect(signedBy).toEqual([]);
  });

  it('stand-ins of missing APIs put their command to the same hook', async () => {
    const authorize = vi.fn(async (_request: AuthorizationRequest) => undefined);
    const command = new ListServiceSpecificCredentialsCommand({ UserName: 'alice' });

    await authorizeCommand('iam', command);
    await runInInvocation(context(3, authorize), () => authorizeCommand('iam', command));

    expect(authorize.mock.calls.map(([r]) => r)).toEqual([
      {
        step: 'step-3',
        service: 'iam',
        action: 'iam:ListServiceSpecificCredentials',
        input: { UserName: 'alice' },
      },
    ]);
  });
});

describe("the emulator's AccessDenied", () => {
  it('a JSON service (XML body, a SyntaxError in the SDK) becomes AccessDenied naming action, Lambda and resource', async () => {
    answer = () => ({ status: 403, body: MOTO_DENIAL('dynamodb:GetItem'), type: 'text/xml' });
    const target = 'arn:aws:dynamodb:us-east-1:123456789012:table/locks';

    const error = await runInInvocation(
      context(4, async () => target),
      getItem,
    ).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(AccessDenied);
    expect(error).toMatchObject({ name: 'AccessDenied', step: 'step-4', action: 'dynamodb:GetItem' });
    expect((error as Error).message).toBe(
      `the step-4 Lambda's role does not allow dynamodb:GetItem on ${target}: the emulator refused it ` +
        '(User: arn:aws:sts::123456789012:assumed-role/r/s is not authorized to perform: dynamodb:GetItem)',
    );
  });

  it('an XML service (a named AccessDenied in the SDK) is reported the same way', async () => {
    answer = () => ({ status: 403, body: MOTO_DENIAL('iam:GetUser'), type: 'text/xml' });

    const error = await runInInvocation(context(5), () =>
      iam.send(new GetUserCommand({ UserName: 'alice' })),
    ).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(AccessDenied);
    expect((error as Error).message).toMatch(
      /^the step-5 Lambda's role does not allow iam:GetUser: the emulator refused it \(User: .* iam:GetUser\)$/,
    );
  });

  it('outside an invocation, and for other 403s, errors pass through untouched', async () => {
    answer = () => ({ status: 403, body: MOTO_DENIAL('dynamodb:GetItem'), type: 'text/xml' });
    const outside = await getItem().catch((e: unknown) => e);
    expect((outside as Error).name).toBe('SyntaxError');
    // (Given the body the middleware keeps inside an invocation, the same error reads as a refusal.)
    expect(emulatorRefusal(outside, MOTO_DENIAL('dynamodb:GetItem'))).toMatch(
      /not authorized to perform: dynamodb:GetItem$/,
    );

    answer = () => ({
      status: 403,
      body: MOTO_DENIAL('x').replace('AccessDenied', 'SignatureDoesNotMatch'),
      type: 'text/xml',
    });
    const badSignature = await runInInvocation(context(6), () =>
      iam.send(new GetUserCommand({ UserName: 'alice' })),
    ).catch((e: unknown) => e);
    expect((badSignature as Error).name).toBe('SignatureDoesNotMatch');
    expect(emulatorRefusal(new Error('plain'))).toBeUndefined();
  });
});
