/**
 * Service-specific credentials (Keyspaces, CodeCommit) through the real state machine: the
 * definition from `cdk synth`, run by aws-local-stepfunctions, every Task bound to its real
 * handler, against moto for IAM users, Secrets Manager, DynamoDB, SNS and EventBridge. moto does
 * not implement the service-specific credential API, so the handlers' IAM client is mocked for
 * those four commands only, backed by a stateful fake (test/support/fake-service-credentials.ts);
 * every other IAM command passes through to moto.
 */
import {
  CreateServiceSpecificCredentialCommand,
  DeleteServiceSpecificCredentialCommand,
  type IAMClient,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import type { AwsClientStub } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { exitCodeFor, type RotationResult, type TaskOverride } from '../../cli/local-runner.ts';
import { SERVICE_NAMES, type ServiceName } from '../../contract/schemas.ts';
import { iam } from '../../lambdas/shared/clients.ts';
import { FakeServiceCredentials } from '../support/fake-service-credentials.ts';
import {
  detailTypes,
  expectCleanRun,
  type Notification,
  outcomeStatus,
  startWorld,
  statesEntered,
  type World,
} from './harness.ts';

let world: World;
let fake: FakeServiceCredentials;
let iamMock: AwsClientStub<IAMClient>;
const KEYSPACES: ServiceName = 'cassandra.amazonaws.com';

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  iamMock?.restore();
  await world?.stop();
});
beforeEach(() => {
  iamMock?.restore();
  fake = new FakeServiceCredentials();
  iamMock = fake.installOn(iam);
});

const inputsOf = (command: Parameters<AwsClientStub<IAMClient>['commandCalls']>[0]) =>
  iamMock.commandCalls(command).map((call) => call.args[0].input);

async function storedServiceCredential(userName: string, serviceName: string, stage = 'AWSCURRENT') {
  const out = await world.secrets.send(
    new GetSecretValueCommand({
      SecretId: `${world.env.REKEY_SECRET_PREFIX}${userName}/${serviceName}`,
      VersionStage: stage,
    }),
  );
  return JSON.parse(out.SecretString ?? '{}') as Record<string, string>;
}

async function expectClean(result: RotationResult, notifications: Notification): Promise<void> {
  // Every password the fake issued counts, stored or not (an orphan's was never stored).
  expect(fake.passwords.length).toBeGreaterThan(0);
  await expectCleanRun(world, result, notifications, fake.passwords);
}

describe('happy path', () => {
  it.each(SERVICE_NAMES)(
    '%s: replaces the only credential, stores the new one, deactivates and deletes the old one',
    async (service) => {
      const user = `svc-${service.split('.')[0]}`;
      await world.createUser(user, { keys: 0 });
      const old = fake.seed(user, service);

      const result = await world.run({ userName: user, serviceName: service });

      expect(result.status).toBe('SUCCEEDED');
      expect(outcomeStatus(result)).toBe('ROTATED');
      expect(exitCodeFor(result)).toBe(0);
      const now = fake.list(user, service);
      expect(now).toHaveLength(1);
      const fresh = now[0];
      if (!fresh) throw new Error('no credential');
      expect(fresh.id).not.toBe(old.id);
      expect(fresh.status).toBe('Active');
      const stored = await storedServiceCredential(user, service);
      expect(stored).toEqual({
        ServiceUserName: fresh.serviceUserName,
        ServicePassword: fresh.password,
        ServiceSpecificCredentialId: fresh.id,
        ServiceName: service,
        UserName: user,
        CreateDate: fresh.createDate.toISOString(),
      });
      // The exact IAM calls of the whole rotation.
      expect(inputsOf(CreateServiceSpecificCredentialCommand)).toEqual([
        { UserName: user, ServiceName: service },
      ]);
      expect(inputsOf(UpdateServiceSpecificCredentialCommand)).toEqual([
        { UserName: user, ServiceSpecificCredentialId: old.id, Status: 'Inactive' },
      ]);
      expect(inputsOf(DeleteServiceSpecificCredentialCommand)).toEqual([
        { UserName: user, ServiceSpecificCredentialId: old.id },
      ]);
      // The user's access keys were never touched (none were created).
      expect(await world.keysOf(user)).toEqual([]);

      const notifications = await world.drainNotifications();
      expect(detailTypes(notifications)).toEqual([
        'Access Key Rotation Started',
        'New Access Key Ready',
        'Access Key Deactivated',
        'Access Key Rotation Completed',
      ]);
      const ready = notifications.events[1]?.detail ?? {};
      expect(ready).toMatchObject({
        userName: user,
        serviceName: service,
        oldServiceSpecificCredentialId: old.id,
        newServiceSpecificCredentialId: fresh.id,
        serviceUserName: fresh.serviceUserName,
        oldAccessKeyId: null,
        lastUseData: 'none',
      });
      expect(String(ready.message)).toContain(
        "the password itself is proven by the consumer's first connection",
      );
      expect(
        notifications.sns.every((body) => body.includes(`service-specific credential for ${service}`)),
      ).toBe(true);
      expect(notifications.sns.some((body) => body.includes('IAM keeps no last-used data'))).toBe(true);
      await expectClean(result, notifications);
    },
  );
});

