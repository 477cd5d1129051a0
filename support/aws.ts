/**
 * AWS access for tests against the emulator: clients with explicit endpoint and credentials, the
 * process environment the handlers' default-chain clients read, and an admin identity to run as
 * once moto's request authentication is on.
 */
import {
  CreateAccessKeyCommand,
  CreateUserCommand,
  IAMClient,
  PutUserPolicyCommand,
} from '@aws-sdk/client-iam';

export const TEST_REGION = 'us-east-1';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** Accepted by moto while its request authentication is off (the default). */
export const ANY_CREDENTIALS: AwsCredentials = {
  accessKeyId: 'AKIAMOTOTESTING00000',
  secretAccessKey: 'testing',
};

export interface ClientSettings {
  endpoint: string;
  region: string;
  credentials: AwsCredentials;
  /** Tests want the emulator's answer, not the SDK's retries of it. */
  maxAttempts: number;
}

export function clientSettings(
  endpoint: string,
  credentials: AwsCredentials = ANY_CREDENTIALS,
): ClientSettings {
  return { endpoint, region: TEST_REGION, credentials, maxAttempts: 1 };
}

/** `awsClient(IAMClient, moto.endpoint, admin)`: any SDK v3 client against the emulator. */
export function awsClient<C>(
  Client: new (settings: ClientSettings) => C,
  endpoint: string,
  credentials: AwsCredentials = ANY_CREDENTIALS,
): C {
  return new Client(clientSettings(endpoint, credentials));
}

/**
 * Points the SDK's default chain (what the handlers' module-scope clients use) at an endpoint
 * with given credentials; `restore()` puts the previous environment back. Apply it before the
 * first handler call: clients resolve and cache credentials on their first request.
 */
export class AwsEnv {
  readonly #saved = new Map<string, string | undefined>();

  constructor(
    readonly endpoint: string,
    readonly credentials: AwsCredentials,
  ) {}

  apply(): this {
    const values: Record<string, string | undefined> = {
      AWS_ENDPOINT_URL: this.endpoint,
      AWS_REGION: TEST_REGION,
      AWS_ACCESS_KEY_ID: this.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: this.credentials.secretAccessKey,
      // A real session token or profile left in the shell must not leak into emulator requests.
      AWS_SESSION_TOKEN: undefined,
      AWS_PROFILE: undefined,
    };
    // Service-specific endpoints (AWS_ENDPOINT_URL_IAM, ...) would win over AWS_ENDPOINT_URL.
    for (const key of Object.keys(process.env))
      if (key.startsWith('AWS_ENDPOINT_URL_')) values[key] = undefined;
    for (const [key, value] of Object.entries(values)) {
      if (!this.#saved.has(key)) this.#saved.set(key, process.env[key]);
      setEnv(key, value);
    }
    return this;
  }

  restore(): void {
    for (const [key, value] of this.#saved) setEnv(key, value);
    this.#saved.clear();
  }
}

function setEnv(key: string, value: string | undefined): void {
  if (value === undefined) Reflect.deleteProperty(process.env, key);
  else process.env[key] = value;
}

export const ADMIN_USER = 'rekey-admin';

/**
 * With moto's auth off (a fresh or reset server), creates IAM user `rekey-admin` allowed
 * everything and returns an access key of it. Tests then call `moto.enableAuth()` and run as
 * this admin, so every request is signed and checked like in a real account. Note that the
 * admin's key is itself an access key the audit will see.
 */
export async function adminSetup(endpoint: string): Promise<AwsCredentials> {
  const iam = awsClient(IAMClient, endpoint);
  try {
    await iam.send(new CreateUserCommand({ UserName: ADMIN_USER }));
    await iam.send(
      new PutUserPolicyCommand({
        UserName: ADMIN_USER,
        PolicyName: 'allow-everything',
        PolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }],
        }),
      }),
    );
    const { AccessKey } = await iam.send(new CreateAccessKeyCommand({ UserName: ADMIN_USER }));
    if (!AccessKey?.AccessKeyId || !AccessKey.SecretAccessKey)
      throw new Error('CreateAccessKey returned no key');
    return { accessKeyId: AccessKey.AccessKeyId, secretAccessKey: AccessKey.SecretAccessKey };
  } finally {
    iam.destroy();
  }
}
