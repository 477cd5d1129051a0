/**
 * `rekey sync`: the credentials-file editor (pure), syncCredentials with a mocked Secrets Manager
 * (exact command input, file mode, atomic write, failure leaves the file alone), and the real
 * CLI as a child process against a moto server.
 */
import { execFile } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readProfileKeys, setProfileKeys } from '../../cli/credentials-file.ts';
import { type MotoServer, startMoto } from '../../cli/emulator.ts';
import { defaultCredentialsFile, SyncError, syncCredentials, syncMessage } from '../../cli/sync.ts';

const KEY = {
  accessKeyId: 'AKIANEWKEY0000000001',
  secretAccessKey: 'new/secret+value0000000000000000000000001',
};
const SECRET_STRING = JSON.stringify({
  Version: 1,
  AccessKeyId: KEY.accessKeyId,
  SecretAccessKey: KEY.secretAccessKey,
  UserName: 'alice',
  CreateDate: '2026-11-22T10:00:00.000Z',
});

/** A credentials file as people keep them: comments, blank lines, several profiles. */
const EXISTING = [
  '# managed by hand; rekey updates [alice] only',
  '[default]',
  'aws_access_key_id = AKIADEFAULT000000000',
  'aws_secret_access_key = default-secret',
  '',
  '; the CI user',
  '[alice]',
  'aws_access_key_id=AKIAOLDKEY0000000001',
  'aws_secret_access_key=old-secret',
  'region = eu-west-1',
  '',
  '[bob]',
  'aws_access_key_id = AKIABOB0000000000000',
  'aws_secret_access_key = bob-secret',
  '',
].join('\n');

describe('setProfileKeys (the line editor)', () => {
  it('rewrites only the two key lines of the profile, keeping their spelling and every other byte', () => {
    // Act
    const out = setProfileKeys(EXISTING, 'alice', KEY);

    // Assess
    expect(out).toBe(
      EXISTING.replace(
        'aws_access_key_id=AKIAOLDKEY0000000001',
        `aws_access_key_id=${KEY.accessKeyId}`,
      ).replace('aws_secret_access_key=old-secret', `aws_secret_access_key=${KEY.secretAccessKey}`),
    );
    expect(readProfileKeys(out, 'alice')).toEqual(KEY);
    expect(readProfileKeys(out, 'bob')).toEqual({
      accessKeyId: 'AKIABOB0000000000000',
      secretAccessKey: 'bob-secret',
    });
  });

  it('appends a missing profile after a blank line, leaving the rest as it was', () => {
    const out = setProfileKeys(EXISTING, 'carol', KEY);

    expect(out).toBe(
      `${EXISTING}\n[carol]\naws_access_key_id = ${KEY.accessKeyId}\naws_secret_access_key = ${KEY.secretAccessKey}\n`,
    );
  });

  it('adds missing keys after the last setting of the profile, before its trailing comments', () => {
    const text = '[alice]\nregion = us-east-1\n# keys below\n\n[bob]\nx = 1\n';

    const out = setProfileKeys(text, 'alice', KEY);

    expect(out).toBe(
      `[alice]\nregion = us-east-1\naws_access_key_id = ${KEY.accessKeyId}\naws_secret_access_key = ${KEY.secretAccessKey}\n# keys below\n\n[bob]\nx = 1\n`,
    );
  });

  it('removes a session token from the profile (it would break long-term keys) and nothing else', () => {
    const text =
      '[alice]\naws_access_key_id = A\naws_secret_access_key = B\naws_session_token = T\n  more-token\n[bob]\naws_session_token = keep\n';

    const out = setProfileKeys(text, 'alice', KEY);

    expect(out).toBe(
      `[alice]\naws_access_key_id = ${KEY.accessKeyId}\naws_secret_access_key = ${KEY.secretAccessKey}\n[bob]\naws_session_token = keep\n`,
    );
  });

  it('keeps Windows line endings and a missing final newline', () => {
    const text = '[default]\r\nregion = x\r\n\r\n[alice]\r\naws_access_key_id = A';

    const out = setProfileKeys(text, 'alice', KEY);

    expect(out).toBe(
      `[default]\r\nregion = x\r\n\r\n[alice]\r\naws_access_key_id = ${KEY.accessKeyId}\r\naws_secret_access_key = ${KEY.secretAccessKey}`,
    );
  });

  it('creates the file content from nothing', () => {
    expect(setProfileKeys('', 'alice', KEY)).toBe(
      `[alice]\naws_access_key_id = ${KEY.accessKeyId}\naws_secret_access_key = ${KEY.secretAccessKey}\n`,
    );
  });

  it('refuses a file that names the profile twice, and profile names that would change the file', () => {
    expect(() => setProfileKeys('[alice]\n[alice]\n', 'alice', KEY)).toThrow(/appears 2 times/);
    expect(() => setProfileKeys('', 'al]ice', KEY)).toThrow(/invalid profile name/);
    expect(() => setProfileKeys('', ' alice', KEY)).toThrow(/invalid profile name/);
  });

  it('is idempotent: a second application changes nothing', () => {
    const once = setProfileKeys(EXISTING, 'alice', KEY);
    expect(setProfileKeys(once, 'alice', KEY)).toBe(once);
  });
});

