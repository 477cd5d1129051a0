import { existsSync, readFileSync } from 'node:fs';
import {
  CreateAccessKeyCommand,
  CreateUserCommand,
  GetUserCommand,
  IAMClient,
  ListAccessKeysCommand,
  ListUsersCommand,
} from '@aws-sdk/client-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MotoServer, motoProblem, startMoto, startMotoWithClock } from '../../cli/emulator.ts';
import { ADMIN_USER, ANY_CREDENTIALS, AwsEnv, adminSetup, awsClient } from '../../support/aws.ts';
import { isRunning } from '../support/moto.ts';
import { parseRecording } from '../support/recorder.ts';

describe('startMoto', () => {
  it('serves on a free 127.0.0.1 port until stopped, then the process is gone', async () => {
    // Act
    const moto = await startMoto();
    const answer = await fetch(`${moto.endpoint}/moto-api/`);
    await moto.stop();

    // Assess
    expect(moto.endpoint).toBe(`http://127.0.0.1:${moto.port}`);
    expect(answer.status).toBe(200);
    expect(isRunning(moto.pid)).toBe(false);
    await expect(fetch(`${moto.endpoint}/moto-api/`)).rejects.toThrow();
  });

  it('fails clearly when python3 cannot be started', async () => {
    await expect(startMoto({ python: '/nonexistent/python3' })).rejects.toThrow(
      /could not start \/nonexistent\/python3 \(spawn \/nonexistent\/python3 ENOENT\); moto needs python3/,
    );
  });

  it('fails clearly when the server exits before answering (no moto for that python)', async () => {
    // `false` stands in for a Python without moto: it exits at once with status 1.
    await expect(startMoto({ python: 'false' })).rejects.toThrow(
      /moto server exited \(code 1\) before answering; is moto installed/,
    );
  });
});

describe('motoProblem', () => {
  it('finds nothing wrong with the python3 that has moto[server]', () => {
    expect(motoProblem('python3')).toBeNull();
  });

  it('names a python that does not exist and the pip command', () => {
    expect(motoProblem('/nonexistent/python3')).toBe(
      "/nonexistent/python3 was not found. The local AWS emulator is Python's moto server: install Python 3, " +
        'then python3 -m pip install "moto[server]>=5,<6"',
    );
  });
});

describe('startMotoWithClock', () => {
  it('creates keys in the past while the clock is moved, and leaves no process or clock file behind', async () => {
    // Prepare
    const moto = await startMotoWithClock();
    const iam = awsClient(IAMClient, moto.endpoint);
    // The clock file's path, from the server's environment (Linux).
    const clockPath = /MOTO_CLOCK_FILE=([^\0]+)/.exec(readFileSync(`/proc/${moto.pid}/environ`, 'utf8'))?.[1];

    try {
      // Act
      await iam.send(new CreateUserCommand({ UserName: 'old' }));
      moto.setOffsetDays(-100);
      await iam.send(new CreateAccessKeyCommand({ UserName: 'old' }));
      moto.setOffsetDays(0);
      const keys = await iam.send(new ListAccessKeysCommand({ UserName: 'old' }));

      // Assess
      const ageDays = (Date.now() - (keys.AccessKeyMetadata?.[0]?.CreateDate?.getTime() ?? 0)) / 86_400_000;
      expect(Math.round(ageDays)).toBe(100);
    } finally {
      iam.destroy();
      await moto.stop();
    }
    expect(isRunning(moto.pid)).toBe(false);
    expect(clockPath).toMatch(/rekey-moto-clock-/);
    expect(existsSync(clockPath ?? '')).toBe(false);
  });
});

describe('request recording', () => {
  it("gives each server a recording of its own: one server's requests never show in another's", async () => {
    // Prepare
    const [a, b] = await Promise.all([startMoto(), startMoto()]);
    const recorder = (moto: MotoServer, path: string, method = 'POST') =>
      fetch(`${moto.endpoint}/moto-api/recorder/${path}`, { method }).then((r) => r.text());
    try {
      for (const moto of [a, b]) {
        await recorder(moto, 'reset-recording');
        await recorder(moto, 'start-recording');
      }

      // Act: both record at once, only a is called.
      await awsClient(IAMClient, a.endpoint).send(new ListUsersCommand({}));
      for (const moto of [a, b]) await recorder(moto, 'stop-recording');

      // Assess
      const operations = async (moto: MotoServer) =>
        parseRecording(await recorder(moto, 'download-recording', 'GET')).map((r) => r.operation);
      expect(await operations(a)).toEqual(['ListUsers']);
      expect(await operations(b)).toEqual([]);
      expect(existsSync('moto_recording')).toBe(false);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe('moto auth and the admin identity', () => {
  let moto: MotoServer;
  beforeAll(async () => {
    moto = await startMoto();
  });
  afterAll(async () => {
    await moto.stop();
  });

  it('with auth on accepts only the admin, with auth off anybody', async () => {
    // Prepare
    const admin = await adminSetup(moto.endpoint);
    const asAdmin = awsClient(IAMClient, moto.endpoint, admin);
    const asAnybody = awsClient(IAMClient, moto.endpoint, ANY_CREDENTIALS);

    // Act
    await moto.enableAuth();
    const adminAnswer = await asAdmin.send(new GetUserCommand({ UserName: ADMIN_USER }));
    const anybodyError = await asAnybody
      .send(new GetUserCommand({ UserName: ADMIN_USER }))
      .catch((e: Error) => e);
    await moto.disableAuth();
    const anybodyAnswer = await asAnybody.send(new GetUserCommand({ UserName: ADMIN_USER }));

    // Assess
    expect(adminAnswer.User?.UserName).toBe(ADMIN_USER);
    expect(anybodyError).toBeInstanceOf(Error);
    expect((anybodyError as Error).name).toBe('InvalidClientTokenId');
    expect(anybodyAnswer.User?.UserName).toBe(ADMIN_USER);
  });

  it('reset forgets every resource', async () => {
    // Prepare
    await adminSetup(moto.endpoint).catch(() => undefined);

    // Act
    await moto.reset();

    // Assess
    const iam = awsClient(IAMClient, moto.endpoint);
    await expect(iam.send(new GetUserCommand({ UserName: ADMIN_USER }))).rejects.toThrow(/cannot be found/);
  });
});

describe('AwsEnv', () => {
  it('points the default chain at the endpoint and restores the previous environment', () => {
    // Prepare: a leftover session token from the shell must not reach the emulator.
    const outer = new AwsEnv('http://127.0.0.1:1', ANY_CREDENTIALS).apply();
    process.env.AWS_SESSION_TOKEN = 'a-real-session';
    const before = { ...process.env };
    const env = new AwsEnv('http://127.0.0.1:1234', {
      accessKeyId: 'AKIAEXAMPLE000000000',
      secretAccessKey: 's',
    });

    try {
      // Act
      env.apply();
      const applied = { ...process.env };
      env.restore();

      // Assess
      expect(applied).toMatchObject({
        AWS_ENDPOINT_URL: 'http://127.0.0.1:1234',
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE000000000',
        AWS_SECRET_ACCESS_KEY: 's',
      });
      expect(applied.AWS_SESSION_TOKEN).toBeUndefined();
      expect(process.env).toEqual(before);
    } finally {
      outer.restore();
    }
  });
});
