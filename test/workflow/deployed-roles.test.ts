/**
 * Run as deployed: every handler invocation of the workflow tests signs as its own Lambda's role,
 * made from the synthesized template (cli/deployed-roles.ts). These tests show that the
 * mechanism can fail. Each takes one permission away from one step's role (one action per
 * service, a resource pattern that excludes the call's target) and a run that passes with the
 * whole role must then fail, naming the action and the step. The controls run the same scenario
 * with the whole role, and record each call the mutations take away, so no mutation removes a
 * permission the scenario never used.
 *
 * Also here: the protected users' Deny (which the emulator never applies: it matches only
 * Resource *), the emulator's own refusal of an action (what it does enforce), and the two APIs
 * it lacks, answered by stand-ins that apply the same check (CloudTrail LookupEvents, IAM's
 * service-specific credentials).
 */
import type { Event } from '@aws-sdk/client-cloudtrail';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import {
  CreateAccessKeyCommand,
  DeleteAccessKeyCommand,
  GetUserCommand,
  type IAMClient,
} from '@aws-sdk/client-iam';
import type { AwsClientStub } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeployedRoles } from '../../cli/deployed-roles.ts';
import type { RotationResult, TaskOverride } from '../../cli/local-runner.ts';
import { AccessDenied, runInInvocation } from '../../lambdas/shared/clients/invocation.ts';
import { cloudTrail, dynamodb, iam } from '../../lambdas/shared/clients.ts';
import { ACCOUNT } from '../../support/constants.ts';
import { type FakeCloudTrail, fakeCloudTrail } from '../support/fake-cloudtrail.ts';
import { FakeServiceCredentials } from '../support/fake-service-credentials.ts';
import { usersUnder, withoutAction } from '../support/role-mutations.ts';
import { outcomeStatus, startWorld, type World } from './harness.ts';

const KEYSPACES = 'cassandra.amazonaws.com';

let world: World;
let trail: FakeCloudTrail;
let credentials: FakeServiceCredentials;
let iamMock: AwsClientStub<IAMClient>;

beforeAll(async () => {
  world = await startWorld({
    config: { maxAdoptionChecks: 1, cloudTrailLookup: true, protectedUsers: ['break-glass'] },
  });
  trail = fakeCloudTrail(cloudTrail, () => [CONSUMER_EVENT]);
  credentials = new FakeServiceCredentials();
  iamMock = credentials.installOn(iam);
});
afterAll(async () => {
  trail?.stub.restore();
  iamMock?.restore();
  await world?.stop();
});

/** What the CloudTrail stand-in reports of the consumer still using the old key. */
const CONSUMER_EVENT: Event = {
  EventName: 'GetCallerIdentity',
  EventTime: new Date(),
  CloudTrailEvent: JSON.stringify({ sourceIPAddress: '203.0.113.7', userAgent: 'billing-app/1.0' }),
};

/** The same roles, recording every call each Lambda is allowed to make, as `step action`. */
function recording(roles: DeployedRoles): { roles: DeployedRoles; calls: Set<string> } {
  const calls = new Set<string>();
  return {
    calls,
    roles: {
      ...roles,
      async contextFor(lambda) {
        const context = await roles.contextFor(lambda);
        const { authorize } = context;
        return {
          ...context,
          authorize: async (request) => {
            const target = await authorize?.(request);
            calls.add(`${request.step} ${request.action}`);
            return target;
          },
        };
      },
    },
  };
}

let users = 0;
async function newUser(options: Parameters<World['createUser']>[1] = {}): Promise<string> {
  const userName = `deployed-${++users}`;
  await world.createUser(userName, options);
  return userName;
}

/** Every task error message of the run, one per line. */
/** The error `promise` was refused with; an Error saying so when it was not. */
const refusalOf = (promise: Promise<unknown>): Promise<Error> =>
  promise.then(
    () => new Error('not refused'),
    (e: unknown) => e as Error,
  );

