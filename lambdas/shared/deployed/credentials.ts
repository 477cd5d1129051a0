/**
 * The deployed bundles' stand-in for `@aws-sdk/credential-provider-node`: an esbuild alias in
 * infra/constructs/rekey-function.ts swaps the SDK's default credential chain (SSO, INI, process,
 * web-identity, container and IMDS providers, and the nested STS/SSO clients they build) for this
 * module in every Lambda bundle. A Lambda's credentials are always its role's, which the runtime
 * puts in the environment before the handler's module is loaded; nothing else in the chain can
 * ever answer there.
 *
 * Only the bundles see it. The local runner (tests, the CLI) imports the handler sources
 * unbundled and keeps the real default chain and its per-invocation credentials (clients/invocation.ts).
 *
 * It fails at cold start, naming the variables, rather than at the first call: a Lambda without
 * them would otherwise fail every call with the SDK's "Could not load credentials".
 */
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';

/** What the Lambda runtime sets for the function's role. */
export const REQUIRED_VARIABLES = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
] as const;

/** The role's credentials from `env`; throws naming every missing variable. */
export function environmentCredentials(env: NodeJS.ProcessEnv = process.env): AwsCredentialIdentity {
  const missing = REQUIRED_VARIABLES.filter((name) => !env[name]);
  if (missing.length > 0)
    throw new Error(
      `rekey: ${missing.join(', ')} not set; a deployed rekey Lambda signs only with its role's credentials from the environment`,
    );
  return {
    accessKeyId: env.AWS_ACCESS_KEY_ID as string,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY as string,
    sessionToken: env.AWS_SESSION_TOKEN as string,
  };
}

/** At cold start: a bundle without its credentials does not load. */
environmentCredentials();

/** The signature of `@aws-sdk/credential-provider-node`'s export, which the SDK clients import. */
export const defaultProvider =
  (_init?: unknown): AwsCredentialIdentityProvider =>
  async () =>
    environmentCredentials();
