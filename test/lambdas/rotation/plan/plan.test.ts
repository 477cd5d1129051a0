import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import {
  GetAccessKeyLastUsedCommand,
  GetUserCommand,
  ListAccessKeysCommand,
  ListServiceSpecificCredentialsCommand,
  NoSuchEntityException,
  type Tag,
} from '@aws-sdk/client-iam';
import { DescribeSecretCommand } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InvalidInput, UserNotFound } from '../../../../contract/errors.ts';
import { hubPathCalls } from '../../../../contract/functions.ts';
import { Plan } from '../../../../contract/schemas.ts';
import {
  decide,
  type Journal,
  type KeyView,
  type PlanDeps,
  type PlanEnv,
  parseRotationInput,
  planRotation,
} from '../../../../lambdas/rotation/plan/plan.ts';
import { dynamodb, iam, secretsManager } from '../../../../lambdas/shared/clients.ts';
import type { CreatedKey } from '../../../../lambdas/shared/own-key.ts';
import { versionTokenFor } from '../../../../lambdas/shared/secret.ts';
import {
  ACCOUNT,
  awsError,
  callOrder,
  daysAgo,
  EXECUTION_ID,
  EXTRA_KEY_ID,
  fakeClock,
  inputsOf,
  type KeyFixture,
  LOCK_TABLE,
  mockKeys,
  NEW_KEY_ID,
  NOW,
  OLD_KEY_ID,
  OTHER_EXECUTION_ID,
  rejectionOf,
  SECRET_ARN,
  SECRET_NAME,
  silenceLogs,
  USER,
  USER_ARN,
} from '../../../support/lambda-fixtures.ts';
import {
  EXTRA_ID,
  mockListed,
  NEW_CREATED,
  NEW_ID,
  OLD_CREATED,
  OLD_ID,
  SERVICE,
  SERVICE_SECRET_NAME,
  serviceLockItem,
} from '../../../support/service-credential-fixtures.ts';

const iamMock = mockClient(iam);
const ddbMock = mockClient(dynamodb);
const smMock = mockClient(secretsManager);

const ENV: PlanEnv = {
  REKEY_SECRET_PREFIX: 'rekey/',
  REKEY_LOCK_TTL_SECONDS: 86_400,
  REKEY_EXEMPT_TAG: 'rekey:exempt',
  REKEY_OWNER_TAG: 'rekey:owner',
  REKEY_PROTECTED_USERS: ['BreakGlass', 'terraform-ci'],
  REKEY_USER_PATH_PREFIX: '/',
  REKEY_OPT_IN_TAG: undefined,
  REKEY_HUB_ACCOUNT_ID: ACCOUNT,
};
const nowEpoch = Math.floor(NOW.getTime() / 1000);
const ACQUIRE_CONDITION = 'attribute_not_exists(#owner) OR #owner = :owner OR expiresAt < :nowEpoch';
/** The acquire as `callOrder` labels it. */
const ACQUIRE = 'UpdateItem(SET #owner = :owner, acquiredAt = :now, expiresAt = :exp)';

function deps(env: Partial<PlanEnv> = {}): PlanDeps {
  return {
    iam,
    secretsManager,
    lock: { dynamodb, table: LOCK_TABLE },
    clock: fakeClock(),
    env: { ...ENV, ...env },
  };
}

const request = (input: unknown, executionId = EXECUTION_ID) => ({ input, executionId });

function mockUser(user: { Path?: string; Tags?: Tag[]; UserName?: string } = {}): void {
  iamMock.on(GetUserCommand).resolves({
    User: {
      UserName: user.UserName ?? USER,
      UserId: 'AIDAEXAMPLEUSERID0001',
      Arn: USER_ARN,
      Path: user.Path ?? '/',
      CreateDate: daysAgo(900),
      Tags: user.Tags ?? [],
    },
  });
}

/** What the GetItem of the lock answers: `item`, or no item at all (the user was never locked). */
function mockLockRead(item?: Record<string, AttributeValue>): void {
  ddbMock.on(GetItemCommand).resolves(item ? { Item: item } : {});
}

/**
 * The conditional acquire succeeds (returning the item). Registered even where the plan must not
 * write, so that a write the plan should not make goes through and is caught by the assertions.
 */
function mockLockAcquired(): void {
  ddbMock.on(UpdateItemCommand, { ConditionExpression: ACQUIRE_CONDITION }).resolves({
    Attributes: {
      userName: { S: USER },
      owner: { S: EXECUTION_ID },
      expiresAt: { N: String(nowEpoch + ENV.REKEY_LOCK_TTL_SECONDS) },
    },
  });
}

/** A live lock of another execution (expires in an hour). */
const rivalLock = (): Record<string, AttributeValue> => ({
  userName: { S: USER },
  owner: { S: OTHER_EXECUTION_ID },
  acquiredAt: { S: NOW.toISOString() },
  expiresAt: { N: String(nowEpoch + 3600) },
});

/** Not one DynamoDB write of any kind. */
function expectNoLockWrite(): void {
  expect(ddbMock).not.toHaveReceivedCommand(UpdateItemCommand);
  expect(ddbMock).not.toHaveReceivedCommand(PutItemCommand);
  expect(ddbMock).not.toHaveReceivedCommand(DeleteItemCommand);
}

const OTHER_TOKEN = versionTokenFor(OTHER_EXECUTION_ID, USER, OLD_KEY_ID, NEW_KEY_ID);
const NO_JOURNAL: Journal = { creatingSince: null, ownKeyId: null, created: null };
const oldKey: KeyFixture = { id: OLD_KEY_ID, created: daysAgo(120), lastUsed: daysAgo(1) };

const acquireInput = (userKey = USER) => ({
  TableName: LOCK_TABLE,
  Key: { userName: { S: userKey } },
  UpdateExpression: 'SET #owner = :owner, acquiredAt = :now, expiresAt = :exp',
  ConditionExpression: ACQUIRE_CONDITION,
  ExpressionAttributeNames: { '#owner': 'owner' },
  ExpressionAttributeValues: {
    ':owner': { S: EXECUTION_ID },
    ':now': { S: NOW.toISOString() },
    ':exp': { N: String(nowEpoch + ENV.REKEY_LOCK_TTL_SECONDS) },
    ':nowEpoch': { N: String(nowEpoch) },
  },
  ReturnValues: 'ALL_NEW',
});

const readLockInput = (userKey = USER) => ({
  TableName: LOCK_TABLE,
  Key: { userName: { S: userKey } },
  ConsistentRead: true,
});

beforeAll(silenceLogs);
beforeEach(() => {
  iamMock.reset();
  ddbMock.reset();
  smMock.reset();
  // No secret exists unless a test says so.
  smMock.on(DescribeSecretCommand).rejects(awsError('ResourceNotFoundException'));
});

