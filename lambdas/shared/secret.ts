/**
 * The credential secret `<prefix><userName>`: JSON that is valid `credential_process` output plus
 * the user name and the key's creation date. A service-specific credential is stored in
 * `<prefix><userName>/<serviceName>` as ServiceCredentialSecret. The new key is written as AWSPENDING by the create
 * step and becomes AWSCURRENT only after it was proven to work; AWSPREVIOUS then holds the old one.
 * Reads always name a version or a stage (a plain read can return a stale version in emulators).
 */
import { createHash } from 'node:crypto';
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutResourcePolicyCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import * as z from 'zod/mini';
import { consumerPrincipalProblem } from '../../contract/consumers.ts';
import { ConfigurationError, InvalidInput, isAwsError } from '../../contract/errors.ts';
import { type AccountPlace, memberAccountOf, type SecretsLocation } from '../../contract/organization.ts';
import { ServiceName } from '../../contract/schemas.ts';

export const CredentialSecret = z.object({
  Version: z.literal(1),
  AccessKeyId: z.string().check(z.minLength(16)),
  SecretAccessKey: z.string().check(z.minLength(1)),
  UserName: z.string(),
  CreateDate: z.string(),
});
export type CredentialSecret = z.infer<typeof CredentialSecret>;

/**
 * A service-specific credential as consumers read it: what a Cassandra driver or git needs
 * (ServiceUserName, ServicePassword), the ids to match it with IAM, and, as in the access-key
 * secret, the IAM user it belongs to and when it was created (its age, without an IAM call).
 */
export const ServiceCredentialSecret = z.object({
  ServiceUserName: z.string().check(z.minLength(1)),
  ServicePassword: z.string().check(z.minLength(1)),
  ServiceSpecificCredentialId: z.string().check(z.minLength(16)),
  ServiceName: ServiceName,
  UserName: z.string(),
  CreateDate: z.string(),
});
export type ServiceCredentialSecret = z.infer<typeof ServiceCredentialSecret>;

/** What a rekey secret version holds: an access key or a service-specific credential. */
export type StoredCredential = CredentialSecret | ServiceCredentialSecret;

export const isServiceCredential = (value: StoredCredential): value is ServiceCredentialSecret =>
  'ServiceSpecificCredentialId' in value;

/** The id IAM knows the stored credential by. */
export const storedCredentialId = (value: StoredCredential): string =>
  isServiceCredential(value) ? value.ServiceSpecificCredentialId : value.AccessKeyId;

/** Where a rotation's secret lives: the account the user is in, the hub's, and `organization.secrets`. */
export interface SecretPlace extends AccountPlace {
  readonly secrets?: SecretsLocation | undefined;
}

/**
 * `<prefix><userName>` for the access key, `<prefix><userName>/<serviceName>` for a
 * service-specific credential (IAM user names hold no '/', so the two never collide).
 * Secrets Manager names allow letters, digits and /_+=.@- ; IAM user names may also hold ','.
 *
 * A member account's user (docs/organizations.md): with `secrets: member` the secret is in that
 * account under the same name; with `secrets: hub` it is in the hub under
 * `<prefix>accounts/<accountId>/<userName>` (and `/<serviceName>`). After the prefix, a name of
 * the hub's own users holds at most one '/', a member account's at least two: they never collide.
 * The one function every step and the CLI name a secret with.
 */
export function secretNameFor(
  prefix: string,
  userName: string,
  serviceName?: ServiceName,
  place?: SecretPlace,
): string {
  if (userName.includes(',')) {
    throw new InvalidInput(`userName "${userName}" contains ',', which Secrets Manager names do not allow`);
  }
  const name = serviceName ? `${userName}/${serviceName}` : userName;
  const member = memberAccountOf(place);
  return member && place?.secrets === 'hub' ? `${prefix}accounts/${member}/${name}` : `${prefix}${name}`;
}

/**
 * The ClientRequestToken (= version id) for one new key of one execution: deterministic, so a
 * retried or re-run store of that key writes the same version instead of a second one. It names
 * the new key too: after that key was removed (never handed out), the same execution's next key
 * gets a version of its own (Secrets Manager refuses a token again with another value).
 */
export function versionTokenFor(
  executionId: string,
  userName: string,
  oldKeyId: string,
  newKeyId: string,
): string {
  return createHash('sha256').update(`${executionId}|${userName}|${oldKeyId}|${newKeyId}`).digest('hex');
}

/** Version id -> stages, or null when the secret does not exist. */
export async function describeVersions(
  sm: SecretsManagerClient,
  secretId: string,
): Promise<{ arn: string; stages: Record<string, string[]> } | null> {
  try {
    const out = await sm.send(new DescribeSecretCommand({ SecretId: secretId }));
    return { arn: out.ARN ?? secretId, stages: out.VersionIdsToStages ?? {} };
  } catch (error) {
    if (isAwsError(error, 'ResourceNotFoundException')) return null;
    throw error;
  }
}

