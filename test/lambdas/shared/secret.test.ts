import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutResourcePolicyCommand,
  PutSecretValueCommand,
  ResourceExistsException,
  ResourceNotFoundException,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigurationError, InvalidInput } from '../../../contract/errors.ts';
import { secretsManager } from '../../../lambdas/shared/clients.ts';
import { lockSubject } from '../../../lambdas/shared/lock.ts';
import {
  type CredentialSecret,
  describeVersions,
  promoteVersion,
  readCredential,
  SECRET_READ_ACTIONS,
  secretNameFor,
  secretResourcePolicy,
  storePendingKey,
  versionTokenFor,
  versionWithStage,
} from '../../../lambdas/shared/secret.ts';
import {
  ACCOUNT,
  awsError,
  EXECUTION_ID,
  FAKE_SECRET,
  inputsOf,
  KMS_KEY_ID,
  NEW_KEY_ID,
  OLD_KEY_ID,
  OTHER_EXECUTION_ID,
  rejectionOf,
  SECRET_ARN,
  SECRET_NAME,
  silenceLogs,
  USER,
  USER_ARN,
} from '../../support/lambda-fixtures.ts';
import { SERVICE, SERVICE_SECRET_NAME } from '../../support/service-credential-fixtures.ts';

const smMock = mockClient(secretsManager);
const TOKEN = versionTokenFor(EXECUTION_ID, USER, OLD_KEY_ID, NEW_KEY_ID);
const OLD_VERSION = '11111111-2222-4333-8444-555555555555';
const credential: CredentialSecret = {
  Version: 1,
  AccessKeyId: NEW_KEY_ID,
  SecretAccessKey: FAKE_SECRET,
  UserName: USER,
  CreateDate: '2026-03-01T12:00:00.000Z',
};

beforeAll(silenceLogs);
beforeEach(() => {
  smMock.reset();
});

describe('secretNameFor', () => {
  it('prefixes the user name', () => {
    expect(secretNameFor('rekey/', 'svc+ci=1.x@y_z-w')).toBe('rekey/svc+ci=1.x@y_z-w');
  });

  it("rejects a user name with ',' (valid in IAM, not in Secrets Manager names) as InvalidInput", () => {
    expect(() => secretNameFor('rekey/', 'smtp,relay')).toThrow(InvalidInput);
    expect(() => secretNameFor('rekey/', 'smtp,relay')).toThrow(
      `userName "smtp,relay" contains ',', which Secrets Manager names do not allow`,
    );
  });
});

describe('versionTokenFor', () => {
  it('is 64 lower-case hex characters (a valid ClientRequestToken) and deterministic', () => {
    expect(TOKEN).toMatch(/^[0-9a-f]{64}$/);
    expect(versionTokenFor(EXECUTION_ID, USER, OLD_KEY_ID, NEW_KEY_ID)).toBe(TOKEN);
  });

  it('differs per execution, user, old key and new key', () => {
    const tokens = new Set([
      TOKEN,
      versionTokenFor(OTHER_EXECUTION_ID, USER, OLD_KEY_ID, NEW_KEY_ID),
      versionTokenFor(EXECUTION_ID, 'bob', OLD_KEY_ID, NEW_KEY_ID),
      versionTokenFor(EXECUTION_ID, USER, NEW_KEY_ID, NEW_KEY_ID),
      // The same execution's next key, after a first one was removed, gets a version of its own.
      versionTokenFor(EXECUTION_ID, USER, OLD_KEY_ID, 'AKIASECONDNEWKEY0003'),
    ]);
    expect(tokens.size).toBe(5);
  });
});

