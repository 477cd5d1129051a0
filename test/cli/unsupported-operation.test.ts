/**
 * The message for an operation the endpoint lacks (cli/unsupported-operation.ts), on real SDK
 * clients whose request handler answers as moto 5.2.1 answers an operation it does not implement
 * (measured: HTTP 500, text/html, Werkzeug's error page), so the SDK's own parse failure is what
 * gets mapped. The CLI end to end against moto: test/cli/conventions.test.ts.
 */
import { Readable } from 'node:stream';
import { CloudTrailClient, LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import { GetUserCommand, IAMClient, ListServiceSpecificCredentialsCommand } from '@aws-sdk/client-iam';
import { describe, expect, it } from 'vitest';
import { nameOperationOnFailure, unsupportedOperationMessage } from '../../cli/unsupported-operation.ts';

const MOTO_MISSING_OPERATION = {
  statusCode: 500,
  headers: { 'content-type': 'text/html; charset=utf-8' },
  body:
    '<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n' +
    '<p>The server encountered an internal error and was unable to complete your request.</p>\n',
};

const IAM_NO_SUCH_ENTITY = {
  statusCode: 404,
  headers: { 'content-type': 'text/xml' },
  body:
    '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>' +
    '<Code>NoSuchEntity</Code><Message>The user with name bob cannot be found.</Message></Error>' +
    '<RequestId>1</RequestId></ErrorResponse>',
};

type Answer = typeof MOTO_MISSING_OPERATION;

/** A request handler that answers every request with `answer`. */
function answering(answer: Answer) {
  return {
    handle: async () => ({
      response: {
        statusCode: answer.statusCode,
        headers: answer.headers,
        body: Readable.from([answer.body]),
      },
    }),
  };
}

function clientConfig(endpoint: string, answer: Answer) {
  return {
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIAEXAMPLE000000000', secretAccessKey: 'secret' },
    maxAttempts: 1,
    requestHandler: answering(answer),
  };
}

/** What `send` rejects with. */
async function failure(send: () => Promise<unknown>): Promise<unknown> {
  return send().then(
    () => expect.fail('the call succeeded'),
    (error: unknown) => error,
  );
}

describe('unsupportedOperationMessage', () => {
  it('names IAM ListServiceSpecificCredentials, the endpoint, its answer and the switch that turns it off', async () => {
    const iam = new IAMClient(clientConfig('http://127.0.0.1:5000', MOTO_MISSING_OPERATION));
    nameOperationOnFailure(iam);

    const error = await failure(() => iam.send(new ListServiceSpecificCredentialsCommand({})));

    // The SDK's own failure, unchanged, is what the CLI used to print.
    expect((error as Error).message).toMatch(/XML parse error: mismatched tags/);
    expect(unsupportedOperationMessage(error)).toBe(
      'the endpoint http://127.0.0.1:5000 does not implement IAM ListServiceSpecificCredentials ' +
        "(it answered HTTP 500 text/html, not IAM's protocol); turn that call off with " +
        '--no-service-credentials (or REKEY_AUDIT_SERVICE_CREDENTIALS=false)',
    );
  });

  it('names an operation without a switch (a JSON service) and says the command cannot run without it', async () => {
    const cloudTrail = new CloudTrailClient(clientConfig('http://localhost:4566', MOTO_MISSING_OPERATION));
    nameOperationOnFailure(cloudTrail);

    const error = await failure(() => cloudTrail.send(new LookupEventsCommand({})));

    expect((error as Error).name).toBe('SyntaxError');
    expect(unsupportedOperationMessage(error)).toBe(
      'the endpoint http://localhost:4566 does not implement CloudTrail LookupEvents ' +
        "(it answered HTTP 500 text/html, not CloudTrail's protocol); this command cannot run there without it",
    );
  });

  it('leaves the same unreadable answer from AWS itself as it is', async () => {
    const iam = new IAMClient(clientConfig('https://iam.amazonaws.com', MOTO_MISSING_OPERATION));
    nameOperationOnFailure(iam);

    const error = await failure(() => iam.send(new ListServiceSpecificCredentialsCommand({})));

    expect(unsupportedOperationMessage(error)).toBeUndefined();
  });

  it('leaves an error the service answered in its protocol (NoSuchEntity) as it is', async () => {
    const iam = new IAMClient(clientConfig('http://127.0.0.1:5000', IAM_NO_SUCH_ENTITY));
    nameOperationOnFailure(iam);

    const error = await failure(() => iam.send(new GetUserCommand({ UserName: 'bob' })));

    expect((error as Error).name).toBe('NoSuchEntityException');
    expect(unsupportedOperationMessage(error)).toBeUndefined();
  });

  it('leaves errors of clients it was not given, and anything not an SDK call, as they are', async () => {
    const iam = new IAMClient(clientConfig('http://127.0.0.1:5000', MOTO_MISSING_OPERATION));

    const error = await failure(() => iam.send(new ListServiceSpecificCredentialsCommand({})));

    expect(unsupportedOperationMessage(error)).toBeUndefined();
    expect(unsupportedOperationMessage(new Error('XML parse error: mismatched tags'))).toBeUndefined();
    expect(unsupportedOperationMessage('a string')).toBeUndefined();
  });
});