describe('parseRotationInput', () => {
  it.each([
    ['a missing userName', {}, 'userName: userName is required'],
    ['an empty userName', { userName: '' }, 'userName: userName must not be empty'],
    [
      'a 65-character userName',
      { userName: 'a'.repeat(65) },
      'userName: userName must be at most 64 characters',
    ],
    [
      'a userName with a space',
      { userName: 'alice smith' },
      'userName: userName may contain only letters, digits and +=,.@_-',
    ],
    ['a userName with a slash', { userName: 'ops/alice' }, 'userName: userName may contain only letters'],
    [
      'a userName with a non-ASCII letter',
      { userName: 'alicé' },
      'userName: userName may contain only letters',
    ],
    ['a number as userName', { userName: 42 }, 'userName: userName must be a string'],
    ['null as userName', { userName: null }, 'userName: userName must be a string'],
    ['dryRun "yes"', { userName: USER, dryRun: 'yes' }, 'dryRun: dryRun must be true or false'],
    ['dryRun 1', { userName: USER, dryRun: 1 }, 'dryRun: dryRun must be true or false'],
    ['an unknown field', { userName: USER, force: true }, 'unknown field(s): force'],
    ['a differently cased field', { UserName: USER }, 'unknown field(s): UserName'],
    [
      'a reason of 257 characters',
      { userName: USER, reason: 'r'.repeat(257) },
      'reason: reason must be at most 256 characters',
    ],
    ['a number as reason', { userName: USER, reason: 7 }, 'reason: reason must be a string'],
    [
      "a userName with ',' (valid in IAM, not in a secret name)",
      { userName: 'smtp,relay' },
      "userName: userName contains ',', which Secrets Manager names do not allow",
    ],
    ['null', null, 'input must be a JSON object'],
    ['undefined', undefined, 'input must be a JSON object'],
    ['an array', [{ userName: USER }], 'input must be a JSON object'],
    ['a string', 'alice', 'input must be a JSON object'],
    ['a number', 42, 'input must be a JSON object'],
  ])('rejects %s with InvalidInput naming the problem', (_label, raw, problem) => {
    // Act
    let error: unknown;
    try {
      parseRotationInput(raw);
    } catch (e) {
      error = e;
    }

    // Assess
    expect(error).toBeInstanceOf(InvalidInput);
    expect((error as InvalidInput).name).toBe('InvalidInput');
    expect((error as InvalidInput).message).toContain('invalid rotation request: ');
    expect((error as InvalidInput).message).toContain(problem);
  });

  it('names every problem of one request', () => {
    // Act
    let message = '';
    try {
      parseRotationInput({ userName: '', dryRun: 'yes', extra: 1 });
    } catch (e) {
      message = (e as Error).message;
    }

    // Assess
    expect(message).toContain('userName: userName must not be empty');
    expect(message).toContain('dryRun: dryRun must be true or false');
    expect(message).toContain('unknown field(s): extra');
  });

  it.each([
    ['a 64-character userName', { userName: 'a'.repeat(64) }],
    ['every punctuation mark a secret name allows', { userName: 'svc+ci=1.relay@corp_y-z' }],
    ['dryRun and a 256-character reason', { userName: USER, dryRun: true, reason: 'r'.repeat(256) }],
    ['dryRun false', { userName: USER, dryRun: false }],
  ])('accepts %s', (_label, raw) => {
    expect(parseRotationInput(raw)).toEqual(raw);
  });
});

