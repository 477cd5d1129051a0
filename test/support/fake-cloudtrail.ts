/**
 * A stand-in for CloudTrail's LookupEvents, which the moto emulator does not implement: mocks the
 * handlers' CloudTrail client (aws-sdk-client-mock) to answer with the events a test gives. The
 * mock bypasses the client's middleware, so inside a handler invocation each lookup is first put
 * to the invocation's authorization check, as a real call would be: a role without
 * cloudtrail:LookupEvents is refused. Refusals are kept for the test to read.
 */
import { type CloudTrailClient, type Event, LookupEventsCommand } from '@aws-sdk/client-cloudtrail';
import { type AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import { authorizeCommand } from '../../lambdas/shared/clients/invocation.ts';

export interface FakeCloudTrail {
  stub: AwsClientStub<CloudTrailClient>;
  /** The error of every lookup the invocation's role was refused, in order. */
  refusals: Error[];
  /** How many lookups were answered. */
  answered: () => number;
}

/** Answers every LookupEvents of `client` (the handlers' singleton) with `events()`. */
export function fakeCloudTrail(client: CloudTrailClient, events: () => Event[]): FakeCloudTrail {
  const refusals: Error[] = [];
  let answered = 0;
  const stub = mockClient(client);
  stub.on(LookupEventsCommand).callsFake(async (input: LookupEventsCommand['input']) => {
    try {
      await authorizeCommand('cloudtrail', new LookupEventsCommand(input));
    } catch (error) {
      refusals.push(error as Error);
      throw error;
    }
    answered++;
    return { Events: events() };
  });
  return { stub, refusals, answered: () => answered };
}
