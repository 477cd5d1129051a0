/**
 * The deployed bundles' stand-in for `@aws-sdk/endpoint-cache` (an esbuild alias in
 * infra/constructs/rekey-function.ts): the LRU cache (and its `mnemonist` data structures) of
 * DynamoDB endpoint discovery. The DynamoDB client builds one at construction and reads it only
 * when endpoint discovery is on, which rekey never turns on (it is off unless
 * AWS_ENABLE_ENDPOINT_DISCOVERY or the client config enables it, and no operation rekey calls
 * requires it). Should anything use it, it fails by name.
 */
const unsupported = (): never => {
  throw new Error('rekey: the Lambda bundles leave out DynamoDB endpoint discovery, and this call needs it');
};

export class EndpointCache {
  getEndpoint = unsupported;
  get = unsupported;
  set = unsupported;
  delete = unsupported;
  has = unsupported;
  clear = unsupported;
}