describe('describeVersions / versionWithStage', () => {
  it('returns the ARN and the version stages', async () => {
    // Prepare
    smMock.on(DescribeSecretCommand).resolves({
      ARN: SECRET_ARN,
      VersionIdsToStages: { [OLD_VERSION]: ['AWSCURRENT'], [TOKEN]: ['AWSPENDING'] },
    });

    // Act
    const described = await describeVersions(secretsManager, SECRET_NAME);

    // Assess
    expect(described).toEqual({
      arn: SECRET_ARN,
      stages: { [OLD_VERSION]: ['AWSCURRENT'], [TOKEN]: ['AWSPENDING'] },
    });
    expect(inputsOf(smMock.commandCalls(DescribeSecretCommand))).toEqual([{ SecretId: SECRET_NAME }]);
    expect(versionWithStage(described?.stages ?? {}, 'AWSPENDING')).toBe(TOKEN);
    expect(versionWithStage(described?.stages ?? {}, 'AWSPREVIOUS')).toBeNull();
  });

  it('returns null when the secret does not exist', async () => {
    // Prepare
    smMock
      .on(DescribeSecretCommand)
      .rejects(new ResourceNotFoundException({ message: 'not found', $metadata: {} }));

    // Act & Assess
    await expect(describeVersions(secretsManager, SECRET_NAME)).resolves.toBeNull();
  });

  it('rethrows other errors', async () => {
    // Prepare
    const denied = awsError('AccessDeniedException');
    smMock.on(DescribeSecretCommand).rejects(denied);

    // Act & Assess
    await expect(describeVersions(secretsManager, SECRET_NAME)).rejects.toBe(denied);
  });
});

const CONSUMER_ROLE = `arn:aws:iam::${ACCOUNT}:role/ci/deployer`;
const CONSUMER_ACCOUNT = '210987654321';
const VERIFY_NEW_ROLE = `arn:aws:iam::${ACCOUNT}:role/RekeyStack-VerifyNewKeyRole-ABC`;
const VERIFY_ROTATION_ROLE = `arn:aws:iam::${ACCOUNT}:role/RekeyStack-VerifyRotationRole-DEF`;

describe('secretResourcePolicy', () => {
  it('lets the user and the consumers read, and denies the value to every other principal but the verify roles', () => {
    // Act
    const policy = JSON.parse(
      secretResourcePolicy({
        userArn: USER_ARN,
        consumers: [CONSUMER_ROLE],
        rekeyReaders: [VERIFY_NEW_ROLE, VERIFY_ROTATION_ROLE],
      }),
    );

    // Assess
    expect(policy).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'OwnUserAndConsumersMayRead',
          Effect: 'Allow',
          Principal: { AWS: [USER_ARN, CONSUMER_ROLE] },
          Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
          Resource: '*',
        },
        {
          Sid: 'NobodyElseMayRead',
          Effect: 'Deny',
          Principal: '*',
          Action: 'secretsmanager:GetSecretValue',
          Resource: '*',
          Condition: {
            StringNotEquals: {
              'aws:PrincipalArn': [USER_ARN, CONSUMER_ROLE, VERIFY_NEW_ROLE, VERIFY_ROTATION_ROLE],
            },
          },
        },
      ],
    });
    expect(SECRET_READ_ACTIONS).toEqual(policy.Statement[0].Action);
  });

  it("names the user's tag consumers beside the configured ones, each once, in the Allow and the Deny's exceptions", () => {
    // Prepare: the create step passes the configured consumers, then the plan's (tag) ones.
    const tagged = `arn:aws:iam::${ACCOUNT}:user/apps/mailer`;

    // Act
    const policy = JSON.parse(
      secretResourcePolicy({
        userArn: USER_ARN,
        consumers: [CONSUMER_ROLE, tagged, CONSUMER_ROLE, USER_ARN],
        rekeyReaders: [VERIFY_NEW_ROLE, VERIFY_ROTATION_ROLE],
      }),
    );

    // Assess
    expect(policy).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'OwnUserAndConsumersMayRead',
          Effect: 'Allow',
          Principal: { AWS: [USER_ARN, CONSUMER_ROLE, tagged] },
          Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
          Resource: '*',
        },
        {
          Sid: 'NobodyElseMayRead',
          Effect: 'Deny',
          Principal: '*',
          Action: 'secretsmanager:GetSecretValue',
          Resource: '*',
          Condition: {
            StringNotEquals: {
              'aws:PrincipalArn': [USER_ARN, CONSUMER_ROLE, tagged, VERIFY_NEW_ROLE, VERIFY_ROTATION_ROLE],
            },
          },
        },
      ],
    });
  });

  it.each([`arn:aws:iam::${CONSUMER_ACCOUNT}:root`, CONSUMER_ACCOUNT, '*'])(
    'refuses the consumer %s (an account root would void the Deny) with a ConfigurationError',
    (arn) => {
      // Act
      const build = () =>
        secretResourcePolicy({
          userArn: USER_ARN,
          consumers: [CONSUMER_ROLE, arn],
          rekeyReaders: [VERIFY_NEW_ROLE],
        });

      // Assess
      expect(build).toThrow(ConfigurationError);
      expect(build).toThrow(`consumer principal refused: ${arn} `);
    },
  );

  it('never spares a whole account: the Deny names principals by exact ARN, never aws:PrincipalAccount', () => {
    const policy = secretResourcePolicy({
      userArn: USER_ARN,
      consumers: [`arn:aws:iam::${CONSUMER_ACCOUNT}:role/reader`],
      rekeyReaders: [VERIFY_NEW_ROLE],
    });
    expect(policy).not.toContain('aws:PrincipalAccount');
    expect(policy).not.toContain(':root');
  });

  it('only grants when no deployment named the verify roles (a local run)', () => {
    // Act
    const policy = JSON.parse(
      secretResourcePolicy({ userArn: USER_ARN, consumers: [], rekeyReaders: undefined }),
    );

    // Assess
    expect(policy.Statement).toEqual([
      {
        Sid: 'OwnUserAndConsumersMayRead',
        Effect: 'Allow',
        Principal: { AWS: [USER_ARN] },
        Action: SECRET_READ_ACTIONS,
        Resource: '*',
      },
    ]);
  });
});