const taskErrors = (result: RotationResult): string =>
  result.tasks
    .filter((t) => t.error)
    .map((t) => `${t.state} (${t.step}): ${t.error?.name}: ${t.error?.message}`)
    .join('\n');

/** The run failed, and a task's error is the role's refusal of `action` for `step`. */
function expectRefused(result: RotationResult, step: string, action: string): void {
  expect(result.status, taskErrors(result)).toBe('FAILED');
  expect(taskErrors(result)).toContain(`the ${step} Lambda's role does not allow ${action}`);
}

describe('a rotation without one of its permissions fails, naming the action and the step', () => {
  /** One action per service of each step's role, all made by the happy path. */
  const MUTATIONS: Array<[string, string]> = [
    ['plan', 'iam:GetUser'],
    ['plan', 'dynamodb:GetItem'],
    ['plan', 'dynamodb:UpdateItem'],
    ['create-second-key', 'iam:CreateAccessKey'],
    ['create-second-key', 'secretsmanager:PutSecretValue'],
    ['create-second-key', 'dynamodb:UpdateItem'],
    ['verify-new-key', 'secretsmanager:GetSecretValue'],
    ['verify-new-key', 'secretsmanager:UpdateSecretVersionStage'],
    ['check-last-used', 'iam:GetAccessKeyLastUsed'],
    ['deactivate-old-key', 'iam:GetAccessKeyLastUsed'],
    ['deactivate-old-key', 'iam:UpdateAccessKey'],
    ['verify-rotation', 'secretsmanager:GetSecretValue'],
    ['verify-rotation', 'iam:GetAccessKeyLastUsed'],
    ['verify-rotation', 'iam:GetUser'],
    ['verify-rotation', 'iam:DeleteAccessKey'],
    ['notify', 'sns:Publish'],
    ['notify', 'events:PutEvents'],
    ['notify', 'dynamodb:UpdateItem'],
  ];
  let control: { result: RotationResult; calls: Set<string> };

  beforeAll(async () => {
    const recorded = recording(world.roles);
    const result = await world.run({ userName: await newUser() }, { roles: recorded.roles });
    control = { result, calls: recorded.calls };
  });

  it('control: the whole roles rotate, and make every call the mutations take away', () => {
    expect(outcomeStatus(control.result), taskErrors(control.result)).toBe('ROTATED');
    for (const [step, action] of MUTATIONS) expect([...control.calls]).toContain(`${step} ${action}`);
  });

  it.each(MUTATIONS)('%s without %s', async (step, action) => {
    const result = await world.run(
      { userName: await newUser() },
      { roles: world.rolesWith(withoutAction(step, action)) },
    );

    expectRefused(result, step, action);
  });

  it('a statement whose resource pattern excludes the target (users under /other/) is caught', async () => {
    const userName = await newUser();

    const result = await world.run(
      { userName },
      { roles: world.rolesWith(usersUnder('create-second-key', ACCOUNT, '/other/')) },
    );

    expect(result.status).toBe('FAILED');
    expect(taskErrors(result)).toMatch(
      new RegExp(
        `the create-second-key Lambda's role does not allow iam:\\w+ on arn:aws:iam::${ACCOUNT}:user/${userName}: ` +
          `no statement allowing it matches this resource and its conditions \\(Allow on arn:aws:iam::${ACCOUNT}:user/other/\\*`,
      ),
    );
  });
});