describe('decide', () => {
  const view = (
    accessKeyId: string,
    status: string,
    createDate: Date,
    lastUsed: Date | null = null,
  ): KeyView => ({
    key: { accessKeyId, status, createDate },
    lastUse: { date: lastUsed, service: lastUsed ? 's3' : null, region: lastUsed ? 'eu-west-1' : null },
  });
  const refOf = (id: string, created: Date, lastUsed: Date | null) => ({
    accessKeyId: id,
    createDate: created.toISOString(),
    lastUsedDate: lastUsed ? lastUsed.toISOString() : null,
  });
  const old = view(OLD_KEY_ID, 'Active', daysAgo(120), daysAgo(1));

  it('0 keys -> STOP NoAccessKeys without an alert', () => {
    expect(decide(USER, [], NO_JOURNAL)).toEqual({
      action: 'STOP',
      stopReason: 'NoAccessKeys',
      alert: false,
      message: `"${USER}" has no access keys: nothing to rotate`,
      oldKey: null,
      extraKey: null,
      orphanKey: null,
      resumeStage: null,
    });
  });

  it('1 active key -> ROTATE it', () => {
    expect(decide(USER, [old], NO_JOURNAL)).toEqual({
      action: 'ROTATE',
      alert: false,
      message: `rotate ${OLD_KEY_ID} of "${USER}"`,
      oldKey: refOf(OLD_KEY_ID, daysAgo(120), daysAgo(1)),
      extraKey: null,
      orphanKey: null,
      resumeStage: null,
    });
  });

  it('1 inactive key -> STOP NoActiveKey without an alert', () => {
    const decision = decide(USER, [view(OLD_KEY_ID, 'Inactive', daysAgo(120))], NO_JOURNAL);
    expect(decision).toMatchObject({ action: 'STOP', stopReason: 'NoActiveKey', alert: false });
    expect(decision.message).toContain(OLD_KEY_ID);
  });

  it('2 active keys -> STOP TwoActiveKeys with an alert naming both keys', () => {
    const other = view(NEW_KEY_ID, 'Active', daysAgo(10), daysAgo(2));
    const decision = decide(USER, [old, other], NO_JOURNAL);
    expect(decision).toMatchObject({
      action: 'STOP',
      stopReason: 'TwoActiveKeys',
      alert: true,
      oldKey: null,
      extraKey: null,
      orphanKey: null,
    });
    expect(decision.message).toContain(OLD_KEY_ID);
    expect(decision.message).toContain(NEW_KEY_ID);
  });

  it('active + inactive never-used key -> ROTATE, removing the extra key first', () => {
    const extra = view(EXTRA_KEY_ID, 'Inactive', daysAgo(30));
    expect(decide(USER, [old, extra], NO_JOURNAL)).toMatchObject({
      action: 'ROTATE',
      alert: false,
      oldKey: refOf(OLD_KEY_ID, daysAgo(120), daysAgo(1)),
      extraKey: refOf(EXTRA_KEY_ID, daysAgo(30), null),
      orphanKey: null,
    });
  });

  it('active + inactive key that was used -> STOP InactiveKeyWasUsed with an alert', () => {
    const extra = view(EXTRA_KEY_ID, 'Inactive', daysAgo(300), daysAgo(200));
    const decision = decide(USER, [extra, old], NO_JOURNAL);
    expect(decision).toMatchObject({
      action: 'STOP',
      stopReason: 'InactiveKeyWasUsed',
      alert: true,
      extraKey: null,
    });
    expect(decision.message).toContain(EXTRA_KEY_ID);
    expect(decision.message).toContain(daysAgo(200).toISOString());
  });

  it('active + Expired never-used key -> ROTATE; the Expired key is an extra key, not the one to rotate', () => {
    const expired = view(EXTRA_KEY_ID, 'Expired', daysAgo(500));
    expect(decide(USER, [expired, old], NO_JOURNAL)).toMatchObject({
      action: 'ROTATE',
      oldKey: { accessKeyId: OLD_KEY_ID },
      extraKey: { accessKeyId: EXTRA_KEY_ID },
    });
  });

  it('active + Expired key that was used -> STOP InactiveKeyWasUsed', () => {
    const expired = view(EXTRA_KEY_ID, 'Expired', daysAgo(500), daysAgo(400));
    expect(decide(USER, [old, expired], NO_JOURNAL)).toMatchObject({
      action: 'STOP',
      stopReason: 'InactiveKeyWasUsed',
    });
  });

  it('only an Expired key -> STOP NoActiveKey', () => {
    expect(decide(USER, [view(OLD_KEY_ID, 'Expired', daysAgo(500))], NO_JOURNAL)).toMatchObject({
      action: 'STOP',
      stopReason: 'NoActiveKey',
    });
  });

  describe('orphan detection', () => {
    const creatingSince = new Date(NOW.getTime() - 10 * 60_000);
    const orphanCreated = new Date(creatingSince.getTime() + 2_000);

    it('an active never-used key created after creatingSince -> orphanKey, not TwoActiveKeys', () => {
      const orphan = view(NEW_KEY_ID, 'Active', orphanCreated);
      expect(decide(USER, [old, orphan], { creatingSince, ownKeyId: null, created: null })).toEqual({
        action: 'ROTATE',
        alert: false,
        message: `rotate ${OLD_KEY_ID} of "${USER}"`,
        oldKey: refOf(OLD_KEY_ID, daysAgo(120), daysAgo(1)),
        extraKey: null,
        orphanKey: refOf(NEW_KEY_ID, orphanCreated, null),
        resumeStage: null,
      });
    });

    it('the same key, but used -> TwoActiveKeys (somebody holds its secret)', () => {
      const used = view(NEW_KEY_ID, 'Active', orphanCreated, new Date(orphanCreated.getTime() + 60_000));
      expect(decide(USER, [old, used], { creatingSince, ownKeyId: null, created: null })).toMatchObject({
        action: 'STOP',
        stopReason: 'TwoActiveKeys',
        alert: true,
      });
    });

    it('the same key without a create in progress (creatingSince null) -> TwoActiveKeys', () => {
      expect(decide(USER, [old, view(NEW_KEY_ID, 'Active', orphanCreated)], NO_JOURNAL)).toMatchObject({
        stopReason: 'TwoActiveKeys',
      });
    });

    it('a never-used key created before creatingSince - grace -> TwoActiveKeys', () => {
      const before = view(NEW_KEY_ID, 'Active', new Date(creatingSince.getTime() - 61_000));
      expect(decide(USER, [old, before], { creatingSince, ownKeyId: null, created: null })).toMatchObject({
        stopReason: 'TwoActiveKeys',
      });
    });

    it('a never-used key created days after a stale creatingSince is not an orphan', () => {
      const staleSince = daysAgo(10);
      const handMade = view(NEW_KEY_ID, 'Active', daysAgo(1));
      expect(
        decide(USER, [old, handMade], { creatingSince: staleSince, ownKeyId: null, created: null }),
      ).toMatchObject({
        action: 'STOP',
        stopReason: 'TwoActiveKeys',
        orphanKey: null,
      });
    });
  });
  describe("resuming a rotation whose new key an earlier run handed out (the journal's key is AWSCURRENT)", () => {
    const fresh = view(NEW_KEY_ID, 'Active', daysAgo(9), daysAgo(0.5));
    const created = (over: Partial<CreatedKey> = {}): CreatedKey => ({
      accessKeyId: NEW_KEY_ID,
      versionId: OTHER_TOKEN,
      createdBy: OTHER_EXECUTION_ID,
      replacedKeyId: OLD_KEY_ID,
      secretName: SECRET_NAME,
      secretArn: SECRET_ARN,
      stages: ['AWSCURRENT'],
      current: true,
      handedOut: true,
      ...over,
    });
    const journal = (c: CreatedKey): Journal => ({ creatingSince: null, ownKeyId: null, created: c });
    const newKeyRef = {
      accessKeyId: NEW_KEY_ID,
      createDate: daysAgo(9).toISOString(),
      secretArn: SECRET_ARN,
      versionId: OTHER_TOKEN,
    };

    it('both keys active -> RESUME at the adoption check with the handed-out key; none is created', () => {
      expect(decide(USER, [old, fresh], journal(created()))).toEqual({
        action: 'RESUME',
        resumeStage: 'ADOPTION',
        alert: false,
        message:
          `resume the rotation of ${OLD_KEY_ID} of "${USER}": the new access key ${NEW_KEY_ID}, handed out ` +
          `earlier (AWSCURRENT in ${SECRET_NAME}), is kept and none is created; ${OLD_KEY_ID} is still active: ` +
          'check it went quiet, then deactivate and later delete it',
        oldKey: refOf(OLD_KEY_ID, daysAgo(120), daysAgo(1)),
        newKey: newKeyRef,
        extraKey: null,
        orphanKey: null,
      });
    });

    it('the old key already inactive -> RESUME at the verification, then the delete', () => {
      const inactive = view(OLD_KEY_ID, 'Inactive', daysAgo(120), daysAgo(12));
      expect(decide(USER, [inactive, fresh], journal(created()))).toMatchObject({
        action: 'RESUME',
        resumeStage: 'DELETION',
        oldKey: { accessKeyId: OLD_KEY_ID },
        newKey: newKeyRef,
      });
    });

    it('the AWSCURRENT key is the older one -> TwoActiveKeys, naming it', () => {
      const older = view(NEW_KEY_ID, 'Active', daysAgo(200), daysAgo(0.5));
      const decision = decide(USER, [old, older], journal(created()));
      expect(decision).toMatchObject({ action: 'STOP', stopReason: 'TwoActiveKeys', alert: true });
      expect(decision.message).toContain(
        `${NEW_KEY_ID} is rekey's own access key, AWSCURRENT in ${SECRET_NAME}`,
      );
    });

    it('the other key is not the one that rotation replaced -> TwoActiveKeys', () => {
      const decision = decide(USER, [old, fresh], journal(created({ replacedKeyId: EXTRA_KEY_ID })));
      expect(decision).toMatchObject({ action: 'STOP', stopReason: 'TwoActiveKeys' });
      expect(decision.message).toContain(`${NEW_KEY_ID} is rekey's own access key`);
    });

    it('a key handed out before but no longer AWSCURRENT is not resumed -> TwoActiveKeys', () => {
      const previous = created({ stages: ['AWSPREVIOUS'], current: false });
      expect(decide(USER, [old, fresh], journal(previous))).toMatchObject({ stopReason: 'TwoActiveKeys' });
    });

    it('never handed out, beside the key it was to replace -> ROTATE that key, the other one marked an orphan', () => {
      const pending = created({ stages: ['AWSPENDING'], current: false, handedOut: false });
      expect(decide(USER, [old, fresh], journal(pending))).toEqual({
        action: 'ROTATE',
        resumeStage: null,
        alert: false,
        message: `rotate ${OLD_KEY_ID} of "${USER}"`,
        oldKey: refOf(OLD_KEY_ID, daysAgo(120), daysAgo(1)),
        extraKey: null,
        orphanKey: refOf(NEW_KEY_ID, daysAgo(9), daysAgo(0.5)),
      });
    });

    it("never handed out, beside another key -> TwoActiveKeys whose alert names rekey's orphan", () => {
      const pending = created({ stages: [], current: false, handedOut: false, replacedKeyId: EXTRA_KEY_ID });
      const decision = decide(USER, [old, fresh], journal(pending));
      expect(decision).toMatchObject({ action: 'STOP', stopReason: 'TwoActiveKeys', alert: true });
      expect(decision.message).toContain(
        `${NEW_KEY_ID} is rekey's own access key, created by ${OTHER_EXECUTION_ID} and never handed out ` +
          `(its version in ${SECRET_NAME} was never AWSCURRENT), so nobody holds it and it can be deleted`,
      );
    });
  });

  describe('resuming a re-run of the same execution (journal.ownKeyId)', () => {
    const own = view(NEW_KEY_ID, 'Active', daysAgo(0.1), daysAgo(0.05));

    it('the key this execution created + one other key -> ROTATE the other key, not TwoActiveKeys', () => {
      expect(decide(USER, [own, old], { creatingSince: null, ownKeyId: NEW_KEY_ID, created: null })).toEqual({
        action: 'ROTATE',
        alert: false,
        message: `resume the rotation of ${OLD_KEY_ID} of "${USER}" (new key ${NEW_KEY_ID} was created earlier by this execution)`,
        oldKey: refOf(OLD_KEY_ID, daysAgo(120), daysAgo(1)),
        extraKey: null,
        orphanKey: null,
        resumeStage: null,
      });
    });

    it('an ownKeyId that is not among the keys changes nothing (TwoActiveKeys)', () => {
      expect(
        decide(USER, [own, old], { creatingSince: null, ownKeyId: EXTRA_KEY_ID, created: null }),
      ).toMatchObject({
        action: 'STOP',
        stopReason: 'TwoActiveKeys',
      });
    });
  });
});