describe('storePendingKey', () => {
  const POLICY = secretResourcePolicy({ userArn: USER_ARN, consumers: [], rekeyReaders: [VERIFY_NEW_ROLE] });
  const args = { name: SECRET_NAME, kmsKeyId: KMS_KEY_ID, token: TOKEN, value: credential, policy: POLICY };

  it('creates the secret with the KMS key, puts its policy, then writes the value as AWSPENDING under the token', async () => {
    // Prepare
    smMock.on(CreateSecretCommand).resolves({ ARN: SECRET_ARN, Name: SECRET_NAME });
    smMock.on(PutResourcePolicyCommand).resolves({ ARN: SECRET_ARN, Name: SECRET_NAME });
    smMock.on(PutSecretValueCommand).resolves({ ARN: SECRET_ARN, VersionId: TOKEN });

    // Act
    const stored = await storePendingKey(secretsManager, args);

    // Assess
    expect(stored).toEqual({ arn: SECRET_ARN, versionId: TOKEN });
    expect(inputsOf(smMock.commandCalls(CreateSecretCommand))).toEqual([
      {
        Name: SECRET_NAME,
        KmsKeyId: KMS_KEY_ID,
        Description: `Access key of IAM user ${USER}, rotated by rekey`,
        Tags: [
          { Key: 'rekey:user', Value: USER },
          { Key: 'rekey:managed', Value: 'true' },
        ],
      },
    ]);
    expect(inputsOf(smMock.commandCalls(PutSecretValueCommand))).toEqual([
      {
        SecretId: SECRET_NAME,
        ClientRequestToken: TOKEN,
        SecretString: JSON.stringify(credential),
        VersionStages: ['AWSPENDING'],
      },
    ]);
    expect(inputsOf(smMock.commandCalls(PutResourcePolicyCommand))).toEqual([
      { SecretId: SECRET_NAME, ResourcePolicy: POLICY, BlockPublicPolicy: true },
    ]);
    expect(smMock.call(0).args[0]).toBeInstanceOf(CreateSecretCommand);
    expect(smMock.call(1).args[0]).toBeInstanceOf(PutResourcePolicyCommand);
    expect(smMock.call(2).args[0]).toBeInstanceOf(PutSecretValueCommand);
  });

  it('the stored value is valid credential_process output plus UserName and CreateDate', async () => {
    // Prepare
    smMock.on(CreateSecretCommand).resolves({ ARN: SECRET_ARN });
    smMock.on(PutSecretValueCommand).resolves({ ARN: SECRET_ARN, VersionId: TOKEN });

    // Act
    await storePendingKey(secretsManager, args);

    // Assess
    const written = JSON.parse(
      smMock.commandCalls(PutSecretValueCommand)[0]?.args[0].input.SecretString ?? '',
    );
    expect(Object.keys(written).sort()).toEqual(
      ['AccessKeyId', 'CreateDate', 'SecretAccessKey', 'UserName', 'Version'].sort(),
    );
    expect(written.Version).toBe(1);
  });

  it('tolerates ResourceExistsException (the secret exists from an earlier rotation) and re-applies the policy', async () => {
    // Prepare
    smMock
      .on(CreateSecretCommand)
      .rejects(new ResourceExistsException({ message: 'already exists', $metadata: {} }));
    smMock.on(PutSecretValueCommand).resolves({ ARN: SECRET_ARN, VersionId: TOKEN });

    // Act
    const stored = await storePendingKey(secretsManager, args);

    // Assess
    expect(stored).toEqual({ arn: SECRET_ARN, versionId: TOKEN });
    expect(smMock).toHaveReceivedCommandWith(PutResourcePolicyCommand, { ResourcePolicy: POLICY });
    expect(smMock).toHaveReceivedCommandTimes(PutSecretValueCommand, 1);
  });

  it('writes no value when the policy cannot be put', async () => {
    // Prepare: IAM refuses a policy naming a principal that does not exist.
    const malformed = awsError('MalformedPolicyDocumentException');
    smMock.on(CreateSecretCommand).resolves({ ARN: SECRET_ARN });
    smMock.on(PutResourcePolicyCommand).rejects(malformed);

    // Act & Assess
    await expect(storePendingKey(secretsManager, args)).rejects.toBe(malformed);
    expect(smMock).not.toHaveReceivedCommand(PutSecretValueCommand);
  });

  it('falls back to the name and the token when PutSecretValue omits ARN and VersionId', async () => {
    // Prepare
    smMock.on(CreateSecretCommand).resolves({});
    smMock.on(PutSecretValueCommand).resolves({});

    // Act & Assess
    await expect(storePendingKey(secretsManager, args)).resolves.toEqual({
      arn: SECRET_NAME,
      versionId: TOKEN,
    });
  });

  it('rethrows any other CreateSecret error and writes nothing', async () => {
    // Prepare
    const kmsDenied = awsError('AccessDeniedException');
    smMock.on(CreateSecretCommand).rejects(kmsDenied);

    // Act & Assess
    await expect(storePendingKey(secretsManager, args)).rejects.toBe(kmsDenied);
    expect(smMock).not.toHaveReceivedCommand(PutResourcePolicyCommand);
    expect(smMock).not.toHaveReceivedCommand(PutSecretValueCommand);
  });
});