describe('the rollback without its permission', () => {
  /** The new key stops working before the verification (deleted behind rekey's back): the run rolls back. */
  const newKeyGoneBeforeVerify =
    (userName: string): TaskOverride =>
    async (input, invoke) => {
      const current = await world.storedCredential(userName);
      await world.iam.send(
        new DeleteAccessKeyCommand({ UserName: userName, AccessKeyId: current.AccessKeyId }),
      );
      return invoke(input);
    };
  const rollback = async (roles: DeployedRoles) => {
    const userName = await newUser();
    return world.run(
      { userName },
      { handlers: { 'verify-rotation': newKeyGoneBeforeVerify(userName) }, roles },
    );
  };

  it('control: rolls back (reactivate-old-key reactivates the old key)', async () => {
    const recorded = recording(world.roles);

    const result = await rollback(recorded.roles);

    expect(result.error, taskErrors(result)).toBe('RotationRolledBack');
    expect([...recorded.calls]).toContain('reactivate-old-key iam:UpdateAccessKey');
  });

  it('reactivate-old-key without iam:UpdateAccessKey', async () => {
    const result = await rollback(
      world.rolesWith(withoutAction('reactivate-old-key', 'iam:UpdateAccessKey')),
    );

    expectRefused(result, 'reactivate-old-key', 'iam:UpdateAccessKey');
  });
});

describe('the removal of an extra key without its permission', () => {
  /** A user with an inactive, never-used extra key: the plan removes it first (delete-key). */
  const withExtraKey = async (roles: DeployedRoles) =>
    world.run({ userName: await newUser({ keys: 2, inactive: [1] }) }, { roles });

  it('control: delete-key removes the extra key, then the rotation completes', async () => {
    const recorded = recording(world.roles);

    const result = await withExtraKey(recorded.roles);

    expect(outcomeStatus(result), taskErrors(result)).toBe('ROTATED');
    expect([...recorded.calls]).toContain('delete-key iam:DeleteAccessKey');
  });

  it('delete-key without iam:DeleteAccessKey', async () => {
    const result = await withExtraKey(world.rolesWith(withoutAction('delete-key', 'iam:DeleteAccessKey')));

    expectRefused(result, 'delete-key', 'iam:DeleteAccessKey');
  });
});

describe('APIs the emulator lacks, answered by stand-ins that apply the same check', () => {
  /** A run whose old key is used after the hand-out, so the check looks CloudTrail up. */
  async function inUseRun(roles: DeployedRoles): Promise<RotationResult> {
    const userName = `deployed-${++users}`;
    const [old] = await world.createUser(userName);
    if (!old) throw new Error('no key');
    const consumer: TaskOverride = async (input, invoke) => {
      expect(await world.whoAmI(old)).toMatch(/^arn:aws:iam::/);
      return invoke(input);
    };
    return world.run({ userName }, { roles, handlers: { 'check-last-used': consumer } });
  }
  const callersOf = (result: RotationResult) =>
    (
      result.tasks.find((t) => t.step === 'check-last-used')?.output as
        | { recentCallers?: string[] }
        | undefined
    )?.recentCallers;

  it('control: CloudTrail names who still uses the old key; the run stops safely', async () => {
    const before = trail.answered();

    const result = await inUseRun(world.roles);

    expect(outcomeStatus(result)).toBe('STOPPED');
    expect(trail.answered()).toBe(before + 1);
    expect(callersOf(result)).toEqual(['GetCallerIdentity from 203.0.113.7 (billing-app/1.0)']);
  });

  it('check-last-used without cloudtrail:LookupEvents: the lookup is refused (it is informational: the stop stands)', async () => {
    const refusals = trail.refusals.length;

    const result = await inUseRun(
      world.rolesWith(withoutAction('check-last-used', 'cloudtrail:LookupEvents')),
    );

    const refusal = trail.refusals[refusals];
    expect(refusal).toBeInstanceOf(AccessDenied);
    expect(refusal?.message).toBe(
      "the check-last-used Lambda's role does not allow cloudtrail:LookupEvents on *: no statement of the role has this action",
    );
    // The decision rests on IAM's last-used data, as designed; the lookup's failure is logged.
    expect(outcomeStatus(result)).toBe('STOPPED');
    expect(callersOf(result)).toEqual([]);
    expect(world.logs.join('')).toMatch(/CloudTrail lookup failed.*"errorName":"AccessDenied"/);
  });

  const keyspacesRun = async (roles: DeployedRoles) => {
    const userName = await newUser({ keys: 0 });
    credentials.seed(userName, KEYSPACES);
    return world.run({ userName, serviceName: KEYSPACES }, { roles });
  };

  it('control: a Keyspaces credential rotates (IAM service-specific credentials, a stand-in)', async () => {
    const recorded = recording(world.roles);

    const result = await keyspacesRun(recorded.roles);

    expect(outcomeStatus(result), taskErrors(result)).toBe('ROTATED');
    expect([...recorded.calls]).toContain('create-second-key iam:CreateServiceSpecificCredential');
  });

  it('create-second-key without iam:CreateServiceSpecificCredential', async () => {
    const result = await keyspacesRun(
      world.rolesWith(withoutAction('create-second-key', 'iam:CreateServiceSpecificCredential')),
    );

    expectRefused(result, 'create-second-key', 'iam:CreateServiceSpecificCredential');
  });
});