describe('planRotation', () => {
  it('ROTATE: checks the user, reads the lock, lists the keys (no last use of the only, active key), then takes the lock as its last call', async () => {
    // Prepare
    mockUser();
    mockLockRead();
    mockLockAcquired();
    mockKeys(iamMock, [oldKey]);

    // Act
    const plan = await planRotation(deps(), request({ userName: USER, reason: 'quarterly' }));

    // Assess
    expect(Plan.parse(plan)).toEqual(plan);
    expect(plan).toEqual({
      userName: USER,
      // The request named no account: the hub's own.
      accountId: ACCOUNT,
      userArn: USER_ARN,
      dryRun: false,
      reason: 'quarterly',
      executionId: EXECUTION_ID,
      secretName: 'rekey/alice',
      action: 'ROTATE',
      alert: false,
      message: `rotate ${OLD_KEY_ID} of "${USER}"`,
      // Its last use was not read: no rule looks at it (KeyView); every step reads it again.
      oldKey: {
        accessKeyId: OLD_KEY_ID,
        createDate: daysAgo(120).toISOString(),
      },
      extraKey: null,
      orphanKey: null,
      resumeStage: null,
      quietSince: null,
      steps: [
        `create a second access key for "${USER}" and store it in rekey/alice (AWSPENDING)`,
        'prove the new key authenticates as the user, then make it AWSCURRENT and announce it',
        `wait for consumers to adopt it; check ${OLD_KEY_ID} was not used since the hand-out (or since the last check that found it used)`,
        `deactivate ${OLD_KEY_ID}, wait, verify it stayed unused and the new key still works (else reactivate ${OLD_KEY_ID})`,
        `delete ${OLD_KEY_ID}`,
      ],
    });
    expect(inputsOf(iamMock.commandCalls(GetUserCommand))).toEqual([{ UserName: USER }]);
    expect(inputsOf(iamMock.commandCalls(ListAccessKeysCommand))).toEqual([{ UserName: USER }]);
    expect(iamMock).not.toHaveReceivedCommand(GetAccessKeyLastUsedCommand);
    expect(inputsOf(ddbMock.commandCalls(GetItemCommand))).toEqual([readLockInput()]);
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([acquireInput()]);
    expect(callOrder(iamMock, ddbMock)).toEqual(['GetUser', 'GetItem', 'ListAccessKeys', ACQUIRE]);
  });

  it("with a create pending in the journal, the only key's last use is read: a never-used key made by a crashed create is an orphan, not a key to rotate", async () => {
    // Prepare: the create step crashed after CreateAccessKey and before the store, once the old
    // key had been deleted by hand; the only key left is the one nobody holds.
    const creatingSince = new Date(NOW.getTime() - 60_000);
    mockUser();
    mockLockRead({ expiresAt: { N: '0' }, creatingSince: { S: creatingSince.toISOString() } });
    mockLockAcquired();
    mockKeys(iamMock, [{ id: NEW_KEY_ID, created: new Date(creatingSince.getTime() + 1000) }]);

    // Act
    const plan = await planRotation(deps(), request({ userName: USER }));

    // Assess
    expect(inputsOf(iamMock.commandCalls(GetAccessKeyLastUsedCommand))).toEqual([
      { AccessKeyId: NEW_KEY_ID },
    ]);
    expect(plan).toMatchObject({ action: 'STOP', stopReason: 'NoActiveKey', oldKey: null });
    expectNoLockWrite();
  });

  it("an inactive key beside the active one: both keys' last use is read (the extra key's decides)", async () => {
    // Prepare
    mockUser();
    mockLockRead();
    mockLockAcquired();
    mockKeys(iamMock, [
      oldKey,
      { id: EXTRA_KEY_ID, status: 'Inactive', created: daysAgo(30), lastUsed: daysAgo(20) },
    ]);

    // Act
    const plan = await planRotation(deps(), request({ userName: USER }));

    // Assess
    expect(inputsOf(iamMock.commandCalls(GetAccessKeyLastUsedCommand))).toEqual([
      { AccessKeyId: OLD_KEY_ID },
      { AccessKeyId: EXTRA_KEY_ID },
    ]);
    expect(plan).toMatchObject({ action: 'STOP', stopReason: 'InactiveKeyWasUsed' });
  });

  it('reads and takes the lock under the lower-cased user name (IAM names are case-insensitive)', async () => {
    // Prepare
    mockUser({ UserName: 'Alice' });
    mockLockRead();
    mockLockAcquired();
    mockKeys(iamMock, [oldKey], 'Alice');

    // Act
    const plan = await planRotation(deps(), request({ userName: 'Alice' }));

    // Assess
    expect(plan).toMatchObject({ action: 'ROTATE', userName: 'Alice', secretName: 'rekey/Alice' });
    expect(inputsOf(ddbMock.commandCalls(GetItemCommand))).toEqual([readLockInput('alice')]);
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([acquireInput('alice')]);
    // Asked in IAM's own spelling: no look for a secret under another one.
    expect(smMock).not.toHaveReceivedCommand(DescribeSecretCommand);
  });

  describe('a case variant of the user name', () => {
    it("uses IAM's spelling for the user name, the secret name and the lock", async () => {
      // Prepare: the request says ALICE, IAM knows the user as alice; no secret under rekey/ALICE.
      mockUser();
      mockLockRead();
      mockLockAcquired();
      mockKeys(iamMock, [oldKey]);

      // Act
      const plan = await planRotation(deps(), request({ userName: 'ALICE' }));

      // Assess: every later step (version token, secret, lock) works from this state.
      expect(plan).toMatchObject({
        action: 'ROTATE',
        userName: USER,
        secretName: `rekey/${USER}`,
        message: `rotate ${OLD_KEY_ID} of "${USER}"`,
      });
      expect(inputsOf(iamMock.commandCalls(GetUserCommand))).toEqual([{ UserName: 'ALICE' }]);
      expect(inputsOf(iamMock.commandCalls(ListAccessKeysCommand))).toEqual([{ UserName: USER }]);
      expect(inputsOf(smMock.commandCalls(DescribeSecretCommand))).toEqual([{ SecretId: 'rekey/ALICE' }]);
      expect(inputsOf(ddbMock.commandCalls(GetItemCommand))).toEqual([readLockInput(USER)]);
      expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([acquireInput(USER)]);
    });

    it("keeps a secret that already exists under the request's spelling, and says so", async () => {
      // Prepare
      mockUser();
      mockLockRead();
      mockLockAcquired();
      mockKeys(iamMock, [oldKey]);
      smMock
        .on(DescribeSecretCommand, { SecretId: 'rekey/ALICE' })
        .resolves({ ARN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:rekey/ALICE-AbCdEf' });

      // Act
      const plan = await planRotation(deps(), request({ userName: 'ALICE' }));

      // Assess
      expect(plan).toMatchObject({ action: 'ROTATE', userName: USER, secretName: 'rekey/ALICE' });
      expect(plan.message).toBe(
        `rotate ${OLD_KEY_ID} of "${USER}"; IAM spells the user "${USER}"; its existing secret rekey/ALICE ` +
          '(named as requested) is kept',
      );
      expect(plan.steps.join('\n')).toContain('store it in rekey/ALICE');
      expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([acquireInput(USER)]);
    });

    it('refuses a protected user in any spelling, before any AWS call', async () => {
      // Act
      const plan = await planRotation(deps(), request({ userName: 'breakglass' }));

      // Assess
      expect(plan).toMatchObject({ action: 'STOP', stopReason: 'UserProtected' });
      expect(iamMock.calls()).toHaveLength(0);
    });
  });

  it('plans the extra and orphan deletions in its steps, using the journal read before listing the keys', async () => {
    // Prepare: a released lock (no owner) whose journal says a create was in progress.
    const creatingSince = new Date(NOW.getTime() - 5 * 60_000);
    mockUser();
    mockLockRead({
      userName: { S: USER },
      expiresAt: { N: String(nowEpoch + 90 * 86_400) },
      creatingSince: { S: creatingSince.toISOString() },
    });
    mockLockAcquired();
    mockKeys(iamMock, [
      oldKey,
      { id: NEW_KEY_ID, created: new Date(creatingSince.getTime() + 1000) },
      { id: EXTRA_KEY_ID, status: 'Inactive', created: daysAgo(30) },
    ]);

    // Act
    const plan = await planRotation(deps(), request({ userName: USER }));

    // Assess
    expect(plan).toMatchObject({
      action: 'ROTATE',
      oldKey: { accessKeyId: OLD_KEY_ID },
      extraKey: { accessKeyId: EXTRA_KEY_ID },
      orphanKey: { accessKeyId: NEW_KEY_ID },
    });
    expect(plan.steps.slice(0, 2)).toEqual([
      `delete the inactive, never-used key ${EXTRA_KEY_ID}`,
      `delete ${NEW_KEY_ID}, which an earlier attempt made and nobody holds (never handed out)`,
    ]);
    // ROTATE keeps the lock: one read, then only the acquire was written.
    expect(callOrder(ddbMock)).toEqual(['GetItem', ACQUIRE]);
  });

  describe('RESUME from the journal', () => {
    /** A released lock whose journal records the key another execution created, and that key's secret. */
    function mockJournal(stages: string[]) {
      mockLockRead({
        userName: { S: USER },
        expiresAt: { N: String(nowEpoch + 90 * 86_400) },
        createdKeyId: { S: NEW_KEY_ID },
        createdVersionId: { S: OTHER_TOKEN },
        createdBy: { S: OTHER_EXECUTION_ID },
        replacedKeyId: { S: OLD_KEY_ID },
        secretName: { S: SECRET_NAME },
      });
      smMock.on(DescribeSecretCommand, { SecretId: SECRET_NAME }).resolves({
        ARN: SECRET_ARN,
        VersionIdsToStages: { [OTHER_TOKEN]: stages, PREVIOUS: ['AWSPREVIOUS'] },
      });
    }

    it('a new execution resumes with the handed-out key: Q is its own start, and it takes the lock', async () => {
      // Prepare
      mockUser();
      mockJournal(['AWSCURRENT']);
      mockLockAcquired();
      mockKeys(iamMock, [oldKey, { id: NEW_KEY_ID, created: daysAgo(9), lastUsed: daysAgo(1) }]);

      // Act
      const plan = await planRotation(deps(), request({ userName: USER }));

      // Assess
      expect(Plan.parse(plan)).toEqual(plan);
      expect(plan).toMatchObject({
        action: 'RESUME',
        resumeStage: 'ADOPTION',
        quietSince: NOW.toISOString(),
        oldKey: { accessKeyId: OLD_KEY_ID },
        newKey: { accessKeyId: NEW_KEY_ID, secretArn: SECRET_ARN, versionId: OTHER_TOKEN },
      });
      expect(plan.steps[0]).toBe(
        `keep the new access key ${NEW_KEY_ID} (AWSCURRENT in ${SECRET_NAME}); create none`,
      );
      // Only the labels were read, never a value.
      expect(inputsOf(smMock.commandCalls(DescribeSecretCommand))).toEqual([{ SecretId: SECRET_NAME }]);
      expect(callOrder(ddbMock)).toEqual(['GetItem', ACQUIRE]);
    });

    it('a dry run of a resume reports it and takes no lock', async () => {
      // Prepare
      mockUser();
      mockJournal(['AWSCURRENT']);
      mockLockAcquired();
      mockKeys(iamMock, [
        { ...oldKey, status: 'Inactive' },
        { id: NEW_KEY_ID, created: daysAgo(9) },
      ]);

      // Act
      const plan = await planRotation(deps(), request({ userName: USER, dryRun: true }));

      // Assess
      expect(plan).toMatchObject({ action: 'RESUME', resumeStage: 'DELETION', dryRun: true });
      expectNoLockWrite();
    });

    it('the journal key never handed out -> ROTATE with it as the orphan the create step removes', async () => {
      // Prepare
      mockUser();
      mockJournal(['AWSPENDING']);
      mockLockAcquired();
      mockKeys(iamMock, [oldKey, { id: NEW_KEY_ID, created: daysAgo(0.01), lastUsed: daysAgo(0.005) }]);

      // Act
      const plan = await planRotation(deps(), request({ userName: USER }));

      // Assess
      expect(plan).toMatchObject({
        action: 'ROTATE',
        resumeStage: null,
        quietSince: null,
        oldKey: { accessKeyId: OLD_KEY_ID },
        orphanKey: { accessKeyId: NEW_KEY_ID },
      });
    });
  });

  it.each([['BreakGlass'], ['breakglass'], ['BREAKGLASS'], ['Terraform-CI']])(
    'refuses the protected user %s (case-insensitive) with zero AWS calls',
    async (userName) => {
      // Act
      const plan = await planRotation(deps(), request({ userName }));

      // Assess
      expect(plan).toMatchObject({
        action: 'STOP',
        stopReason: 'UserProtected',
        alert: false,
        userArn: null,
        message: `"${userName}" is a protected user: rekey never touches it`,
        steps: [`"${userName}" is a protected user: rekey never touches it`],
      });
      expect(iamMock.calls()).toHaveLength(0);
      expect(ddbMock.calls()).toHaveLength(0);
    },
  );

  it('rejects invalid input before any AWS call', async () => {
    // Act & Assess
    await expect(planRotation(deps(), request({ userName: USER, dryRun: 'yes' }))).rejects.toThrow(
      InvalidInput,
    );
    expect(iamMock.calls()).toHaveLength(0);
    expect(ddbMock.calls()).toHaveLength(0);
  });

  it("rejects a user name with ',' (no valid secret name) before any AWS call", async () => {
    // Act & Assess
    await expect(planRotation(deps(), request({ userName: 'smtp,relay' }))).rejects.toMatchObject({
      name: 'InvalidInput',
      message: expect.stringContaining("contains ','"),
    });
    expect(iamMock.calls()).toHaveLength(0);
  });

  it('throws UserNotFound on NoSuchEntity, without touching the lock', async () => {
    // Prepare
    iamMock
      .on(GetUserCommand)
      .rejects(
        new NoSuchEntityException({ message: 'The user with name alice cannot be found.', $metadata: {} }),
      );

    // Act
    const error = await rejectionOf(planRotation(deps(), request({ userName: USER })));

    // Assess
    expect(error).toBeInstanceOf(UserNotFound);
    expect(error).toMatchObject({ name: 'UserNotFound', message: `IAM user "${USER}" does not exist` });
    expect(ddbMock.calls()).toHaveLength(0);
    expect(iamMock).not.toHaveReceivedCommand(ListAccessKeysCommand);
  });

  it('rethrows other GetUser errors unchanged', async () => {
    // Prepare
    const denied = awsError('AccessDenied');
    iamMock.on(GetUserCommand).rejects(denied);

    // Act & Assess
    await expect(planRotation(deps(), request({ userName: USER }))).rejects.toBe(denied);
    expect(ddbMock.calls()).toHaveLength(0);
  });

  it('stops a user outside the configured path (UserOutOfScope) without taking the lock', async () => {
    // Prepare
    mockUser({ Path: '/humans/' });

    // Act
    const plan = await planRotation(
      deps({ REKEY_USER_PATH_PREFIX: '/service/' }),
      request({ userName: USER }),
    );

    // Assess
    expect(plan).toMatchObject({
      action: 'STOP',
      stopReason: 'UserOutOfScope',
      alert: false,
      userArn: USER_ARN,
      message: `"${USER}" (path /humans/) is outside the configured path /service/`,
    });
    expect(ddbMock.calls()).toHaveLength(0);
    expect(iamMock).not.toHaveReceivedCommand(ListAccessKeysCommand);
  });

  it('rotates a user under a nested path of the configured prefix', async () => {
    // Prepare
    mockUser({ Path: '/service/smtp/' });
    mockLockRead();
    mockLockAcquired();
    mockKeys(iamMock, [oldKey]);

    // Act
    const plan = await planRotation(
      deps({ REKEY_USER_PATH_PREFIX: '/service/' }),
      request({ userName: USER }),
    );

    // Assess
    expect(plan.action).toBe('ROTATE');
  });

  it('stops a user without the opt-in tag (UserOutOfScope) without taking the lock', async () => {
    // Prepare
    mockUser({ Tags: [{ Key: 'team', Value: 'platform' }] });

    // Act
    const plan = await planRotation(deps({ REKEY_OPT_IN_TAG: 'rekey:managed' }), request({ userName: USER }));

    // Assess
    expect(plan).toMatchObject({
      action: 'STOP',
      stopReason: 'UserOutOfScope',
      message: `"${USER}" does not carry the opt-in tag rekey:managed`,
    });
    expect(ddbMock.calls()).toHaveLength(0);
  });

  it('rotates a user carrying the opt-in tag (any value)', async () => {
    // Prepare
    mockUser({ Tags: [{ Key: 'rekey:managed', Value: '' }] });
    mockLockRead();
    mockLockAcquired();
    mockKeys(iamMock, [oldKey]);

    // Act
    const plan = await planRotation(deps({ REKEY_OPT_IN_TAG: 'rekey:managed' }), request({ userName: USER }));

    // Assess
    expect(plan.action).toBe('ROTATE');
  });

  it('stops an exempt user (active exemption) without an alert and without taking the lock', async () => {
    // Prepare
    mockUser({ Tags: [{ Key: 'rekey:exempt', Value: 'until=2026-06-30 vendor SMTP relay' }] });

    // Act
    const plan = await planRotation(deps(), request({ userName: USER }));

    // Assess
    expect(plan).toMatchObject({
      action: 'STOP',
      stopReason: 'UserExempt',
      alert: false,
      message: `"${USER}" is exempt until 2026-06-30: vendor SMTP relay`,
    });
    expect(ddbMock.calls()).toHaveLength(0);
    expect(iamMock).not.toHaveReceivedCommand(ListAccessKeysCommand);
  });

  it('rotates a user whose exemption expired', async () => {
    // Prepare
    mockUser({ Tags: [{ Key: 'rekey:exempt', Value: 'until=2026-02-28 vendor SMTP relay' }] });
    mockLockRead();
    mockLockAcquired();
    mockKeys(iamMock, [oldKey]);

    // Act
    const plan = await planRotation(deps(), request({ userName: USER }));

    // Assess
    expect(plan.action).toBe('ROTATE');
    expect(ddbMock).toHaveReceivedCommandTimes(UpdateItemCommand, 1);
  });

  it('stops with RotationInProgress (no alert) when another execution holds an unexpired lock, reading only', async () => {
    // Prepare: keys and a free acquire are there, so only the lock read can stop the plan.
    mockUser();
    mockLockRead(rivalLock());
    mockLockAcquired();
    mockKeys(iamMock, [oldKey]);

    // Act
    const plan = await planRotation(deps(), request({ userName: USER }));

    // Assess
    const message = `a rotation of "${USER}" is in progress (${OTHER_EXECUTION_ID})`;
    expect(plan).toMatchObject({
      action: 'STOP',
      stopReason: 'RotationInProgress',
      alert: false,
      userArn: USER_ARN,
      message,
      steps: [message],
      oldKey: null,
    });
    expect(inputsOf(ddbMock.commandCalls(GetItemCommand))).toEqual([readLockInput()]);
    expect(callOrder(iamMock, ddbMock)).toEqual(['GetUser', 'GetItem']);
    expectNoLockWrite();
  });

  describe('dry run', () => {
    it('reads the lock (GetItem only), never writes it, and still plans', async () => {
      // Prepare
      mockUser();
      ddbMock.on(GetItemCommand).resolves({});
      mockKeys(iamMock, [oldKey]);

      // Act
      const plan = await planRotation(deps(), request({ userName: USER, dryRun: true }));

      // Assess
      expect(plan).toMatchObject({ action: 'ROTATE', dryRun: true, oldKey: { accessKeyId: OLD_KEY_ID } });
      expect(inputsOf(ddbMock.commandCalls(GetItemCommand))).toEqual([
        { TableName: LOCK_TABLE, Key: { userName: { S: USER } }, ConsistentRead: true },
      ]);
      expect(ddbMock).not.toHaveReceivedCommand(UpdateItemCommand);
    });

    it('reports RotationInProgress when a live lock of another execution exists', async () => {
      // Prepare
      mockUser();
      ddbMock.on(GetItemCommand).resolves({
        Item: { owner: { S: OTHER_EXECUTION_ID }, expiresAt: { N: String(nowEpoch + 1) } },
      });

      // Act
      const plan = await planRotation(deps(), request({ userName: USER, dryRun: true }));

      // Assess
      expect(plan).toMatchObject({ action: 'STOP', stopReason: 'RotationInProgress', dryRun: true });
      expect(ddbMock).not.toHaveReceivedCommand(UpdateItemCommand);
    });

    it('ignores an expired lock of another execution', async () => {
      // Prepare
      mockUser();
      ddbMock.on(GetItemCommand).resolves({
        Item: { owner: { S: OTHER_EXECUTION_ID }, expiresAt: { N: String(nowEpoch) } },
      });
      mockKeys(iamMock, [oldKey]);

      // Act
      const plan = await planRotation(deps(), request({ userName: USER, dryRun: true }));

      // Assess
      expect(plan.action).toBe('ROTATE');
      expect(ddbMock).not.toHaveReceivedCommand(UpdateItemCommand);
    });

    it('uses the journal of the lock for orphan detection', async () => {
      // Prepare
      const creatingSince = new Date(NOW.getTime() - 60_000);
      mockUser();
      ddbMock.on(GetItemCommand).resolves({
        Item: { expiresAt: { N: '0' }, creatingSince: { S: creatingSince.toISOString() } },
      });
      mockKeys(iamMock, [oldKey, { id: NEW_KEY_ID, created: NOW }]);

      // Act
      const plan = await planRotation(deps(), request({ userName: USER, dryRun: true }));

      // Assess
      expect(plan).toMatchObject({ action: 'ROTATE', orphanKey: { accessKeyId: NEW_KEY_ID } });
    });
  });

  it('resumes a re-run of this execution when the journal holds the key it created for the old key', async () => {
    // Prepare: this execution's own, unexpired lock, with its journal.
    mockUser();
    mockLockRead({
      userName: { S: USER },
      owner: { S: EXECUTION_ID },
      expiresAt: { N: String(nowEpoch + 60) },
      createdKeyId: { S: NEW_KEY_ID },
      createdVersionId: { S: versionTokenFor(EXECUTION_ID, USER, OLD_KEY_ID, NEW_KEY_ID) },
    });
    mockLockAcquired();
    mockKeys(iamMock, [oldKey, { id: NEW_KEY_ID, created: daysAgo(0.5), lastUsed: daysAgo(0.1) }]);

    // Act
    const plan = await planRotation(deps(), request({ userName: USER }));

    // Assess
    expect(plan).toMatchObject({
      action: 'ROTATE',
      oldKey: { accessKeyId: OLD_KEY_ID },
      extraKey: null,
      orphanKey: null,
    });
    expect(plan.message).toContain('resume the rotation');
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([acquireInput()]);
  });

  it('does not resume from a journal written by another execution (TwoActiveKeys), and writes nothing', async () => {
    // Prepare: the other execution released its lock; its journal stayed.
    mockUser();
    mockLockRead({
      userName: { S: USER },
      expiresAt: { N: String(nowEpoch + 60) },
      createdKeyId: { S: NEW_KEY_ID },
      createdVersionId: { S: versionTokenFor(OTHER_EXECUTION_ID, USER, OLD_KEY_ID, NEW_KEY_ID) },
    });
    mockLockAcquired();
    mockKeys(iamMock, [oldKey, { id: NEW_KEY_ID, created: daysAgo(0.5), lastUsed: daysAgo(0.1) }]);

    // Act
    const plan = await planRotation(deps(), request({ userName: USER }));

    // Assess
    expect(plan).toMatchObject({ action: 'STOP', stopReason: 'TwoActiveKeys', alert: true });
    expectNoLockWrite();
  });

  describe('the lock is written only to rotate', () => {
    it('a TwoActiveKeys STOP reads the lock and the keys and sends no DynamoDB write', async () => {
      // Prepare
      mockUser();
      mockLockRead();
      mockLockAcquired();
      mockKeys(iamMock, [oldKey, { id: NEW_KEY_ID, created: daysAgo(5), lastUsed: daysAgo(1) }]);

      // Act
      const plan = await planRotation(deps(), request({ userName: USER }));

      // Assess
      expect(plan).toMatchObject({ action: 'STOP', stopReason: 'TwoActiveKeys', alert: true });
      expect(callOrder(iamMock, ddbMock)).toEqual([
        'GetUser',
        'GetItem',
        'ListAccessKeys',
        'GetAccessKeyLastUsed',
        'GetAccessKeyLastUsed',
      ]);
      expectNoLockWrite();
    });

    it('a user without keys stops with NoAccessKeys and sends no DynamoDB write', async () => {
      // Prepare
      mockUser();
      mockLockRead();
      mockLockAcquired();
      mockKeys(iamMock, []);

      // Act
      const plan = await planRotation(deps(), request({ userName: USER }));

      // Assess
      expect(plan).toMatchObject({ action: 'STOP', stopReason: 'NoAccessKeys', alert: false });
      expect(callOrder(ddbMock)).toEqual(['GetItem']);
      expectNoLockWrite();
    });

    it('a dry run that would rotate reads the lock once and sends no DynamoDB write', async () => {
      // Prepare
      mockUser();
      mockLockRead();
      mockLockAcquired();
      mockKeys(iamMock, [oldKey]);

      // Act
      const plan = await planRotation(deps(), request({ userName: USER, dryRun: true }));

      // Assess
      expect(plan).toMatchObject({ action: 'ROTATE', dryRun: true, oldKey: { accessKeyId: OLD_KEY_ID } });
      expect(inputsOf(ddbMock.commandCalls(GetItemCommand))).toEqual([readLockInput()]);
      expect(callOrder(ddbMock)).toEqual(['GetItem']);
      expectNoLockWrite();
    });

    it('an error while listing the keys propagates unchanged, with no DynamoDB write', async () => {
      // Prepare
      mockUser();
      mockLockRead();
      mockLockAcquired();
      const throttled = awsError('Throttling', 'Rate exceeded');
      iamMock.on(ListAccessKeysCommand).rejects(throttled);

      // Act
      const error = await rejectionOf(planRotation(deps(), request({ userName: USER })));

      // Assess
      expect(error).toBe(throttled);
      expect(callOrder(iamMock, ddbMock)).toEqual(['GetUser', 'GetItem', 'ListAccessKeys']);
      expectNoLockWrite();
    });

    it('an error while reading last use propagates unchanged, with no DynamoDB write', async () => {
      // Prepare: an extra key, so that the plan reads last use.
      mockUser();
      mockLockRead();
      mockLockAcquired();
      mockKeys(iamMock, [oldKey, { id: EXTRA_KEY_ID, status: 'Inactive', created: daysAgo(30) }]);
      const failure = awsError('ServiceFailure');
      iamMock.on(GetAccessKeyLastUsedCommand).rejects(failure);

      // Act & Assess
      await expect(planRotation(deps(), request({ userName: USER }))).rejects.toBe(failure);
      expect(callOrder(ddbMock)).toEqual(['GetItem']);
      expectNoLockWrite();
    });

    it('an error reading the lock propagates unchanged, before any key is listed', async () => {
      // Prepare
      mockUser();
      const denied = awsError('AccessDeniedException');
      ddbMock.on(GetItemCommand).rejects(denied);
      mockLockAcquired();
      mockKeys(iamMock, [oldKey]);

      // Act & Assess
      await expect(planRotation(deps(), request({ userName: USER }))).rejects.toBe(denied);
      expect(iamMock).not.toHaveReceivedCommand(ListAccessKeysCommand);
      expectNoLockWrite();
    });

    it('a lost race on the conditional write stops with RotationInProgress naming the rival owner', async () => {
      // Prepare: the lock is free when read, a rival takes it before the conditional write.
      mockUser();
      ddbMock.on(GetItemCommand).resolvesOnce({}).resolves({ Item: rivalLock() });
      ddbMock
        .on(UpdateItemCommand)
        .rejects(
          new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }),
        );
      mockKeys(iamMock, [oldKey]);

      // Act
      const plan = await planRotation(deps(), request({ userName: USER }));

      // Assess
      const message = `a rotation of "${USER}" is in progress (${OTHER_EXECUTION_ID})`;
      expect(Plan.parse(plan)).toEqual(plan);
      expect(plan).toMatchObject({
        action: 'STOP',
        stopReason: 'RotationInProgress',
        alert: false,
        userArn: USER_ARN,
        message,
        steps: [message],
        oldKey: null,
        extraKey: null,
        orphanKey: null,
      });
      expect(callOrder(iamMock, ddbMock)).toEqual([
        'GetUser',
        'GetItem',
        'ListAccessKeys',
        ACQUIRE,
        'GetItem',
      ]);
      expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([acquireInput()]);
      expect(inputsOf(ddbMock.commandCalls(GetItemCommand))).toEqual([readLockInput(), readLockInput()]);
    });

    it('an expired lock of another execution does not stop the plan: it rotates and takes the lock over', async () => {
      // Prepare
      mockUser();
      mockLockRead({ ...rivalLock(), expiresAt: { N: String(nowEpoch - 60) } });
      mockLockAcquired();
      mockKeys(iamMock, [oldKey]);

      // Act
      const plan = await planRotation(deps(), request({ userName: USER }));

      // Assess
      expect(plan).toMatchObject({ action: 'ROTATE', oldKey: { accessKeyId: OLD_KEY_ID } });
      expect(callOrder(iamMock, ddbMock)).toEqual(['GetUser', 'GetItem', 'ListAccessKeys', ACQUIRE]);
      expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([acquireInput()]);
    });

    it("this execution's own unexpired lock (a re-run) does not stop the plan: it re-takes the lock", async () => {
      // Prepare
      mockUser();
      mockLockRead({ ...rivalLock(), owner: { S: EXECUTION_ID } });
      mockLockAcquired();
      mockKeys(iamMock, [oldKey]);

      // Act
      const plan = await planRotation(deps(), request({ userName: USER }));

      // Assess
      expect(plan).toMatchObject({
        action: 'ROTATE',
        message: `rotate ${OLD_KEY_ID} of "${USER}"`,
        oldKey: { accessKeyId: OLD_KEY_ID },
      });
      expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))).toEqual([acquireInput()]);
      expect(callOrder(ddbMock)).toEqual(['GetItem', ACQUIRE]);
    });
  });

  it('a dry run that fails after reading the lock writes nothing', async () => {
    // Prepare
    mockUser();
    ddbMock.on(GetItemCommand).resolves({});
    iamMock.on(ListAccessKeysCommand).rejects(awsError('Throttling'));

    // Act & Assess
    await expect(planRotation(deps(), request({ userName: USER, dryRun: true }))).rejects.toThrow();
    expect(ddbMock).not.toHaveReceivedCommand(UpdateItemCommand);
  });
});

