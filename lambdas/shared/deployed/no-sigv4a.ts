/**
 * The main bundles' stand-in for `@aws-sdk/signature-v4-multi-region` (an esbuild alias in
 * infra/constructs/rekey-function.ts, MAIN_BUNDLE_ALIASES): the signer of the clients whose
 * endpoints may ask for SigV4a (EventBridge's global endpoints, STS). It signs with SigV4, as the
 * SDK's own does for every regional endpoint, which is all rekey calls (no EventBridge
 * `EndpointId`); the SigV4a half, and the CRT and S3 Express session paths, are left out (the
 * opt-in files, S3's among them, keep the SDK's). The SDK reports SigV4a unavailable (`sigv4aDependency`), as its
 * own module does without a SigV4a package installed; should a request be signed for every
 * region (`signingRegion: '*'`) or with S3 Express session credentials anyway, it fails by name.
 */
import { SignatureV4 } from '@smithy/signature-v4';
import type { HttpRequest, RequestPresigningArguments, RequestSigningArguments } from '@smithy/types';

const unsupported = (): never => {
  throw new Error(
    'rekey: the Lambda bundles leave out SigV4a signing (every region), and this call needs it',
  );
};

/** The SDK's class, less SigV4a: its SigV4 half signs, as the SDK's own does for a region. */
export class SignatureV4MultiRegion {
  static sigv4aDependency(): 'none' {
    return 'none';
  }

  readonly #sigv4: SignatureV4;

  constructor(options: ConstructorParameters<typeof SignatureV4>[0]) {
    this.#sigv4 = new SignatureV4(options);
  }

  async sign(request: HttpRequest, options: RequestSigningArguments = {}): Promise<HttpRequest> {
    if (options.signingRegion === '*') unsupported();
    return this.#sigv4.sign(request, options);
  }

  async presign(request: HttpRequest, options: RequestPresigningArguments = {}): Promise<HttpRequest> {
    if (options.signingRegion === '*') unsupported();
    return this.#sigv4.presign(request, options);
  }

  signWithCredentials = unsupported;
  presignWithCredentials = unsupported;
}