describe('what the emulator cannot check itself', () => {
  it("the protected users' Deny (the emulator matches only Resource *): the key change is refused", async () => {
    await world.createUser('break-glass');
    const before = await world.keysOf('break-glass');
    const create = await world.roles.contextFor('create-second-key');
    const createKey = (userName: string) =>
      runInInvocation(create, () => iam.send(new CreateAccessKeyCommand({ UserName: userName })));

    const error = await refusalOf(createKey('break-glass'));

    expect(error).toBeInstanceOf(AccessDenied);
    expect(error.message).toMatch(
      new RegExp(
        `^the create-second-key Lambda's role does not allow iam:CreateAccessKey on arn:aws:iam::${ACCOUNT}:user/break-glass: ` +
          'explicitly denied by its statement Deny on .*\\(NeverTouchProtectedUsers\\)$',
      ),
    );
    expect(await world.keysOf('break-glass')).toEqual(before);
    // Control: the same call for another user is allowed (and makes a key).
    const other = await newUser({ keys: 0 });
    await createKey(other);
    expect(await world.keysOf(other)).toHaveLength(1);
  });

  it('the emulator refuses an action missing from the role by itself, reported as AccessDenied naming it (JSON and XML services)', async () => {
    // Prepare: the plan's role without two actions, and no check of rekey's own: only moto's.
    const mutated = world.rolesWith((lambda, statements) =>
      withoutAction('plan', 'iam:GetUser')(
        lambda,
        withoutAction('plan', 'dynamodb:GetItem')(lambda, statements),
      ),
    );
    const { authorize: _unused, ...emulatorOnly } = await mutated.contextFor('plan');
    const { authorize: _whole, ...whole } = await world.roles.contextFor('plan');
    const getItem = () =>
      dynamodb.send(
        new GetItemCommand({ TableName: world.env.REKEY_LOCK_TABLE, Key: { userName: { S: 'nobody' } } }),
      );
    const getUser = () => iam.send(new GetUserCommand({ UserName: 'break-glass' }));

    // Act
    const refusedItem = await refusalOf(runInInvocation(emulatorOnly, getItem));
    const refusedUser = await refusalOf(runInInvocation(emulatorOnly, getUser));

    // Assess: moto's refusal (XML even for DynamoDB's JSON protocol), named as the harness names its own.
    for (const [error, action] of [
      [refusedItem, 'dynamodb:GetItem'],
      [refusedUser, 'iam:GetUser'],
    ] as const) {
      expect(error).toBeInstanceOf(AccessDenied);
      expect(error.message).toMatch(
        new RegExp(
          `^the plan Lambda's role does not allow ${action}: the emulator refused it \\(User: ` +
            `arn:aws:sts::${ACCOUNT}:assumed-role/rekey-local-plan-[0-9a-f]+/rekey-plan is not authorized to perform: ${action}`,
        ),
      );
    }
    // Control: the whole role's session may make both calls.
    await expect(runInInvocation(whole, getItem)).resolves.toBeDefined();
    await expect(runInInvocation(whole, getUser)).resolves.toBeDefined();
  });
});