describe('planRotation: the consumer tag', () => {
  const TAG = 'rekey:consumers';
  const ROLE = 'arn:aws:iam::123456789012:role/ci/deployer';
  const MAILER = 'arn:aws:iam::123456789012:user/apps/mailer';
  const withTag = deps({ REKEY_CONSUMER_TAG: TAG });

  it("carries the principals the user's tag names in the plan, for the create step's secret policy", async () => {
    // Prepare
    mockUser({ Tags: [{ Key: TAG, Value: `${ROLE} ${MAILER}` }] });
    mockLockRead();
    mockLockAcquired();
    mockKeys(iamMock, [oldKey]);

    // Act
    const plan = await planRotation(withTag, request({ userName: USER }));

    // Assess
    expect(plan.action).toBe('ROTATE');
    expect(plan.consumers).toEqual([ROLE, MAILER]);
    expect(Plan.parse(plan)).toEqual(plan);
  });

  it('carries no consumers when the user has no such tag, or when the tag is turned off', async () => {
    // Prepare
    mockUser({ Tags: [{ Key: TAG, Value: ROLE }] });
    mockLockRead();
    mockLockAcquired();
    mockKeys(iamMock, [oldKey]);

    // Act
    const other = await planRotation(
      deps({ REKEY_CONSUMER_TAG: 'team:readers' }),
      request({ userName: USER }),
    );
    const off = await planRotation(deps(), request({ userName: USER }));

    // Assess
    expect(other.action).toBe('ROTATE');
    expect(other).not.toHaveProperty('consumers');
    expect(off).not.toHaveProperty('consumers');
  });

  it.each([
    [
      'an account root',
      'arn:aws:iam::123456789012:root',
      /entry 2: arn:aws:iam::123456789012:root is an account root/,
    ],
    [
      'another account',
      'arn:aws:iam::210987654321:role/reader',
      /entry 2: arn:aws:iam::210987654321:role\/reader is not in the user's account \(arn:aws:iam::123456789012\)/,
    ],
    ['a wildcard', '*', /entry 2: \* is not an IAM user or role ARN/],
  ])(
    'stops with InvalidConsumerTag and an alert on a tag naming %s, before the lock or the keys are read',
    async (_what, bad, problem) => {
      // Prepare
      mockUser({ Tags: [{ Key: TAG, Value: `${ROLE} ${bad}` }] });
      mockLockRead();
      mockLockAcquired();
      mockKeys(iamMock, [oldKey]);

      // Act
      const plan = await planRotation(withTag, request({ userName: USER }));

      // Assess
      expect(plan).toMatchObject({
        action: 'STOP',
        stopReason: 'InvalidConsumerTag',
        alert: true,
        userArn: USER_ARN,
        oldKey: null,
      });
      expect(plan.message).toMatch(
        new RegExp(`^the tag ${TAG} of "${USER}" names who may read its secret, but entry 2: `),
      );
      expect(plan.message).toMatch(problem);
      expect(plan.message).toMatch(
        /nothing was changed: list IAM role or user ARNs of its account, separated by spaces, and start the rotation again$/,
      );
      expect(plan).not.toHaveProperty('consumers');
      expect(callOrder(iamMock, ddbMock)).toEqual(['GetUser']);
      expect(Plan.parse(plan)).toEqual(plan);
    },
  );

  it('a dry run reports the bad tag the same way, changing nothing', async () => {
    // Prepare
    mockUser({ Tags: [{ Key: TAG, Value: 'arn:aws:iam::123456789012:root' }] });

    // Act
    const plan = await planRotation(withTag, request({ userName: USER, dryRun: true }));

    // Assess
    expect(plan).toMatchObject({ action: 'STOP', stopReason: 'InvalidConsumerTag', dryRun: true });
    expect(ddbMock.calls()).toHaveLength(0);
  });

  it('an exempt or out-of-scope user stops for that reason, whatever its consumer tag says', async () => {
    // Prepare
    mockUser({
      Tags: [
        { Key: TAG, Value: 'arn:aws:iam::123456789012:root' },
        { Key: 'rekey:exempt', Value: 'vendor relay' },
      ],
    });

    // Act
    const plan = await planRotation(withTag, request({ userName: USER }));

    // Assess
    expect(plan).toMatchObject({ action: 'STOP', stopReason: 'UserExempt', alert: false });
  });
});