describe('readCredential', () => {
  it('reads a named version and returns the parsed credential', async () => {
    // Prepare
    smMock.on(GetSecretValueCommand).resolves({ ARN: SECRET_ARN, SecretString: JSON.stringify(credential) });

    // Act
    const read = await readCredential(secretsManager, SECRET_ARN, { versionId: TOKEN });

    // Assess
    expect(read).toEqual(credential);
    expect(inputsOf(smMock.commandCalls(GetSecretValueCommand))).toEqual([
      { SecretId: SECRET_ARN, VersionId: TOKEN },
    ]);
  });

  it('reads a named stage', async () => {
    // Prepare
    smMock.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify(credential) });

    // Act
    await readCredential(secretsManager, SECRET_ARN, { stage: 'AWSCURRENT' });

    // Assess
    expect(inputsOf(smMock.commandCalls(GetSecretValueCommand))).toEqual([
      { SecretId: SECRET_ARN, VersionStage: 'AWSCURRENT' },
    ]);
  });

  it('rejects a non-JSON value with a message that names the secret but does not echo the value', async () => {
    // Prepare
    const value = `not json ${FAKE_SECRET}`;
    smMock.on(GetSecretValueCommand).resolves({ SecretString: value });

    // Act
    const error = await rejectionOf(readCredential(secretsManager, SECRET_ARN, { versionId: TOKEN }));

    // Assess
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toBe(`secret ${SECRET_ARN} does not hold a rekey credential`);
    expect(error.message).not.toContain(FAKE_SECRET);
    expect(error.message).not.toContain('not json');
  });

  it('rejects JSON that is not a rekey credential without echoing it', async () => {
    // Prepare
    smMock
      .on(GetSecretValueCommand)
      .resolves({ SecretString: JSON.stringify({ password: FAKE_SECRET, AccessKeyId: NEW_KEY_ID }) });

    // Act
    const error = await rejectionOf(readCredential(secretsManager, SECRET_ARN, { stage: 'AWSCURRENT' }));

    // Assess
    expect(error.message).toBe(`secret ${SECRET_ARN} does not hold a rekey credential`);
    expect(JSON.stringify(error)).not.toContain(FAKE_SECRET);
  });

  it('rejects a binary-only secret (no SecretString)', async () => {
    // Prepare
    smMock.on(GetSecretValueCommand).resolves({ SecretBinary: new Uint8Array([1, 2, 3]) });

    // Act & Assess
    await expect(readCredential(secretsManager, SECRET_ARN, { stage: 'AWSCURRENT' })).rejects.toThrow(
      'does not hold a rekey credential',
    );
  });
});

