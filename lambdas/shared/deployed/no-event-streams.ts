/**
 * The deployed bundles' stand-in for `@smithy/core/event-streams` (an esbuild alias in
 * infra/constructs/rekey-function.ts). The SDK's protocols load it, with a dynamic `import()`
 * that esbuild inlines into the one bundle file, only for operations that stream events
 * (Transcribe, Bedrock, Kinesis SubscribeToShard...). None of the operations rekey calls does,
 * so the codec is dead weight in every bundle; should one ever be called, it fails by name.
 */
const unsupported = (): never => {
  throw new Error('rekey: the Lambda bundles leave out the SDK event-stream codec, and this call needs it');
};

export class EventStreamSerde {
  constructor() {
    unsupported();
  }
}

export const eventStreamSerdeProvider = unsupported;

/**
 * S3Client resolves its event-stream configuration when it is built (only SelectObjectContent
 * streams events): here that leaves the configuration as it is, without calling the provider
 * above, so the client builds and only an event-stream operation would fail.
 */
export const resolveEventStreamSerdeConfig = <T extends object>(input: T): T => input;