describe('syncCredentials (Secrets Manager mocked)', () => {
  const client = new SecretsManagerClient({ region: 'us-east-1' });
  const secrets = mockClient(client);
  let dir: string;
  let file: string;

  beforeEach(() => {
    secrets.reset();
    secrets.on(GetSecretValueCommand).resolves({ SecretString: SECRET_STRING });
    dir = mkdtempSync(join(tmpdir(), 'rekey-sync-'));
    file = join(dir, 'credentials');
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const sync = (credentialsFile = file) =>
    syncCredentials({ secretId: 'rekey/alice', profile: 'alice', credentialsFile }, { secrets: client });

  it('reads AWSCURRENT with an explicit stage and updates the profile, keeping the others and the comments', async () => {
    // Prepare
    writeFileSync(file, EXISTING, { mode: 0o600 });

    // Act
    const result = await sync();

    // Assess
    expect(secrets).toHaveReceivedCommandTimes(GetSecretValueCommand, 1);
    expect(secrets).toHaveReceivedCommandWith(GetSecretValueCommand, {
      SecretId: 'rekey/alice',
      VersionStage: 'AWSCURRENT',
    });
    expect(readFileSync(file, 'utf8')).toBe(setProfileKeys(EXISTING, 'alice', KEY));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(result).toEqual({
      credentialsFile: file,
      profile: 'alice',
      secretId: 'rekey/alice',
      accessKeyId: 'AKIA…0001',
      changed: true,
    });
    // Nothing left behind: no temporary file, no lock.
    expect(readdirSync(dir)).toEqual(['credentials']);
  });

  it('writes by rename (a new inode), never in place', async () => {
    writeFileSync(file, EXISTING, { mode: 0o600 });
    const before = statSync(file).ino;

    await sync();

    expect(statSync(file).ino).not.toBe(before);
  });

  it('creates a missing file with mode 0600 and its directory with mode 0700', async () => {
    const nested = join(dir, 'home', '.aws', 'credentials');

    await sync(nested);

    expect(readFileSync(nested, 'utf8')).toBe(setProfileKeys('', 'alice', KEY));
    expect(statSync(nested).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'home', '.aws')).mode & 0o777).toBe(0o700);
  });

  it('does not rewrite a file that already holds the key (safe to run every minute from cron)', async () => {
    writeFileSync(file, setProfileKeys(EXISTING, 'alice', KEY), { mode: 0o600 });
    const before = statSync(file);

    const result = await sync();

    const after = statSync(file);
    expect(result.changed).toBe(false);
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    expect(syncMessage(result)).toMatch(/already holds key AKIA…0001; nothing written$/);
  });

  it('tightens a file readable by others to 0600, even when the key is already there', async () => {
    writeFileSync(file, setProfileKeys(EXISTING, 'alice', KEY));
    chmodSync(file, 0o644);

    await sync();

    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('writes through a symlink to the real file and keeps the link', async () => {
    const real = join(dir, 'real-credentials');
    writeFileSync(real, EXISTING, { mode: 0o600 });
    symlinkSync(real, file);

    await sync();

    expect(lstatSync(file).isSymbolicLink()).toBe(true);
    expect(readFileSync(real, 'utf8')).toBe(setProfileKeys(EXISTING, 'alice', KEY));
  });

  it.each([
    ['the secret does not exist', () => secrets.on(GetSecretValueCommand).rejects(notFound())],
    ['access is denied', () => secrets.on(GetSecretValueCommand).rejects(named('AccessDeniedException'))],
    [
      'the secret is not JSON',
      () => secrets.on(GetSecretValueCommand).resolves({ SecretString: 'hunter2 oops' }),
    ],
    [
      'the secret holds no key',
      () => secrets.on(GetSecretValueCommand).resolves({ SecretString: '{"password":"hunter2"}' }),
    ],
  ])('leaves the file byte-identical when %s', async (_what, arrange) => {
    // Prepare
    writeFileSync(file, EXISTING, { mode: 0o600 });
    const before = statSync(file);
    arrange();

    // Act
    const error = await sync().catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(SyncError);
    expect(String((error as Error).message)).toMatch(/rekey\/alice/);
    expect(String((error as Error).message)).not.toMatch(/hunter2/);
    expect(readFileSync(file, 'utf8')).toBe(EXISTING);
    expect(statSync(file).mtimeMs).toBe(before.mtimeMs);
    expect(readdirSync(dir)).toEqual(['credentials']);
  });

  it.each([[''], ['   ']])('refuses the secret id %j before reading anything', async (secretId) => {
    // Act
    const error = await syncCredentials(
      { secretId, profile: 'alice', credentialsFile: file },
      { secrets: client },
    ).catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(SyncError);
    expect((error as Error).message).toMatch(/--secret-id must name the secret/);
    expect(secrets.calls()).toHaveLength(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses an empty --credentials-file (it would silently mean the default file) before reading anything', async () => {
    // Act
    const error = await syncCredentials(
      { secretId: 'rekey/alice', profile: 'alice', credentialsFile: '' },
      { secrets: client, env: { AWS_SHARED_CREDENTIALS_FILE: file } },
    ).catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(SyncError);
    expect((error as Error).message).toMatch(/--credentials-file must not be empty/);
    expect(secrets.calls()).toHaveLength(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses a service-specific credential secret, naming the service and never the password', async () => {
    // Prepare
    writeFileSync(file, EXISTING, { mode: 0o600 });
    secrets.on(GetSecretValueCommand).resolves({
      SecretString: JSON.stringify({
        ServiceUserName: 'alice-at-123456789012',
        ServicePassword: 'hunter2-service-password',
        ServiceSpecificCredentialId: 'ACCAEXAMPLE0000000001',
        ServiceName: 'cassandra.amazonaws.com',
        UserName: 'alice',
        CreateDate: '2026-03-01T12:00:00.000Z',
      }),
    });

    // Act
    const error = await sync().catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(SyncError);
    expect((error as Error).message).toBe(
      'secret rekey/alice holds a service-specific credential for cassandra.amazonaws.com, not an access key: ' +
        'rekey sync writes access keys only; a Cassandra driver or git reads ServiceUserName and ServicePassword ' +
        'from the secret itself (README, "Service-specific credentials")',
    );
    expect(readFileSync(file, 'utf8')).toBe(EXISTING);
  });

  it('defaults to AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials', () => {
    expect(defaultCredentialsFile({ AWS_SHARED_CREDENTIALS_FILE: '/etc/app/creds' })).toBe('/etc/app/creds');
    expect(defaultCredentialsFile({})).toMatch(/\/\.aws\/credentials$/);
  });
});

function named(name: string): Error {
  const error = new Error(`${name}: no`);
  error.name = name;
  return error;
}

function notFound(): ResourceNotFoundException {
  return new ResourceNotFoundException({
    message: "Secrets Manager can't find the specified secret.",
    $metadata: {},
  });
}

const BIN = fileURLToPath(new URL('../../bin/rekey.mjs', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('rekey sync (child process, against moto)', () => {
  let moto: MotoServer;
  let dir: string;
  let file: string;
  const rekey = (...args: string[]): Promise<Run> =>
    new Promise((resolve) => {
      execFile(
        process.execPath,
        [BIN, 'sync', ...args],
        {
          env: {
            PATH: process.env.PATH,
            HOME: dir,
            AWS_ENDPOINT_URL: moto.endpoint,
            AWS_REGION: 'us-east-1',
            AWS_ACCESS_KEY_ID: 'AKIAMOTOTESTING00000',
            AWS_SECRET_ACCESS_KEY: 'testing',
          },
        },
        (error, stdout, stderr) => {
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
        },
      );
    });

  beforeAll(async () => {
    moto = await startMoto();
    const client = new SecretsManagerClient({
      endpoint: moto.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIAMOTOTESTING00000', secretAccessKey: 'testing' },
    });
    await client.send(new CreateSecretCommand({ Name: 'rekey/alice', SecretString: '{"Version":1}' }));
    // The current version is the one written last (rekey writes with PutSecretValue too).
    await client.send(new PutSecretValueCommand({ SecretId: 'rekey/alice', SecretString: SECRET_STRING }));
    client.destroy();
  });
  afterAll(async () => {
    await moto?.stop();
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rekey-sync-cli-'));
    file = join(dir, 'credentials');
    writeFileSync(file, EXISTING, { mode: 0o600 });
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes the current key into the profile and prints the key id masked, never the secret', async () => {
    const run = await rekey('--secret-id', 'rekey/alice', '--profile', 'alice', '--credentials-file', file);

    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toBe(
      `Profile alice in ${file} now holds key AKIA…0001 (from rekey/alice, AWSCURRENT)\n`,
    );
    expect(run.stdout).not.toContain(KEY.secretAccessKey);
    expect(readFileSync(file, 'utf8')).toBe(setProfileKeys(EXISTING, 'alice', KEY));
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('--json prints the result as data; --quiet prints nothing', async () => {
    const json = await rekey(
      '--secret-id',
      'rekey/alice',
      '--profile',
      'alice',
      '--credentials-file',
      file,
      '--json',
    );
    const quiet = await rekey(
      '--secret-id',
      'rekey/alice',
      '--profile',
      'alice',
      '--credentials-file',
      file,
      '--quiet',
    );

    expect(JSON.parse(json.stdout)).toEqual({
      credentialsFile: file,
      profile: 'alice',
      secretId: 'rekey/alice',
      accessKeyId: 'AKIA…0001',
      changed: true,
    });
    expect(quiet).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('uses ~/.aws/credentials by default', async () => {
    const run = await rekey('--secret-id', 'rekey/alice', '--profile', 'alice');

    expect(run.code).toBe(0);
    expect(readFileSync(join(dir, '.aws', 'credentials'), 'utf8')).toBe(setProfileKeys('', 'alice', KEY));
  });

  it('exits 1 with the reason on stderr and leaves the file byte-identical when the fetch fails', async () => {
    const run = await rekey('--secret-id', 'rekey/nobody', '--profile', 'alice', '--credentials-file', file);

    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(
      /^rekey: could not read the current key from secret rekey\/nobody: ResourceNotFoundException/,
    );
    expect(readFileSync(file, 'utf8')).toBe(EXISTING);
    expect(existsSync(`${file}.rekey-lock`)).toBe(false);
  });
});