describe('parseRotationInput: a service-specific credential', () => {
  it('accepts each service and refuses any other, naming the allowed ones', () => {
    expect(parseRotationInput({ userName: USER, serviceName: 'codecommit.amazonaws.com' })).toEqual({
      userName: USER,
      serviceName: 'codecommit.amazonaws.com',
    });
    const error = (() => {
      try {
        parseRotationInput({ userName: USER, serviceName: 's3.amazonaws.com' });
      } catch (e) {
        return e as Error;
      }
      throw new Error('accepted');
    })();
    expect(error).toBeInstanceOf(InvalidInput);
    expect(error.message).toBe(
      'invalid rotation request: serviceName: serviceName must be one of cassandra.amazonaws.com, codecommit.amazonaws.com',
    );
  });
});

describe('planRotation: a service-specific credential', () => {
  const env = {
    REKEY_SECRET_PREFIX: 'rekey/',
    REKEY_LOCK_TTL_SECONDS: 3600,
    REKEY_EXEMPT_TAG: 'rekey:exempt',
    REKEY_OWNER_TAG: 'rekey:owner',
    REKEY_PROTECTED_USERS: [],
    REKEY_USER_PATH_PREFIX: '/',
    REKEY_OPT_IN_TAG: undefined,
    REKEY_HUB_ACCOUNT_ID: ACCOUNT,
  };
  const deps = () => ({
    iam,
    secretsManager,
    lock: { dynamodb, table: LOCK_TABLE },
    clock: fakeClock(),
    env,
  });
  const request = (dryRun = false) => ({
    input: { userName: USER, serviceName: SERVICE, ...(dryRun ? { dryRun } : {}) },
    executionId: EXECUTION_ID,
  });

  beforeEach(() => {
    iamMock.on(GetUserCommand).resolves({ User: { UserName: USER, Arn: USER_ARN, Path: '/' } as never });
    ddbMock.on(GetItemCommand).resolves({});
    ddbMock.on(UpdateItemCommand).resolves({ Attributes: serviceLockItem().Item });
  });

  it('plans the rotation of the one active credential, locking the user and service only', async () => {
    mockListed(iamMock, [{ id: OLD_ID }]);

    const plan = await planRotation(deps(), request());

    expect(plan).toMatchObject({
      userName: USER,
      serviceName: SERVICE,
      secretName: SERVICE_SECRET_NAME,
      action: 'ROTATE',
      extraKey: null,
      orphanKey: null,
    });
    expect(plan.oldKey).toEqual({ accessKeyId: OLD_ID, createDate: OLD_CREATED.toISOString() });
    expect(plan.steps.join('\n')).toMatch(/create a second service-specific credential for cassandra/);
    expect(plan.steps.join('\n')).toMatch(/no last-used data/);
    expect(inputsOf(iamMock.commandCalls(ListServiceSpecificCredentialsCommand))).toEqual([
      { UserName: USER, ServiceName: SERVICE },
    ]);
    expect(iamMock).not.toHaveReceivedCommand(ListAccessKeysCommand);
    expect(iamMock).not.toHaveReceivedCommand(GetAccessKeyLastUsedCommand);
    expect(inputsOf(ddbMock.commandCalls(GetItemCommand))[0]?.Key).toEqual({
      userName: { S: `${USER}/${SERVICE}` },
    });
    expect(inputsOf(ddbMock.commandCalls(UpdateItemCommand))[0]?.Key).toEqual({
      userName: { S: `${USER}/${SERVICE}` },
    });
  });

  it('stops with TwoActiveKeys and an alert when both credentials are active, taking no lock', async () => {
    mockListed(iamMock, [{ id: OLD_ID }, { id: NEW_ID, created: NEW_CREATED }]);

    const plan = await planRotation(deps(), request());

    expect(plan).toMatchObject({ action: 'STOP', stopReason: 'TwoActiveKeys', alert: true });
    expect(plan.message).toMatch(
      /has two active service-specific credentials for cassandra\.amazonaws\.com, ACCAOLD.*no last-used data/,
    );
    expect(ddbMock).not.toHaveReceivedCommand(UpdateItemCommand);
  });

  it('stops with an alert on an extra Inactive credential instead of deleting it (nobody can show it was never used)', async () => {
    mockListed(iamMock, [{ id: OLD_ID }, { id: EXTRA_ID, status: 'Inactive', created: daysAgo(200) }]);

    const plan = await planRotation(deps(), request());

    expect(plan).toMatchObject({
      action: 'STOP',
      stopReason: 'InactiveUsageUnknown',
      alert: true,
      extraKey: null,
    });
    expect(plan.message).toMatch(
      /has an inactive service-specific credential for cassandra\.amazonaws\.com, ACCAEXTRA.*no last-used data.*does not delete it/,
    );
    expect(ddbMock).not.toHaveReceivedCommand(UpdateItemCommand);
  });

  it('says "no service-specific credentials" when there is none', async () => {
    mockListed(iamMock, []);
    const plan = await planRotation(deps(), request());
    expect(plan).toMatchObject({ action: 'STOP', stopReason: 'NoAccessKeys' });
    expect(plan.message).toBe(
      `"${USER}" has no service-specific credentials for cassandra.amazonaws.com: nothing to rotate`,
    );
  });
});

