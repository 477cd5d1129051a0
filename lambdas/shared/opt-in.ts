/**
 * Clients that only an opt-in toggle uses (CloudTrail for `cloudTrailLookup`, Security Hub for
 * `securityHub`, S3 for `auditReports`, STS for a member account of an `organization`, Organizations for the plan's check of a member
 * account), loaded
 * only when it is on.
 *
 * NodejsFunction bundles each Lambda into one file, which would inline a dynamic `import()` of a
 * literal path, so the import's path is computed. From the sources (the local runner, tests) it
 * is the client's module under clients/, the very instance a test's `mockClient()` replaces.
 * Deployed, it is a file the construct bundles next to the Lambda's main bundle from
 * deployed/<client>.ts (infra/constructs/rekey-function.ts, OPT_IN_BUNDLES; deployed/facade.ts
 * says how the main bundle's commands reach it): a cold start with the toggle off never parses
 * it (docs/performance.md).
 */
import type * as CloudTrail from './clients/cloudtrail.ts';
import type * as MemberSts from './clients/member-sts.ts';
import type * as Organizations from './clients/organizations.ts';
import type * as S3 from './clients/s3.ts';
import type * as SecurityHub from './clients/security-hub.ts';

interface OptInModules {
  cloudtrail: typeof CloudTrail;
  'security-hub': typeof SecurityHub;
  s3: typeof S3;
  'member-sts': typeof MemberSts;
  organizations: typeof Organizations;
}
export type OptInClient = keyof OptInModules;

/** A bundle (`.mjs`) and the sources (`.ts`) are told apart by this module's own URL. */
export function optInModuleUrl(name: OptInClient, from: string = import.meta.url): string {
  return new URL(from.endsWith('.ts') ? `./clients/${name}.ts` : `./${name}.mjs`, from).href;
}

export async function loadOptInClient<N extends OptInClient>(name: N): Promise<OptInModules[N]> {
  return (await import(/* @vite-ignore */ optInModuleUrl(name))) as OptInModules[N];
}

/**
 * The client a dependency gets while its toggle is off: nothing may call it, and a call that does
 * fails by name instead of loading the client after all.
 */
export function switchedOff<Client>(toggle: string): Client {
  const refuse = async () => {
    throw new Error(`rekey: ${toggle} is off, so its client is not loaded`);
  };
  return { send: refuse } as unknown as Client;
}