describe('promoteVersion', () => {
  it('moves AWSCURRENT to the version (removing it from the old current) and drops AWSPENDING', async () => {
    // Prepare
    smMock.on(DescribeSecretCommand).resolves({
      ARN: SECRET_ARN,
      VersionIdsToStages: { [OLD_VERSION]: ['AWSCURRENT'], [TOKEN]: ['AWSPENDING'] },
    });
    smMock.on(UpdateSecretVersionStageCommand).resolves({});

    // Act
    await promoteVersion(secretsManager, SECRET_ARN, TOKEN);

    // Assess
    expect(inputsOf(smMock.commandCalls(UpdateSecretVersionStageCommand))).toEqual([
      {
        SecretId: SECRET_ARN,
        VersionStage: 'AWSCURRENT',
        MoveToVersionId: TOKEN,
        RemoveFromVersionId: OLD_VERSION,
      },
      { SecretId: SECRET_ARN, VersionStage: 'AWSPENDING', RemoveFromVersionId: TOKEN },
    ]);
  });

  it('is a no-op when the version is already AWSCURRENT (a retried step)', async () => {
    // Prepare
    smMock.on(DescribeSecretCommand).resolves({
      ARN: SECRET_ARN,
      VersionIdsToStages: { [OLD_VERSION]: ['AWSPREVIOUS'], [TOKEN]: ['AWSCURRENT'] },
    });

    // Act
    await promoteVersion(secretsManager, SECRET_ARN, TOKEN);

    // Assess
    expect(smMock).not.toHaveReceivedCommand(UpdateSecretVersionStageCommand);
  });

  it('only drops a left-over AWSPENDING label when the version is already current', async () => {
    // Prepare
    smMock.on(DescribeSecretCommand).resolves({
      ARN: SECRET_ARN,
      VersionIdsToStages: { [TOKEN]: ['AWSCURRENT', 'AWSPENDING'] },
    });
    smMock.on(UpdateSecretVersionStageCommand).resolves({});

    // Act
    await promoteVersion(secretsManager, SECRET_ARN, TOKEN);

    // Assess
    expect(inputsOf(smMock.commandCalls(UpdateSecretVersionStageCommand))).toEqual([
      { SecretId: SECRET_ARN, VersionStage: 'AWSPENDING', RemoveFromVersionId: TOKEN },
    ]);
  });

  it.each([
    ['AWSCURRENT', { [OLD_VERSION]: ['AWSPREVIOUS'], [TOKEN]: ['AWSCURRENT', 'AWSPENDING'] }],
    ['AWSPENDING', { [OLD_VERSION]: ['AWSPREVIOUS'], [TOKEN]: ['AWSCURRENT'] }],
  ])(
    'goes on when a retried %s move is refused because the lost first attempt was applied',
    async (stage, after) => {
      // Prepare: the labels before, then as the applied (but unanswered) move left them.
      smMock
        .on(DescribeSecretCommand)
        .resolvesOnce({
          ARN: SECRET_ARN,
          VersionIdsToStages: { [OLD_VERSION]: ['AWSCURRENT'], [TOKEN]: ['AWSPENDING'] },
        })
        .resolves({ ARN: SECRET_ARN, VersionIdsToStages: after });
      smMock.on(UpdateSecretVersionStageCommand).resolves({});
      smMock
        .on(UpdateSecretVersionStageCommand, { VersionStage: stage })
        .rejects(awsError('InvalidParameterException', `Version stage ${stage} not found in version`));

      // Act
      await promoteVersion(secretsManager, SECRET_ARN, TOKEN);

      // Assess
      expect(smMock).toHaveReceivedCommandTimes(UpdateSecretVersionStageCommand, 2);
    },
  );

  it('rethrows a refused move when the labels are not as wanted', async () => {
    // Prepare
    smMock.on(DescribeSecretCommand).resolves({
      ARN: SECRET_ARN,
      VersionIdsToStages: { [OLD_VERSION]: ['AWSCURRENT'], [TOKEN]: ['AWSPENDING'] },
    });
    const refused = awsError('InvalidParameterException');
    smMock.on(UpdateSecretVersionStageCommand).rejects(refused);

    // Act
    const promise = promoteVersion(secretsManager, SECRET_ARN, TOKEN);

    // Assess
    await expect(promise).rejects.toBe(refused);
  });

  it('moves AWSCURRENT without RemoveFromVersionId when no version is current yet', async () => {
    // Prepare
    smMock
      .on(DescribeSecretCommand)
      .resolves({ ARN: SECRET_ARN, VersionIdsToStages: { [TOKEN]: ['AWSPENDING'] } });
    smMock.on(UpdateSecretVersionStageCommand).resolves({});

    // Act
    await promoteVersion(secretsManager, SECRET_ARN, TOKEN);

    // Assess
    expect(inputsOf(smMock.commandCalls(UpdateSecretVersionStageCommand))).toEqual([
      { SecretId: SECRET_ARN, VersionStage: 'AWSCURRENT', MoveToVersionId: TOKEN },
      { SecretId: SECRET_ARN, VersionStage: 'AWSPENDING', RemoveFromVersionId: TOKEN },
    ]);
  });
});

describe('secretNameFor and lockSubject: per user and service', () => {
  it('names the secret <prefix><user>/<service> and the lock per user and service', () => {
    expect(secretNameFor('rekey/', USER, SERVICE)).toBe(SERVICE_SECRET_NAME);
    expect(secretNameFor('rekey/', USER)).toBe(`rekey/${USER}`);
    expect(lockSubject(USER, SERVICE)).toBe(`${USER}/${SERVICE}`);
    expect(lockSubject(USER)).toBe(USER);
  });
});