/** A version that is or was AWSCURRENT: consumers may hold its key. */
export function isHandedOut(stages: readonly string[]): boolean {
  return stages.includes('AWSCURRENT') || stages.includes('AWSPREVIOUS');
}

/**
 * Drops the AWSPENDING label from a version whose key was removed, so nothing points consumers or
 * rekey at it. Safe to repeat: a retry of an applied call is refused (the label is gone) and counts
 * as done, as does a secret or label that is already gone.
 */
export async function dropPendingLabel(sm: SecretsManagerClient, secretId: string, versionId: string) {
  const pending = async () =>
    (await describeVersions(sm, secretId))?.stages[versionId]?.includes('AWSPENDING');
  try {
    await sm.send(
      new UpdateSecretVersionStageCommand({
        SecretId: secretId,
        VersionStage: 'AWSPENDING',
        RemoveFromVersionId: versionId,
      }),
    );
  } catch (error) {
    if (isAwsError(error, 'ResourceNotFoundException')) return;
    if (!isAwsError(error, 'InvalidParameterException') || (await pending())) throw error;
  }
}

export function versionWithStage(stages: Record<string, string[]>, stage: string): string | null {
  return Object.entries(stages).find(([, s]) => s.includes(stage))?.[0] ?? null;
}

/** Who may read a credential secret. */
export interface SecretReaders {
  /** The IAM user whose key the secret holds (its ARN, path included). */
  userArn: string;
  /**
   * The consumer principals: the configured ones (every secret) and those the user's consumer
   * tag names (this secret). IAM users or roles only, each matched by its exact ARN.
   */
  consumers: readonly string[];
  /**
   * The roles of rekey's own verify steps, which prove and re-check the stored key. Unset only
   * when no deployment gave them (a local run): the policy then grants without denying others.
   */
  rekeyReaders: readonly string[] | undefined;
}

/** What the user and the consumers may do with their secret: read it, and see its versions. */
export const SECRET_READ_ACTIONS = ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'];

/**
 * The secret's resource policy: its own IAM user and the consumer principals may read it, and
 * every other principal (administrators and other accounts included) is refused the value,
 * except rekey's verify roles. An explicit Deny, because an Allow alone adds readers but takes
 * none away: an identity policy granting secretsmanager:GetSecretValue on `*` would still work.
 * The Deny matches `aws:PrincipalArn` exactly (an assumed role's is the role's ARN), which is
 * why an account root, standing for a whole account, is refused as a consumer (consumers.ts):
 * nothing here could spare it without sparing every principal of its account.
 */
export function secretResourcePolicy(readers: SecretReaders): string {
  for (const arn of readers.consumers) {
    const problem = consumerPrincipalProblem(arn);
    if (problem) throw new ConfigurationError(`consumer principal refused: ${problem}`);
  }
  const grantees = [...new Set([readers.userArn, ...readers.consumers])];
  const statements: Record<string, unknown>[] = [
    {
      Sid: 'OwnUserAndConsumersMayRead',
      Effect: 'Allow',
      Principal: { AWS: grantees },
      Action: SECRET_READ_ACTIONS,
      Resource: '*',
    },
  ];
  if (readers.rekeyReaders !== undefined) {
    statements.push({
      Sid: 'NobodyElseMayRead',
      Effect: 'Deny',
      Principal: '*',
      Action: 'secretsmanager:GetSecretValue',
      Resource: '*',
      Condition: { StringNotEquals: { 'aws:PrincipalArn': [...grantees, ...readers.rekeyReaders] } },
    });
  }
  return JSON.stringify({ Version: '2012-10-17', Statement: statements });
}

/**
 * Writes the new key as AWSPENDING (creating the secret, encrypted with rekey's KMS key, if
 * needed). The resource policy is (re)applied before the value is written, every time: a value
 * never sits in a secret without it, and a changed list of consumers reaches every secret at its
 * next rotation. Every call is idempotent, so a retried step repeats them safely.
 */
export async function storePendingKey(
  sm: SecretsManagerClient,
  args: { name: string; kmsKeyId: string; token: string; value: StoredCredential; policy: string },
): Promise<{ arn: string; versionId: string }> {
  const { value } = args;
  const service = isServiceCredential(value) ? value.ServiceName : undefined;
  try {
    await sm.send(
      new CreateSecretCommand({
        Name: args.name,
        KmsKeyId: args.kmsKeyId,
        Description: service
          ? `Service-specific credential for ${service} of IAM user ${value.UserName}, rotated by rekey`
          : `Access key of IAM user ${value.UserName}, rotated by rekey`,
        Tags: [
          { Key: 'rekey:user', Value: value.UserName },
          ...(service ? [{ Key: 'rekey:service', Value: service }] : []),
          { Key: 'rekey:managed', Value: 'true' },
        ],
      }),
    );
  } catch (error) {
    if (!isAwsError(error, 'ResourceExistsException')) throw error;
  }
  await sm.send(
    new PutResourcePolicyCommand({
      SecretId: args.name,
      ResourcePolicy: args.policy,
      // Secrets Manager refuses a policy that would open the secret to the world.
      BlockPublicPolicy: true,
    }),
  );
  const out = await sm.send(
    new PutSecretValueCommand({
      SecretId: args.name,
      ClientRequestToken: args.token,
      SecretString: JSON.stringify(args.value),
      VersionStages: ['AWSPENDING'],
    }),
  );
  return { arn: out.ARN ?? args.name, versionId: out.VersionId ?? args.token };
}

