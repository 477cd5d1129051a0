/**
 * The deployed bundles' stand-in for the SDK's pure-JavaScript SHA-256 (`Sha256Js` in
 * @smithy/core's checksum module; infra/constructs/deployed-bundle.mjs swaps the file). Node's
 * `crypto` hashes everything the SDK signs; the JavaScript class is the fallback for a runtime
 * without it, which Node never is. Should it ever be built, it fails by name.
 */
export class Sha256Js {
  constructor() {
    throw new Error(
      "rekey: the Lambda bundles leave out the SDK's JavaScript SHA-256; Node's crypto has none",
    );
  }
}
