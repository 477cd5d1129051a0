import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IAMClient } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import * as z from 'zod';
import { InvalidPayload, RekeyError } from '../../../contract/errors.ts';
import { STEP_NAMES } from '../../../contract/functions.ts';
import { makeHandler } from '../../../lambdas/shared/handler.ts';
import { logger } from '../../../lambdas/shared/logger.ts';
import {
  EXECUTION_ID,
  FAKE_SECRET,
  fakeContext,
  LOCK_TABLE,
  rejectionOf,
  silenceLogs,
} from '../../support/lambda-fixtures.ts';

const Payload = z.object({ userName: z.string().min(1), accessKeyId: z.string().min(16) });

beforeAll(silenceLogs);
afterEach(() => {
  vi.restoreAllMocks();
});

describe('makeHandler', () => {
  it('validates the payload and passes the parsed value (unknown fields stripped) to the step', async () => {
    // Prepare
    const step = vi.fn(async (input: z.infer<typeof Payload>) => ({ ok: input.userName }));
    const handler = makeHandler(Payload, step);

    // Act
    const result = await handler(
      { userName: 'alice', accessKeyId: 'AKIAOLDKEY0000000001', extra: FAKE_SECRET },
      fakeContext(),
    );

    // Assess
    expect(result).toEqual({ ok: 'alice' });
    expect(step).toHaveBeenCalledExactlyOnceWith({ userName: 'alice', accessKeyId: 'AKIAOLDKEY0000000001' });
  });

  it('throws InvalidPayload naming the bad field, without calling the step', async () => {
    // Prepare
    const step = vi.fn(async () => 'never');
    const handler = makeHandler(Payload, step);

    // Act
    const error = await rejectionOf(handler({ userName: 'alice', accessKeyId: 'short' }, fakeContext()));

    // Assess
    expect(error).toBeInstanceOf(InvalidPayload);
    expect(error.name).toBe('InvalidPayload');
    expect(error.message).toContain('accessKeyId');
    expect(step).not.toHaveBeenCalled();
  });

  it.each([[null], ['a string'], [[1, 2]], [undefined]])(
    'rejects a non-object payload %j as InvalidPayload',
    async (event) => {
      // Prepare
      const handler = makeHandler(
        Payload,
        vi.fn(async () => 'never'),
      );

      // Act & Assess
      await expect(handler(event, fakeContext())).rejects.toMatchObject({ name: 'InvalidPayload' });
    },
  );

  it('rethrows a step error unchanged (its name is what Step Functions matches) and logs name and message only', async () => {
    // Prepare
    const failure = new RekeyError('UnsafeToDelete', 'access key AKIA... is active; it was not deleted');
    const logError = vi.spyOn(logger, 'error');
    const handler = makeHandler(Payload, async () => {
      throw failure;
    });

    // Act
    const error = await rejectionOf(
      handler({ userName: 'alice', accessKeyId: 'AKIAOLDKEY0000000001' }, fakeContext()),
    );

    // Assess
    expect(error).toBe(failure);
    expect(logError).toHaveBeenCalledExactlyOnceWith('step failed', {
      errorName: 'UnsafeToDelete',
      errorMessage: 'access key AKIA... is active; it was not deleted',
    });
  });
});

describe('a real thin handler (lambdas/plan)', () => {
  const iamMock = mockClient(IAMClient);
  const ddbMock = mockClient(DynamoDBClient);

  beforeEach(() => {
    iamMock.reset();
    ddbMock.reset();
    vi.resetModules();
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
    vi.stubEnv('REKEY_LOCK_TABLE', LOCK_TABLE);
    vi.stubEnv('REKEY_PROTECTED_USERS', 'break-glass');
    vi.stubEnv('REKEY_HUB_ACCOUNT_ID', '123456789012');
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('fails at cold start with ConfigurationError when REKEY_LOCK_TABLE is missing', async () => {
    // Prepare
    vi.stubEnv('REKEY_LOCK_TABLE', undefined);

    // Act & Assess
    await expect(import('../../../lambdas/rotation/plan/index.ts')).rejects.toMatchObject({
      name: 'ConfigurationError',
      message: expect.stringContaining('REKEY_LOCK_TABLE'),
    });
  });

  it('refuses a payload without executionId as InvalidPayload, with no AWS call', async () => {
    // Prepare
    const { handler } = await import('../../../lambdas/rotation/plan/index.ts');

    // Act & Assess
    await expect(handler({ input: { userName: 'alice' } }, fakeContext('rekey-plan'))).rejects.toMatchObject({
      name: 'InvalidPayload',
      message: expect.stringContaining('executionId'),
    });
    expect(iamMock.calls()).toHaveLength(0);
    expect(ddbMock.calls()).toHaveLength(0);
  });

  it('plans through the domain logic with the configured environment (protected user: STOP, no AWS call)', async () => {
    // Prepare
    const { handler } = await import('../../../lambdas/rotation/plan/index.ts');

    // Act
    const plan = await handler(
      { input: { userName: 'Break-Glass' }, executionId: EXECUTION_ID },
      fakeContext(),
    );

    // Assess
    expect(plan).toMatchObject({
      action: 'STOP',
      stopReason: 'UserProtected',
      secretName: 'rekey/Break-Glass',
    });
    expect(iamMock.calls()).toHaveLength(0);
    expect(ddbMock.calls()).toHaveLength(0);
  });
});

describe('every thin handler (lambdas/<step>/index.ts)', () => {
  const iamMock = mockClient(IAMClient);
  const ddbMock = mockClient(DynamoDBClient);
  const ENV = {
    POWERTOOLS_LOG_LEVEL: 'SILENT',
    REKEY_KMS_KEY_ID: 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    REKEY_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:rekey-notifications',
    REKEY_LOCK_TABLE: LOCK_TABLE,
    REKEY_STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:123456789012:stateMachine:rekey-rotation',
    REKEY_CLEANUP_SETTLE_SECONDS: '0',
  };

  beforeEach(() => {
    iamMock.reset();
    ddbMock.reset();
    for (const [key, value] of Object.entries(ENV)) vi.stubEnv(key, value);
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it.each(STEP_NAMES)(
    '%s loads with its environment and refuses an empty payload as InvalidPayload',
    async (step) => {
      // Prepare
      const { handler } = (await import(`../../../lambdas/rotation/${step}/index.ts`)) as {
        handler: (event: unknown, context: ReturnType<typeof fakeContext>) => Promise<unknown>;
      };

      // Act & Assess
      await expect(handler({}, fakeContext(`rekey-${step}`))).rejects.toMatchObject({
        name: 'InvalidPayload',
      });
      expect(iamMock.calls()).toHaveLength(0);
      expect(ddbMock.calls()).toHaveLength(0);
    },
  );
});