describe('stops that change nothing', () => {
  it.each([
    ['two active credentials', 'svc-two', { ageDays: 10 }, 'TwoActiveKeys'],
    [
      'an extra inactive credential (IAM cannot show it was never used, so it is not deleted)',
      'svc-parked',
      { status: 'Inactive' as const, ageDays: 300 },
      'InactiveUsageUnknown',
    ],
  ])('%s: stops with its reason, alerts, and changes nothing', async (_what, userName, second, reason) => {
    await world.createUser(userName, { keys: 0 });
    fake.seed(userName, KEYSPACES);
    fake.seed(userName, KEYSPACES, second);
    const before = [await world.snapshot(), fake.snapshot()];

    const result = await world.run({ userName, serviceName: KEYSPACES });

    expect(outcomeStatus(result)).toBe('STOPPED');
    expect((result.output as { outcome: { reason: string } }).outcome.reason).toBe(reason);
    expect(exitCodeFor(result)).toBe(2);
    expect([await world.snapshot(), fake.snapshot()]).toEqual(before);
    expect(fake.mutations).toEqual([]);
    const notifications = await world.drainNotifications();
    expect(detailTypes(notifications)).toEqual(['Access Key Rotation Stopped']);
    expect(notifications.events[0]?.detail).toMatchObject({ reason, serviceName: KEYSPACES });
  });
});

describe('crash after create', () => {
  it('a lost CreateServiceSpecificCredential response: the orphan is deleted, the retry rotates, never a third', async () => {
    await world.createUser('svc-crash', { keys: 0 });
    const old = fake.seed('svc-crash', KEYSPACES);
    fake.loseCreateResponses = 1;

    const result = await world.run({ userName: 'svc-crash', serviceName: KEYSPACES });

    expect(outcomeStatus(result)).toBe('ROTATED');
    expect(result.events.some((e) => e.type === 'StateRetried')).toBe(true);
    expect(fake.maxPerUserAndService).toBe(2);
    const [orphanCreate, , ...rest] = fake.mutations;
    expect(orphanCreate).toBe(`Create ${KEYSPACES}`);
    // The orphan (created, response lost) was deleted before the second create.
    expect(fake.mutations[1]).toMatch(/^Delete ACCA/);
    expect(rest[0]).toBe(`Create ${KEYSPACES}`);
    const [fresh] = fake.list('svc-crash', KEYSPACES);
    expect(fake.list('svc-crash', KEYSPACES)).toHaveLength(1);
    expect(fresh?.id).not.toBe(old.id);
    expect((await storedServiceCredential('svc-crash', KEYSPACES)).ServiceSpecificCredentialId).toBe(
      fresh?.id,
    );
    await expectClean(result, await world.drainNotifications());
  });

  it('a re-run of the same execution resumes with the credential it already stored', async () => {
    await world.createUser('svc-rerun', { keys: 0 });
    const old = fake.seed('svc-rerun', KEYSPACES);
    const outage: TaskOverride = () => {
      const error = new Error('Secrets Manager is down');
      error.name = 'ServiceUnavailable';
      throw error;
    };
    const first = await world.run(
      { userName: 'svc-rerun', serviceName: KEYSPACES },
      { executionName: 'svc-rerun', handlers: { 'verify-new-key': outage } },
    );
    expect(first.status).toBe('FAILED');
    const pending = await storedServiceCredential('svc-rerun', KEYSPACES, 'AWSPENDING');
    expect(fake.list('svc-rerun', KEYSPACES).map((c) => c.id)).toEqual([
      old.id,
      pending.ServiceSpecificCredentialId,
    ]);

    const second = await world.run(
      { userName: 'svc-rerun', serviceName: KEYSPACES },
      { executionName: 'svc-rerun' },
    );

    expect(outcomeStatus(second)).toBe('ROTATED');
    expect(inputsOf(CreateServiceSpecificCredentialCommand)).toHaveLength(1);
    expect(fake.list('svc-rerun', KEYSPACES).map((c) => c.id)).toEqual([pending.ServiceSpecificCredentialId]);
    expect((await storedServiceCredential('svc-rerun', KEYSPACES)).ServiceSpecificCredentialId).toBe(
      pending.ServiceSpecificCredentialId,
    );
    await expectClean(second, await world.drainNotifications());
  });
});

