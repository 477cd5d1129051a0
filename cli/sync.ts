/**
 * `rekey sync`: for consumers outside AWS (on-prem hosts, CI elsewhere). Reads the current key
 * from the secret rekey stores (`rekey/<user>`, version stage AWSCURRENT) and writes it into one
 * profile of the shared credentials file, for every AWS SDK and the AWS CLI to pick up.
 *
 * Safe from cron: no prompt, no TTY needed, no color; idempotent (nothing is written when the
 * profile already holds the key); a failed fetch leaves the file untouched; the write is atomic
 * (a temporary file in the same directory, fsync, rename), so a reader never sees half a file;
 * two syncs into the same file at once take turns (a lock file next to it). The file is mode
 * 0600, its directory 0700 when created here. The secret access key is never printed.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, readFile, realpath, rename, stat, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import * as z from 'zod';
import { ServiceCredentialSecret } from '../lambdas/shared/secret.ts';
import { CredentialsFileError, isValidProfileName, setProfileKeys } from './credentials-file.ts';
import { maskKeyId } from './progress.ts';

export interface SyncFlags {
  secretId: string;
  profile: string;
  credentialsFile?: string;
  json?: boolean;
  quiet?: boolean;
}

export interface SyncDeps {
  /** @default a client from the SDK's default credential chain */
  secrets?: SecretsManagerClient;
  /** @default process.env */
  env?: Record<string, string | undefined>;
  stdout?: (text: string) => void;
}

export interface SyncResult {
  credentialsFile: string;
  profile: string;
  secretId: string;
  /** Masked: AKIA…ABCD. */
  accessKeyId: string;
  /** false when the profile already held this key (nothing was written). */
  changed: boolean;
}

/** Anything that makes sync exit 1 with a message (the file is untouched). */
export class SyncError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SyncError';
  }
}

/** The part of the stored secret sync needs (the secret is `credential_process` JSON). */
const StoredKey = z.object({
  AccessKeyId: z.string().regex(/^[A-Z0-9]{16,128}$/),
  SecretAccessKey: z.string().regex(/^\S{1,256}$/),
});

/** The shared credentials file as the SDKs find it: AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials. */
export function defaultCredentialsFile(env: Record<string, string | undefined> = process.env): string {
  const fromEnv = env.AWS_SHARED_CREDENTIALS_FILE;
  return fromEnv ? expandHome(fromEnv) : join(homedir(), '.aws', 'credentials');
}

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
}

const describe = (error: unknown) =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