describe('planRotation: the call budget its Lambda timeout is derived from', () => {
  it('its longest path (a case variant, a journal key, two keys, the lock lost to a rival) makes exactly its hub-path calls (STEPS.plan.calls less memberAccountCalls)', async () => {
    // Prepare: the request spells the user as IAM does not (a look for a secret under that
    // spelling); a released lock whose journal names a key an earlier rotation made and never
    // handed out (its version read); both keys' last use; the acquire lost to a rival, whose
    // owner is read for the message.
    mockUser();
    ddbMock
      .on(GetItemCommand)
      .resolvesOnce({
        Item: {
          userName: { S: USER },
          expiresAt: { N: String(nowEpoch + 90 * 86_400) },
          createdKeyId: { S: NEW_KEY_ID },
          createdVersionId: { S: OTHER_TOKEN },
          createdBy: { S: OTHER_EXECUTION_ID },
          replacedKeyId: { S: OLD_KEY_ID },
          secretName: { S: SECRET_NAME },
        },
      })
      .resolves({ Item: rivalLock() });
    smMock.on(DescribeSecretCommand, { SecretId: SECRET_NAME }).resolves({
      ARN: SECRET_ARN,
      VersionIdsToStages: { [OTHER_TOKEN]: ['AWSPENDING'], PREVIOUS: ['AWSCURRENT'] },
    });
    ddbMock
      .on(UpdateItemCommand)
      .rejects(
        new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }),
      );
    mockKeys(iamMock, [oldKey, { id: NEW_KEY_ID, created: daysAgo(0.01) }]);

    // Act
    const plan = await planRotation(deps(), request({ userName: 'ALICE' }));

    // Assess
    expect(plan.stopReason).toBe('RotationInProgress');
    expect(callOrder(iamMock, smMock, ddbMock)).toEqual([
      'GetUser',
      'DescribeSecret',
      'GetItem',
      'ListAccessKeys',
      'GetAccessKeyLastUsed',
      'GetAccessKeyLastUsed',
      'DescribeSecret',
      ACQUIRE,
      'GetItem',
    ]);
    expect(inputsOf(smMock.commandCalls(DescribeSecretCommand))).toEqual([
      { SecretId: 'rekey/ALICE' },
      { SecretId: SECRET_NAME },
    ]);
    expect(callOrder(iamMock, smMock, ddbMock)).toHaveLength(hubPathCalls('plan'));
  });
});