describe('dry run', () => {
  it('reports the plan, says there is no last-used data, and makes no mutating call', async () => {
    await world.createUser('svc-dry', { keys: 0 });
    fake.seed('svc-dry', KEYSPACES);
    const before = [await world.snapshot(), fake.snapshot()];

    const result = await world.run({ userName: 'svc-dry', serviceName: KEYSPACES, dryRun: true });

    expect(outcomeStatus(result)).toBe('DRY_RUN');
    const steps = (result.output as { steps: string[] }).steps.join('\n');
    expect(steps).toMatch(/IAM keeps no last-used data for ACCA\w+/);
    expect(steps).toMatch(/create a second service-specific credential for cassandra\.amazonaws\.com/);
    expect([await world.snapshot(), fake.snapshot()]).toEqual(before);
    expect(fake.mutations).toEqual([]);
    const notifications = await world.drainNotifications();
    expect(notifications).toEqual({ sns: [], events: [] });
    await expectClean(result, notifications);
  });
});

describe('one rotation per user and credential', () => {
  it('an access-key rotation of the same user proceeds while a Keyspaces rotation runs; a second Keyspaces rotation stops', async () => {
    const [oldKey] = await world.createUser('svc-both');
    const oldCredential = fake.seed('svc-both', KEYSPACES);
    let keyRotation: RotationResult | undefined;
    let rivalRotation: RotationResult | undefined;
    // While the Keyspaces rotation holds its lock (its plan is done), run the other two.
    const meanwhile: TaskOverride = async (input, invoke) => {
      if (!keyRotation) {
        keyRotation = await world.run({ userName: 'svc-both' }, { executionName: 'svc-both-keys' });
        rivalRotation = await world.run(
          { userName: 'svc-both', serviceName: KEYSPACES },
          { executionName: 'svc-both-rival' },
        );
      }
      return invoke(input);
    };

    const keyspaces = await world.run(
      { userName: 'svc-both', serviceName: KEYSPACES },
      { executionName: 'svc-both-keyspaces', handlers: { 'create-second-key': meanwhile } },
    );

    expect(outcomeStatus(keyspaces)).toBe('ROTATED');
    if (!keyRotation || !rivalRotation) throw new Error('the other rotations never ran');
    expect(outcomeStatus(keyRotation)).toBe('ROTATED');
    expect(outcomeStatus(rivalRotation)).toBe('STOPPED');
    expect((rivalRotation.output as { outcome: { reason: string } }).outcome.reason).toBe(
      'RotationInProgress',
    );
    expect(rivalRotation.tasks.map((t) => t.step)).toEqual(['plan']);
    const keys = await world.keysOf('svc-both');
    expect(keys).toHaveLength(1);
    expect(keys[0]?.id).not.toBe(oldKey?.accessKeyId);
    expect(fake.list('svc-both', KEYSPACES).map((c) => c.id)).not.toContain(oldCredential.id);
    expect(fake.list('svc-both', KEYSPACES)).toHaveLength(1);
    await expectClean(keyspaces, await world.drainNotifications());
  });
});

describe('statesEntered', () => {
  it('the service-specific rotation walks the same states as an access-key rotation', async () => {
    await world.createUser('svc-states', { keys: 0 });
    fake.seed('svc-states', 'codecommit.amazonaws.com');
    await world.createUser('key-states');

    const service = await world.run({ userName: 'svc-states', serviceName: 'codecommit.amazonaws.com' });
    const key = await world.run({ userName: 'key-states' });

    expect(statesEntered(service)).toEqual(statesEntered(key));
    await expectClean(service, await world.drainNotifications());
  });
});