export async function syncCredentials(flags: SyncFlags, deps: SyncDeps = {}): Promise<SyncResult> {
  if (flags.secretId.trim() === '') {
    throw new SyncError('--secret-id must name the secret that holds the key, e.g. rekey/alice');
  }
  // An empty path (often an unset shell variable) must not silently mean the default file.
  if (flags.credentialsFile !== undefined && flags.credentialsFile.trim() === '') {
    throw new SyncError('--credentials-file must not be empty (leave it out for the default file)');
  }
  if (!isValidProfileName(flags.profile)) {
    throw new SyncError(
      `invalid --profile "${flags.profile}": no brackets, line breaks or surrounding spaces`,
    );
  }
  const path = resolve(
    flags.credentialsFile
      ? expandHome(flags.credentialsFile)
      : defaultCredentialsFile(deps.env ?? process.env),
  );

  // 1. The key first: if it cannot be read, the file is never opened for writing.
  const client = deps.secrets ?? new SecretsManagerClient({});
  let key: z.infer<typeof StoredKey>;
  try {
    // An explicit stage: after a stage move a plain read can return the previous value (docs/design.md, the rules measured against how AWS behaves).
    const out = await client.send(
      new GetSecretValueCommand({ SecretId: flags.secretId, VersionStage: 'AWSCURRENT' }),
    );
    const json: unknown = JSON.parse(out.SecretString ?? 'null');
    const parsed = StoredKey.safeParse(json);
    if (!parsed.success && ServiceCredentialSecret.safeParse(json).success) {
      // Only the service's name is echoed: never a field that could hold the password.
      const service = ServiceCredentialSecret.parse(json).ServiceName;
      throw new SyncError(
        `secret ${flags.secretId} holds a service-specific credential for ${service}, not an access key: ` +
          'rekey sync writes access keys only; a Cassandra driver or git reads ServiceUserName and ServicePassword ' +
          'from the secret itself (README, "Service-specific credentials")',
      );
    }
    if (!parsed.success) {
      throw new SyncError(
        `secret ${flags.secretId} (AWSCURRENT) does not hold an access key (expected JSON with AccessKeyId and SecretAccessKey)`,
      );
    }
    key = parsed.data;
  } catch (error) {
    if (error instanceof SyncError) throw error;
    // A JSON.parse error would quote the secret text: say only what went wrong.
    const what = error instanceof SyntaxError ? 'it is not JSON' : describe(error);
    throw new SyncError(`could not read the current key from secret ${flags.secretId}: ${what}`);
  } finally {
    if (!deps.secrets) client.destroy();
  }

  // 2. The file: write next to the real file when it is a symlink, so the link stays a link.
  const target = await realTarget(path);
  const dir = dirname(target);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const result = {
    credentialsFile: path,
    profile: flags.profile,
    secretId: flags.secretId,
    accessKeyId: maskKeyId(key.AccessKeyId),
  };
  return withLock(target, async () => {
    const before = await readIfExists(target);
    let after: string;
    try {
      after = setProfileKeys(before ?? '', flags.profile, {
        accessKeyId: key.AccessKeyId,
        secretAccessKey: key.SecretAccessKey,
      });
    } catch (error) {
      if (error instanceof CredentialsFileError) throw new SyncError(`${path}: ${error.message}`);
      throw error;
    }
    if (before !== null && after === before) {
      await tightenMode(target);
      return { ...result, changed: false };
    }
    await writeAtomically(target, after);
    return { ...result, changed: true };
  });
}

async function realTarget(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    return path;
  }
}

async function readIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new SyncError(`cannot read ${path}: ${describe(error)}`);
  }
}

/** A file holding secrets must not be readable by others: an existing 0644 file becomes 0600. */
async function tightenMode(path: string): Promise<void> {
  const { mode } = await stat(path);
  if ((mode & 0o077) !== 0) await chmod(path, 0o600);
}

/** Temp file in the same directory (same filesystem), fsync, rename over the target, fsync the directory. */
async function writeAtomically(target: string, text: string): Promise<void> {
  const dir = dirname(target);
  const temp = join(dir, `.${basename(target)}.rekey-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    try {
      // Explicitly: the umask only removes bits, but an odd umask could leave it 0400.
      await handle.chmod(0o600);
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw new SyncError(`could not write ${target}: ${describe(error)}`);
  }
  // The rename itself is durable only once the directory is synced (not possible everywhere).
  try {
    const dirHandle = await open(dir, constants.O_RDONLY);
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename has happened either way.
  }
}

/** A lock older than this was left by a sync that died; a sync takes milliseconds. */
const STALE_LOCK_MS = 30_000;
const LOCK_WAIT_MS = 10_000;

/**
 * Two syncs of different profiles into one file at the same minute (two cron lines) would each
 * read, change and rename, and the later rename would drop the other's update: they take turns.
 */
async function withLock<T>(target: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${target}.rekey-lock`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const handle = await open(lock, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new SyncError(`cannot create the lock file ${lock}: ${describe(error)}`);
      }
      const age = await lstat(lock).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > STALE_LOCK_MS) {
        await unlink(lock).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadline) {
        throw new SyncError(`another rekey sync holds ${lock}; if none is running, delete that file`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}

/** What `rekey sync` prints on success (never the secret; the key id masked). */
export function syncMessage(result: SyncResult): string {
  return result.changed
    ? `Profile ${result.profile} in ${result.credentialsFile} now holds key ${result.accessKeyId} (from ${result.secretId}, AWSCURRENT)`
    : `Profile ${result.profile} in ${result.credentialsFile} already holds key ${result.accessKeyId}; nothing written`;
}
