/**
 * inAccount (lambdas/shared/member-account.ts): which clients sign as the member role, when the
 * role is assumed, and how a missing or refusing role is reported.
 */
import { AssumeRoleCommand, STSServiceException } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemberRoleUnavailable } from '../../../contract/errors.ts';
import { isMissingRoleAnswer, memberAccountFor } from '../../../lambdas/shared/clients/account-context.ts';
import { dynamodb } from '../../../lambdas/shared/clients/dynamodb.ts';
import { iam } from '../../../lambdas/shared/clients/iam.ts';
import { memberSts } from '../../../lambdas/shared/clients/member-sts.ts';
import { secretsManager } from '../../../lambdas/shared/clients/secrets-manager.ts';
import { forgetMemberSessions, inAccount, partitionOf } from '../../../lambdas/shared/member-account.ts';

const HUB = '123456789012';
const MEMBER = '111122223333';
const saved = { ...process.env };
const sts = mockClient(memberSts);

const member = {
  AccessKeyId: 'ASIAMEMBER0000000001',
  SecretAccessKey: 'member-secret',
  SessionToken: 'member-token',
};

/** The access key a client would sign its next request with. */
const signer = async (client: { config: { credentials: () => Promise<{ accessKeyId: string }> } }) =>
  (await client.config.credentials()).accessKeyId;

beforeEach(() => {
  Object.assign(process.env, {
    AWS_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'AKIAHUBROLE000000001',
    AWS_SECRET_ACCESS_KEY: 'hub-secret',
    REKEY_HUB_ACCOUNT_ID: HUB,
    REKEY_MEMBER_ROLE_PREFIX: 'rekey-member-',
  });
  delete process.env.REKEY_SECRETS_LOCATION;
  sts.reset();
  sts.on(AssumeRoleCommand).resolves({
    Credentials: { ...member, Expiration: new Date(Date.now() + 3_600_000) },
  });
  forgetMemberSessions();
});
afterEach(() => {
  process.env = { ...saved };
});
afterAll(() => sts.restore());

describe('inAccount', () => {
  it('runs in the hub account, or with no account named, under the Lambda’s own role and assumes nothing', async () => {
    for (const accountId of [undefined, HUB]) {
      const signers = await inAccount({ accountId, lambda: 'plan' }, async () => [
        await signer(iam),
        memberAccountFor('iam'),
      ]);
      expect(signers).toEqual(['AKIAHUBROLE000000001', undefined]);
    }
    expect(sts).not.toHaveReceivedCommand(AssumeRoleCommand);
  });

  it('signs the member-side clients as the Lambda’s member role of that account, and the hub’s with its own role', async () => {
    const seen = await inAccount({ accountId: MEMBER, lambda: 'create-second-key' }, async () => ({
      iam: await signer(iam),
      secrets: await signer(secretsManager),
      lockTable: await signer(dynamodb),
    }));
    expect(seen).toEqual({
      iam: member.AccessKeyId,
      secrets: member.AccessKeyId,
      lockTable: 'AKIAHUBROLE000000001',
    });
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 1);
    expect(sts).toHaveReceivedCommandWith(AssumeRoleCommand, {
      RoleArn: `arn:aws:iam::${MEMBER}:role/rekey-member-create-second-key`,
      RoleSessionName: 'rekey-create-second-key',
    });
    // Outside the call, every client is the Lambda's own again.
    expect(await signer(iam)).toBe('AKIAHUBROLE000000001');
  });

  it('keeps secrets in the hub with secrets: hub', async () => {
    process.env.REKEY_SECRETS_LOCATION = 'hub';
    const seen = await inAccount({ accountId: MEMBER, lambda: 'verify-new-key' }, async () => [
      await signer(iam),
      await signer(secretsManager),
    ]);
    expect(seen).toEqual([member.AccessKeyId, 'AKIAHUBROLE000000001']);
  });

  it('assumes a role once while its session is fresh, and again near its expiry', async () => {
    const run = () => inAccount({ accountId: MEMBER, lambda: 'plan' }, () => signer(iam));
    await run();
    await run();
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 1);
    sts
      .on(AssumeRoleCommand)
      .resolves({ Credentials: { ...member, Expiration: new Date(Date.now() + 60_000) } });
    forgetMemberSessions();
    await run();
    await run();
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 3);
  });

  it('reports a role STS refuses as MemberRoleUnavailable naming the account and the role, before any member call', async () => {
    sts.on(AssumeRoleCommand).rejects(
      new STSServiceException({
        name: 'AccessDenied',
        $fault: 'client',
        $metadata: { httpStatusCode: 403 },
        message:
          'User: arn:aws:sts::123456789012:assumed-role/hub-plan/x is not authorized to perform: sts:AssumeRole',
      }),
    );
    const error = await inAccount({ accountId: MEMBER, lambda: 'plan' }, () => signer(iam)).catch((e) => e);
    expect(error).toBeInstanceOf(MemberRoleUnavailable);
    expect(error.name).toBe('MemberRoleUnavailable');
    expect(error.message).toContain(`account ${MEMBER}`);
    expect(error.message).toContain(`arn:aws:iam::${MEMBER}:role/rekey-member-plan`);
  });

  it('leaves a throttled AssumeRole as it is, for the state machine to retry', async () => {
    sts.on(AssumeRoleCommand).rejects(
      new STSServiceException({
        name: 'Throttling',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
        message: 'Rate exceeded',
      }),
    );
    const error = await inAccount({ accountId: MEMBER, lambda: 'plan' }, () => signer(iam)).catch((e) => e);
    expect(error.name).toBe('Throttling');
  });

  it('refuses a member account when the organization option is off', async () => {
    delete process.env.REKEY_MEMBER_ROLE_PREFIX;
    const error = await inAccount({ accountId: MEMBER, lambda: 'plan' }, async () => 'ran').catch((e) => e);
    expect(error.name).toBe('ConfigurationError');
    expect(error.message).toContain('organization option is not set');
    expect(sts).not.toHaveReceivedCommand(AssumeRoleCommand);
  });
});

describe('partitionOf', () => {
  it.each([
    ['eu-west-1', 'aws'],
    ['cn-north-1', 'aws-cn'],
    ['us-gov-west-1', 'aws-us-gov'],
  ])('%s is in %s', (region, partition) => expect(partitionOf(region)).toBe(partition));
});

describe('isMissingRoleAnswer', () => {
  const answered = (status: number, message: string) =>
    Object.assign(new Error(message), { $metadata: { httpStatusCode: status } });
  it('is the emulator’s HTML error page with status 500', () => {
    expect(isMissingRoleAnswer(answered(500, 'XML parse error: mismatched tags <html> and </title>.'))).toBe(
      true,
    );
    expect(isMissingRoleAnswer(answered(500, 'x'), '<!doctype html><html><title>500</title>')).toBe(true);
  });
  it('is not any other failure', () => {
    expect(isMissingRoleAnswer(answered(500, 'InternalFailure'))).toBe(false);
    expect(isMissingRoleAnswer(answered(403, '<html>'))).toBe(false);
    expect(isMissingRoleAnswer('no error')).toBe(false);
  });
});
