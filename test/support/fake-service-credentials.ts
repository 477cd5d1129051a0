/**
 * A stateful stand-in for IAM's service-specific credential API, which the moto emulator does not
 * implement. It enforces what IAM enforces: at most two credentials per user and service
 * (LimitExceededException with IAM's message), Active/Inactive statuses, NoSuchEntityException for
 * an unknown id; it generates ids (ACCA...), service user names (<user>-at-<account>) and
 * passwords, and remembers every password it ever issued so tests can prove none leaked.
 *
 * `installOn(client)` mocks the SDK client with aws-sdk-client-mock: the four service-specific
 * commands go to the fake, every other command is passed through to the client's real `send`
 * (captured before mocking), i.e. to moto. Inside a handler invocation the fake's commands are
 * first put to the invocation's authorization check (the mock bypasses the client's middleware),
 * so a role without the action, or scoped away from the user, fails as it would in AWS.
 */
import { randomBytes } from 'node:crypto';
import {
  CreateServiceSpecificCredentialCommand,
  DeleteServiceSpecificCredentialCommand,
  type IAMClient,
  LimitExceededException,
  ListServiceSpecificCredentialsCommand,
  NoSuchEntityException,
  type ServiceOutputTypes,
  type ServiceSpecificCredentialMetadata,
  UpdateServiceSpecificCredentialCommand,
} from '@aws-sdk/client-iam';
import { type AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import { authorizeCommand } from '../../lambdas/shared/clients/invocation.ts';
import { ACCOUNT } from '../../support/constants.ts';

export interface FakeCredential {
  userName: string;
  serviceName: string;
  id: string;
  serviceUserName: string;
  password: string;
  status: 'Active' | 'Inactive';
  createDate: Date;
}

const PER_USER_AND_SERVICE = 2;
const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function randomId(): string {
  const bytes = randomBytes(17);
  return `ACCA${[...bytes].map((b) => ALPHANUMERIC[b % ALPHANUMERIC.length]).join('')}`;
}

type Command = { input: Record<string, unknown>; constructor: { name: string } };

/** The commands the fake answers (IAM's service-specific credential API). */
const FAKED = [
  ListServiceSpecificCredentialsCommand,
  CreateServiceSpecificCredentialCommand,
  UpdateServiceSpecificCredentialCommand,
  DeleteServiceSpecificCredentialCommand,
];

export class FakeServiceCredentials {
  private credentials: FakeCredential[] = [];
  /** Every password issued, deleted ones included. */
  readonly passwords: string[] = [];
  /** Create, Update and Delete calls, in order, as `Name id-or-service`. */
  readonly mutations: string[] = [];
  /** The most credentials one user ever held for one service. */
  maxPerUserAndService = 0;
  /** The next N creates take effect but lose their response (a socket reset after IAM applied them). */
  loseCreateResponses = 0;

  /** A credential that exists before rekey runs (created "by hand"). */
  seed(
    userName: string,
    serviceName: string,
    options: { status?: 'Active' | 'Inactive'; ageDays?: number } = {},
  ) {
    const created = this.create(userName, serviceName);
    created.status = options.status ?? 'Active';
    created.createDate = new Date(Date.now() - (options.ageDays ?? 100) * 86_400_000);
    this.mutations.pop();
    return created;
  }

  list(userName?: string, serviceName?: string): FakeCredential[] {
    return this.credentials.filter(
      (c) =>
        (userName === undefined || c.userName === userName) &&
        (serviceName === undefined || c.serviceName === serviceName),
    );
  }

  /** Everything a mutating call could change, for before/after comparisons. */
  snapshot(): string {
    return JSON.stringify(this.credentials.map(({ password: _p, ...c }) => c));
  }

  /** Answers one of the four commands, or returns undefined for any other command. */
  handle(command: Command): Promise<unknown> | undefined {
    const input = command.input;
    if (command instanceof ListServiceSpecificCredentialsCommand) {
      const found = this.list(input.UserName as string, input.ServiceName as string | undefined);
      const metadata: ServiceSpecificCredentialMetadata[] = found.map((c) => ({
        UserName: c.userName,
        Status: c.status,
        ServiceUserName: c.serviceUserName,
        CreateDate: c.createDate,
        ServiceSpecificCredentialId: c.id,
        ServiceName: c.serviceName,
      }));
      return Promise.resolve({ ServiceSpecificCredentials: metadata, IsTruncated: false });
    }
    if (command instanceof CreateServiceSpecificCredentialCommand) {
      const userName = input.UserName as string;
      const serviceName = input.ServiceName as string;
      if (this.list(userName, serviceName).length >= PER_USER_AND_SERVICE) {
        return Promise.reject(
          new LimitExceededException({
            message: `Cannot exceed quota for ServiceSpecificCredentialsPerUserPerService: ${PER_USER_AND_SERVICE}`,
            $metadata: { httpStatusCode: 409 },
          }),
        );
      }
      const c = this.create(userName, serviceName);
      if (this.loseCreateResponses > 0) {
        this.loseCreateResponses--;
        const lost = new Error('socket hang up after the request was applied');
        lost.name = 'ECONNRESET';
        return Promise.reject(lost);
      }
      return Promise.resolve({
        ServiceSpecificCredential: {
          CreateDate: c.createDate,
          ServiceName: c.serviceName,
          ServiceUserName: c.serviceUserName,
          ServicePassword: c.password,
          ServiceSpecificCredentialId: c.id,
          UserName: c.userName,
          Status: c.status,
        },
      });
    }
    if (command instanceof UpdateServiceSpecificCredentialCommand) {
      const c = this.find(input.UserName as string, input.ServiceSpecificCredentialId as string);
      if (!c) return Promise.reject(this.noSuchEntity(input.ServiceSpecificCredentialId as string));
      c.status = input.Status as 'Active' | 'Inactive';
      this.mutations.push(`Update ${c.id} ${c.status}`);
      return Promise.resolve({});
    }
    if (command instanceof DeleteServiceSpecificCredentialCommand) {
      const c = this.find(input.UserName as string, input.ServiceSpecificCredentialId as string);
      if (!c) return Promise.reject(this.noSuchEntity(input.ServiceSpecificCredentialId as string));
      this.credentials = this.credentials.filter((other) => other !== c);
      this.mutations.push(`Delete ${c.id}`);
      return Promise.resolve({});
    }
    return undefined;
  }

  /** Mocks `client` (the handlers' IAM singleton): these commands to the fake, the rest to moto. */
  installOn(client: IAMClient): AwsClientStub<IAMClient> {
    const realSend = client.send.bind(client) as (command: unknown, ...rest: unknown[]) => Promise<unknown>;
    const stub = mockClient(client);
    stub.send.callsFake(async (command: unknown) => {
      if (!FAKED.some((faked) => command instanceof faked))
        return realSend(command) as Promise<ServiceOutputTypes>;
      await authorizeCommand('iam', command as Command);
      return this.handle(command as Command) as Promise<ServiceOutputTypes>;
    });
    return stub;
  }

  private create(userName: string, serviceName: string): FakeCredential {
    const c: FakeCredential = {
      userName,
      serviceName,
      id: randomId(),
      serviceUserName: `${userName}-at-${ACCOUNT}`,
      password: randomBytes(30).toString('base64'),
      status: 'Active',
      createDate: new Date(),
    };
    this.credentials.push(c);
    this.passwords.push(c.password);
    this.mutations.push(`Create ${serviceName}`);
    this.maxPerUserAndService = Math.max(this.maxPerUserAndService, this.list(userName, serviceName).length);
    return c;
  }

  private find(userName: string, id: string): FakeCredential | undefined {
    return this.credentials.find((c) => c.userName === userName && c.id === id);
  }

  private noSuchEntity(id: string): NoSuchEntityException {
    return new NoSuchEntityException({
      message: `The Service Specific Credential with id ${id} cannot be found.`,
      $metadata: { httpStatusCode: 404 },
    });
  }
}
