import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AUTH_REJECTED_ERRORS,
  authenticate,
  type StsFactory,
  waitUntilKeyWorks,
} from '../../../lambdas/shared/authenticate.ts';
import { stsClientFor } from '../../../lambdas/shared/clients.ts';
import type { CredentialSecret } from '../../../lambdas/shared/secret.ts';
import {
  ACCOUNT,
  awsError,
  FAKE_SECRET,
  fakeClock,
  NEW_KEY_ID,
  silenceLogs,
  USER,
  USER_ARN,
} from '../../support/lambda-fixtures.ts';

// mockClient(STSClient) stubs the prototype: every client the factory builds is mocked.
const stsMock = mockClient(STSClient);
const credential: CredentialSecret = {
  Version: 1,
  AccessKeyId: NEW_KEY_ID,
  SecretAccessKey: FAKE_SECRET,
  UserName: USER,
  CreateDate: '2026-03-01T12:00:00.000Z',
};
const identity = { Account: ACCOUNT, Arn: USER_ARN, UserId: 'AIDAEXAMPLEUSERID0001' };
const notYet = () =>
  awsError('InvalidClientTokenId', 'The security token included in the request is invalid.');

let stsFor: ReturnType<typeof vi.fn<StsFactory>>;

beforeAll(silenceLogs);
beforeEach(() => {
  stsMock.reset();
  stsFor = vi.fn<StsFactory>(
    (credentials) => new STSClient({ region: 'us-east-1', credentials, maxAttempts: 1 }),
  );
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('authenticate', () => {
  it('signs GetCallerIdentity with the stored key and returns the ARN', async () => {
    // Prepare
    stsMock.on(GetCallerIdentityCommand).resolves(identity);
    const destroy = vi.spyOn(STSClient.prototype, 'destroy');

    // Act
    const result = await authenticate(stsFor, credential);

    // Assess
    expect(result).toEqual({ ok: true, arn: USER_ARN });
    expect(stsFor).toHaveBeenCalledExactlyOnceWith({ accessKeyId: NEW_KEY_ID, secretAccessKey: FAKE_SECRET });
    expect(stsMock).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 1);
    expect(stsMock.commandCalls(GetCallerIdentityCommand)[0]?.args[0].input).toEqual({});
    expect(destroy).toHaveBeenCalledOnce();
  });

  it.each(AUTH_REJECTED_ERRORS)('returns a rejection (not an exception) for %s', async (name) => {
    // Prepare
    stsMock.on(GetCallerIdentityCommand).rejects(awsError(name));

    // Act & Assess
    await expect(authenticate(stsFor, credential)).resolves.toEqual({ ok: false, reason: name });
  });

  it('rethrows a transient failure (for the caller to retry) and still destroys the client', async () => {
    // Prepare
    const outage = awsError('ServiceUnavailable');
    stsMock.on(GetCallerIdentityCommand).rejects(outage);
    const destroy = vi.spyOn(STSClient.prototype, 'destroy');

    // Act & Assess
    await expect(authenticate(stsFor, credential)).rejects.toBe(outage);
    expect(destroy).toHaveBeenCalledOnce();
  });

  it('works with the production factory stsClientFor (one attempt per call)', async () => {
    // Prepare
    stsMock.on(GetCallerIdentityCommand).resolves(identity);

    // Act
    const result = await authenticate(stsClientFor, credential);

    // Assess
    expect(result).toEqual({ ok: true, arn: USER_ARN });
    const client = stsMock.call(0).thisValue as STSClient;
    expect(await client.config.maxAttempts()).toBe(1);
    await expect(client.config.credentials()).resolves.toMatchObject({
      accessKeyId: NEW_KEY_ID,
      secretAccessKey: FAKE_SECRET,
    });
  });
});

describe('waitUntilKeyWorks', () => {
  it('retries with exponential backoff (1000, 2000, 4000 ms) until the key works', async () => {
    // Prepare
    const clock = fakeClock();
    stsMock
      .on(GetCallerIdentityCommand)
      .rejectsOnce(notYet())
      .rejectsOnce(notYet())
      .rejectsOnce(notYet())
      .resolves(identity);

    // Act
    const result = await waitUntilKeyWorks({ stsFor, clock }, credential, USER_ARN, 6, 1000);

    // Assess
    expect(result).toEqual({ ok: true, arn: USER_ARN });
    expect(clock.sleep.mock.calls).toEqual([[1000], [2000], [4000]]);
    expect(stsMock).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 4);
  });

  it('gives up after the last attempt without sleeping after it and returns the last rejection', async () => {
    // Prepare
    const clock = fakeClock();
    stsMock.on(GetCallerIdentityCommand).rejects(notYet());

    // Act
    const result = await waitUntilKeyWorks({ stsFor, clock }, credential, USER_ARN, 3, 500);

    // Assess
    expect(result).toEqual({ ok: false, reason: 'InvalidClientTokenId' });
    expect(clock.sleep.mock.calls).toEqual([[500], [1000]]);
    expect(stsMock).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 3);
  });

  it('fails at once, naming both ARNs, when the key authenticates as somebody else', async () => {
    // Prepare
    const clock = fakeClock();
    const otherArn = `arn:aws:iam::${ACCOUNT}:user/mallory`;
    stsMock.on(GetCallerIdentityCommand).resolves({ ...identity, Arn: otherArn });

    // Act
    const result = await waitUntilKeyWorks({ stsFor, clock }, credential, USER_ARN, 6, 1000);

    // Assess
    expect(result).toEqual({ ok: false, reason: `authenticated as ${otherArn}, expected ${USER_ARN}` });
    expect(stsMock).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 1);
    expect(clock.sleep).not.toHaveBeenCalled();
  });

  it('accepts any ARN when the expected one is unknown (null)', async () => {
    // Prepare
    const clock = fakeClock();
    stsMock.on(GetCallerIdentityCommand).resolves({ ...identity, Arn: 'arn:aws:iam::123456789012:user/x' });

    // Act & Assess
    await expect(waitUntilKeyWorks({ stsFor, clock }, credential, null, 2, 1000)).resolves.toEqual({
      ok: true,
      arn: 'arn:aws:iam::123456789012:user/x',
    });
  });

  it('does not swallow a transient failure: it propagates for the step-level Retry', async () => {
    // Prepare
    const clock = fakeClock();
    const outage = awsError('InternalFailure');
    stsMock.on(GetCallerIdentityCommand).rejectsOnce(notYet()).rejects(outage);

    // Act & Assess
    await expect(waitUntilKeyWorks({ stsFor, clock }, credential, USER_ARN, 5, 1000)).rejects.toBe(outage);
    expect(clock.sleep.mock.calls).toEqual([[1000]]);
  });
});
