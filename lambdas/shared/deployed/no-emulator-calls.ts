/**
 * The deployed bundles' stand-in for lambdas/shared/clients/emulator-calls.ts
 * (infra/constructs/deployed-bundle.mjs swaps the file): the local runner's checks around each
 * call, which run only inside a local invocation context (runInInvocation, clients/invocation.ts).
 * No deployed Lambda sets one, so bindToInvocations's middlewares never call these; should one
 * be called, it fails by name.
 */
const unsupported = (): never => {
  throw new Error(
    "rekey: the Lambda bundles leave out the local runner's call checks (no invocation context is set deployed)",
  );
};

export const checkedCall = unsupported;
export const keepDenialBody = unsupported;
export const emulatorRefusal = unsupported;

export class AccessDenied extends Error {
  constructor() {
    super();
    unsupported();
  }
}