export async function readCredential(
  sm: SecretsManagerClient,
  secretId: string,
  at: { versionId: string } | { stage: string },
): Promise<CredentialSecret> {
  return (await readSecretAs(sm, secretId, at, CredentialSecret)).value;
}

/** Reads either kind of rekey credential. */
export async function readStoredCredential(
  sm: SecretsManagerClient,
  secretId: string,
  at: { versionId: string } | { stage: string },
): Promise<StoredCredential> {
  return (await readStoredVersion(sm, secretId, at)).value;
}

/** Either kind of rekey credential, with the labels GetSecretValue reports for the version read. */
export async function readStoredVersion(
  sm: SecretsManagerClient,
  secretId: string,
  at: { versionId: string } | { stage: string },
): Promise<{ value: StoredCredential; stages: string[] }> {
  return readSecretAs(sm, secretId, at, z.union([CredentialSecret, ServiceCredentialSecret]));
}

async function readSecretAs<T>(
  sm: SecretsManagerClient,
  secretId: string,
  at: { versionId: string } | { stage: string },
  schema: z.core.$ZodType<T>,
): Promise<{ value: T; stages: string[] }> {
  const out = await sm.send(
    new GetSecretValueCommand(
      'versionId' in at
        ? { SecretId: secretId, VersionId: at.versionId }
        : { SecretId: secretId, VersionStage: at.stage },
    ),
  );
  // Error messages must not echo the value (JSON.parse quotes its input): name the secret only.
  const notACredential = new Error(`secret ${secretId} does not hold a rekey credential`);
  let json: unknown;
  try {
    json = JSON.parse(out.SecretString ?? 'null');
  } catch {
    throw notACredential;
  }
  const parsed = z.safeParse(schema, json);
  if (!parsed.success) throw notACredential;
  return { value: parsed.data, stages: out.VersionStages ?? [] };
}

/**
 * Makes `versionId` AWSCURRENT (the old current becomes AWSPREVIOUS) and drops its AWSPENDING label;
 * says whether it already was AWSCURRENT (handed out by an earlier attempt, or the secret's first
 * version, which Secrets Manager labels AWSCURRENT when it is written). Safe when a response is lost: the SDK's retry of a label move that was applied is refused with
 * InvalidParameterException (the label is no longer where the call says), so on that error the
 * labels are read again and the step goes on if they are already as wanted.
 *
 * `known`: the version's labels as the caller just read them (GetSecretValue reports them). When
 * they include AWSCURRENT nothing else needs reading: only the AWSPENDING label is left to drop.
 * Otherwise DescribeSecret tells which version holds AWSCURRENT, which the move must name.
 */
export async function promoteVersion(
  sm: SecretsManagerClient,
  secretId: string,
  versionId: string,
  known?: readonly string[],
): Promise<{ alreadyCurrent: boolean }> {
  const stages: Record<string, string[]> = known?.includes('AWSCURRENT')
    ? { [versionId]: [...known] }
    : ((await describeVersions(sm, secretId))?.stages ?? {});
  const current = versionWithStage(stages, 'AWSCURRENT');
  const done = async (stage: 'AWSCURRENT' | 'AWSPENDING') => {
    const now = (await describeVersions(sm, secretId))?.stages[versionId] ?? [];
    return stage === 'AWSCURRENT' ? now.includes(stage) : !now.includes(stage);
  };
  const update = async (
    stage: 'AWSCURRENT' | 'AWSPENDING',
    move: { MoveToVersionId?: string; RemoveFromVersionId?: string },
  ) => {
    try {
      await sm.send(
        new UpdateSecretVersionStageCommand({ SecretId: secretId, VersionStage: stage, ...move }),
      );
    } catch (error) {
      if (!isAwsError(error, 'InvalidParameterException') || !(await done(stage))) throw error;
    }
  };
  if (current !== versionId) {
    await update('AWSCURRENT', {
      MoveToVersionId: versionId,
      ...(current ? { RemoveFromVersionId: current } : {}),
    });
  }
  if (stages[versionId]?.includes('AWSPENDING')) {
    await update('AWSPENDING', { RemoveFromVersionId: versionId });
  }
  return { alreadyCurrent: current === versionId };
}
