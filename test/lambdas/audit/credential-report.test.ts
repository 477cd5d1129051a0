import { GenerateCredentialReportCommand, GetCredentialReportCommand, IAMClient } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { CallCounter } from '../../../lambdas/audit/calls.ts';
import {
  CredentialReportTimeout,
  CredentialReportUnreadable,
  fetchCredentialReport,
  parseCredentialReport,
  REPORT_POLL_POLICY,
} from '../../../lambdas/audit/credential-report.ts';
import { awsError, fakeClock, rejectionOf } from '../../support/lambda-fixtures.ts';
import { ACCOUNT, ago, HEADER, NOW, reportCsv } from './helpers.ts';

const iam = new IAMClient({ region: 'us-east-1' });
const iamMock = mockClient(iam);

beforeEach(() => {
  iamMock.reset();
});

const CSV = reportCsv([
  { user: '<root_account>', key1: { active: false, created: 800 } },
  { user: 'alice', key1: { created: 100, used: 1 }, key2: { active: false, created: 10 } },
  { user: 'bob' },
]);
const content = (csv: string) => new TextEncoder().encode(csv);

describe('parseCredentialReport', () => {
  it('types every row, maps N/A and not_supported to null, and marks the root row', () => {
    // Act
    const rows = parseCredentialReport(CSV);

    // Assess
    expect(rows).toHaveLength(3);
    const [root, alice, bob] = rows;
    expect(root).toMatchObject({ user: '<root_account>', arn: `arn:aws:iam::${ACCOUNT}:root`, isRoot: true });
    expect(root?.keys[0]).toEqual({
      slot: 1,
      active: false,
      lastRotated: new Date(
        ago(800)
          .toISOString()
          .replace(/\.\d{3}Z$/, 'Z'),
      ),
      lastUsedDate: null,
      lastUsedRegion: null,
      lastUsedService: null,
    });
    expect(alice?.isRoot).toBe(false);
    expect(alice?.keys[0]).toMatchObject({
      slot: 1,
      active: true,
      lastUsedRegion: 'us-east-1',
      lastUsedService: 's3',
    });
    expect(alice?.keys[0].lastUsedDate?.toISOString()).toBe(ago(1).toISOString());
    expect(alice?.keys[1]).toMatchObject({ slot: 2, active: false, lastUsedDate: null });
    expect(bob?.keys.map((k) => [k.active, k.lastRotated])).toEqual([
      [false, null],
      [false, null],
    ]);
  });

  it('reads quoted fields, CRLF line ends and a byte-order mark', () => {
    const csv = `\uFEFF${HEADER}\r\n"carol",arn:aws:iam::${ACCOUNT}:user/carol,2025-01-01T00:00:00+00:00,false,N/A,N/A,not_supported,false,true,2025-01-02T03:04:05+00:00,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\r\n`;
    const [carol] = parseCredentialReport(csv);
    expect(carol?.user).toBe('carol');
    expect(carol?.keys[0].lastRotated?.toISOString()).toBe('2025-01-02T03:04:05.000Z');
  });

  it('names a missing column and an unreadable date', () => {
    expect(() => parseCredentialReport('user,arn\nalice,arn:aws:iam::1:user/alice\n')).toThrow(
      /missing column\(s\) user_creation_time, access_key_1_active/,
    );
    const bad = CSV.replace(/(alice,[^,]+,[^,]+,[^,]+,[^,]+,[^,]+,[^,]+,[^,]+,true,)[^,]+/, '$1yesterday');
    const error = (() => {
      try {
        parseCredentialReport(bad);
      } catch (e) {
        return e as Error;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(CredentialReportUnreadable);
    expect(error?.name).toBe('CredentialReportUnreadable');
    expect(error?.message).toContain('row "alice": access_key_1_last_rotated is not a date');
  });

  it('returns no rows for a header-only report', () => {
    expect(parseCredentialReport(`${HEADER}\n`)).toEqual([]);
  });
});

describe('fetchCredentialReport', () => {
  const deps = () => ({ iam, clock: fakeClock(), calls: new CallCounter() });

  it('gets the report at once when generation answers COMPLETE (a report under 4 hours old)', async () => {
    // Prepare
    iamMock.on(GenerateCredentialReportCommand).resolves({ State: 'COMPLETE' });
    iamMock
      .on(GetCredentialReportCommand)
      .resolves({ Content: content(CSV), ReportFormat: 'text/csv', GeneratedTime: NOW });
    const d = deps();

    // Act
    const report = await fetchCredentialReport(d);

    // Assess
    expect(report.generatedTime).toEqual(NOW);
    expect(report.rows.map((r) => r.user)).toEqual(['<root_account>', 'alice', 'bob']);
    expect(iamMock).toHaveReceivedCommandTimes(GenerateCredentialReportCommand, 1);
    expect(iamMock).toHaveReceivedCommandWith(GenerateCredentialReportCommand, {});
    expect(iamMock).toHaveReceivedCommandWith(GetCredentialReportCommand, {});
    expect(d.clock.sleep).not.toHaveBeenCalled();
    expect(d.calls.toJSON()).toEqual({ GenerateCredentialReport: 1, GetCredentialReport: 1 });
  });

  it('polls generation STARTED -> INPROGRESS -> COMPLETE with growing waits', async () => {
    iamMock
      .on(GenerateCredentialReportCommand)
      .resolvesOnce({
        State: 'STARTED',
        Description: 'No report exists. Starting a new report generation task',
      })
      .resolvesOnce({ State: 'INPROGRESS' })
      .resolves({ State: 'COMPLETE' });
    iamMock.on(GetCredentialReportCommand).resolves({ Content: content(CSV), ReportFormat: 'text/csv' });
    const d = deps();

    const report = await fetchCredentialReport(d);

    expect(report.rows).toHaveLength(3);
    expect(iamMock).toHaveReceivedCommandTimes(GenerateCredentialReportCommand, 3);
    expect(d.clock.sleep.mock.calls.map(([ms]) => ms)).toEqual([
      REPORT_POLL_POLICY.firstDelayMs,
      REPORT_POLL_POLICY.firstDelayMs * REPORT_POLL_POLICY.factor,
    ]);
  });

  it('waits and asks again when generation is throttled (LimitExceeded) or the API throttles', async () => {
    iamMock
      .on(GenerateCredentialReportCommand)
      .rejectsOnce(awsError('LimitExceededException'))
      .rejectsOnce(awsError('Throttling'))
      .resolves({ State: 'COMPLETE' });
    iamMock
      .on(GetCredentialReportCommand)
      .rejectsOnce(awsError('ThrottlingException'))
      .resolves({ Content: content(CSV) });
    const d = deps();

    await fetchCredentialReport(d);

    expect(iamMock).toHaveReceivedCommandTimes(GenerateCredentialReportCommand, 3);
    expect(iamMock).toHaveReceivedCommandTimes(GetCredentialReportCommand, 2);
    expect(d.clock.sleep).toHaveBeenCalledTimes(3);
    expect(d.calls.total).toBe(5);
  });

  it('recognises IAM wire codes too (LimitExceeded, ReportInProgress)', async () => {
    const limit = Object.assign(awsError('IAMServiceException'), { Code: 'LimitExceeded' });
    const inProgress = Object.assign(awsError('IAMServiceException'), { Code: 'ReportInProgress' });
    iamMock.on(GenerateCredentialReportCommand).rejectsOnce(limit).resolves({ State: 'COMPLETE' });
    iamMock
      .on(GetCredentialReportCommand)
      .rejectsOnce(inProgress)
      .resolves({ Content: content(CSV) });

    await fetchCredentialReport(deps());

    expect(iamMock).toHaveReceivedCommandTimes(GenerateCredentialReportCommand, 2);
    expect(iamMock).toHaveReceivedCommandTimes(GetCredentialReportCommand, 2);
  });

  it('gets again on ReportInProgress without generating again', async () => {
    iamMock.on(GenerateCredentialReportCommand).resolves({ State: 'COMPLETE' });
    iamMock
      .on(GetCredentialReportCommand)
      .rejectsOnce(awsError('CredentialReportNotReadyException'))
      .rejectsOnce(awsError('CredentialReportNotReadyException'))
      .resolves({ Content: content(CSV) });

    await fetchCredentialReport(deps());

    expect(iamMock).toHaveReceivedCommandTimes(GenerateCredentialReportCommand, 1);
    expect(iamMock).toHaveReceivedCommandTimes(GetCredentialReportCommand, 3);
  });

  it.each([
    ['CredentialReportNotPresentException', 'ReportNotPresent'],
    ['CredentialReportExpiredException', 'ReportExpired'],
  ])('generates again on %s (%s)', async (name) => {
    iamMock.on(GenerateCredentialReportCommand).resolves({ State: 'COMPLETE' });
    iamMock
      .on(GetCredentialReportCommand)
      .rejectsOnce(awsError(name))
      .resolves({ Content: content(CSV) });
    const d = deps();

    const report = await fetchCredentialReport(d);

    expect(report.rows).toHaveLength(3);
    expect(iamMock).toHaveReceivedCommandTimes(GenerateCredentialReportCommand, 2);
    expect(iamMock).toHaveReceivedCommandTimes(GetCredentialReportCommand, 2);
    expect(d.clock.sleep).toHaveBeenCalledTimes(1);
  });

  it('gives up with CredentialReportTimeout once the wait budget is spent, naming the last state', async () => {
    iamMock.on(GenerateCredentialReportCommand).resolves({ State: 'INPROGRESS' });
    const d = deps();

    const error = await rejectionOf(fetchCredentialReport(d, { maxWaitMs: 30_000 }));

    expect(error).toBeInstanceOf(CredentialReportTimeout);
    expect(error.name).toBe('CredentialReportTimeout');
    expect(error.message).toMatch(/not available after 30 s \(last: report generation INPROGRESS\)/);
    const slept = d.clock.sleep.mock.calls.reduce((sum, [ms]) => sum + ms, 0);
    expect(slept).toBe(30_000);
    expect(iamMock).not.toHaveReceivedCommand(GetCredentialReportCommand);
  });

  it('rethrows other errors at once (AccessDenied is not worth waiting for)', async () => {
    iamMock.on(GenerateCredentialReportCommand).rejects(awsError('AccessDenied'));
    const d = deps();
    await expect(fetchCredentialReport(d)).rejects.toThrow(/AccessDenied/);
    expect(d.clock.sleep).not.toHaveBeenCalled();
  });

  it('refuses a report that is not CSV', async () => {
    iamMock.on(GenerateCredentialReportCommand).resolves({ State: 'COMPLETE' });
    iamMock
      .on(GetCredentialReportCommand)
      .resolves({ Content: content('{}'), ReportFormat: 'application/json' as 'text/csv' });
    await expect(fetchCredentialReport(deps())).rejects.toThrow(CredentialReportUnreadable);
  });
});
