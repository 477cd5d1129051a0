/**
 * Stand-ins for the opt-in SDK clients in a deployed Lambda's main bundle.
 *
 * A step's logic imports the commands it sends (check-last-used: LookupEventsCommand; the
 * audit's Security Hub sync: BatchImportFindingsCommand, paginateGetFindings), and those imports
 * alone would bundle most of the client. In the main bundle an esbuild alias
 * (infra/constructs/rekey-function.ts, FACADE_ALIASES) points the package at cloudtrail-sdk.ts or
 * security-hub-sdk.ts, whose commands only carry their name and input (s3-sdk.ts likewise for the
 * audit's report upload, PutObjectCommand). The opt-in file next to
 * the bundle (cloudtrail.ts, security-hub.ts, s3.ts here; lambdas/shared/opt-in.ts loads it) holds the
 * real client and commands, and turns each stand-in into the real command when it is sent.
 * The sources, which the local runner and the tests run, import the real package throughout.
 */

/** A command as the main bundle builds it: the SDK export it stands for, and its input. */
export interface FacadeCommand {
  readonly sdkName: string;
  readonly input: object;
}

/** What the opt-in file exports as the client: `send` and the paginators, on the real client. */
export interface FacadeClient {
  send(command: FacadeCommand): Promise<unknown>;
  paginate(sdkName: string, config: object, input: object): AsyncIterable<unknown>;
}

/** A stand-in command class for the SDK export `sdkName`. */
export function facadeCommand(sdkName: string) {
  return class {
    readonly sdkName = sdkName;
    constructor(readonly input: object) {}
  };
}

/** A stand-in paginator: `config.client` is the opt-in file's client. */
export function facadePaginator(sdkName: string) {
  return (config: { client: FacadeClient }, input: object) => config.client.paginate(sdkName, config, input);
}

type Exports = Record<string, unknown>;

/**
 * The real `client`, taking stand-in commands: `sdk` names the real command classes and paginators
 * a stand-in may stand for (anything else is refused by name).
 */
export function facadeClient(client: { send(command: never): Promise<unknown> }, sdk: Exports): FacadeClient {
  const real = <T>(sdkName: string): T => {
    const value = sdk[sdkName];
    if (value === undefined) throw new Error(`rekey: the opt-in bundle has no ${sdkName}`);
    return value as T;
  };
  return {
    send: async (command) => {
      const Command = real<new (input: object) => never>(command.sdkName);
      return client.send(new Command(command.input));
    },
    paginate: (sdkName, config, input) =>
      real<(config: object, input: object) => AsyncIterable<unknown>>(sdkName)({ ...config, client }, input),
  };
}
