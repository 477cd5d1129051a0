import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { STOP_REASON_VALUES } from '../../../contract/metrics.ts';
import { outcomeMetrics, publishMetrics, rotationOutcomeMetric } from '../../../lambdas/shared/metrics.ts';
import { metricPoints } from '../../support/emf.ts';

/** What publishMetrics wrote to stdout while `act` ran, as data points. */
function written(act: () => void) {
  const chunks: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  });
  try {
    act();
  } finally {
    spy.mockRestore();
  }
  return metricPoints(chunks);
}

const point = (dimensions: Record<string, string>) => ({
  namespace: 'rekey',
  name: 'Rotations',
  unit: 'Count',
  dimensions: { service: 'rekey', ...dimensions },
  value: 1,
});

describe('rotation outcome metrics', () => {
  beforeEach(() => {
    vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'false');
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it.each([
    ['ROTATED', 'COMPLETED'],
    ['FAILED', 'FAILED'],
    ['ROLLED_BACK', 'ROLLED_BACK'],
  ] as const)('a %s outcome counts one rotation under Outcome %s, without its reason', (status, outcome) => {
    expect(
      written(() => publishMetrics(outcomeMetrics({ status, reason: 'VerifyFailed', message: 'm' }))),
    ).toEqual([point({ Outcome: outcome })]);
  });

  it('a stop is also counted by its reason; a reason outside the known set as Other', () => {
    const points = written(() =>
      publishMetrics([
        ...outcomeMetrics({ status: 'STOPPED', reason: 'UserExempt', message: 'm' }),
        ...outcomeMetrics({ status: 'STOPPED', reason: 'alice@example.com', message: 'm' }),
      ]),
    );
    expect(points).toEqual([
      point({ Outcome: 'STOPPED' }),
      point({ Outcome: 'STOPPED', Reason: 'UserExempt' }),
      point({ Outcome: 'STOPPED' }),
      point({ Outcome: 'STOPPED', Reason: 'Other' }),
    ]);
    expect(STOP_REASON_VALUES).toContain('OldKeyStillInUse');
    expect(STOP_REASON_VALUES).toContain('TwoActiveKeys');
  });

  it('a timed-out execution counts under TIMED_OUT; a dry run counts nothing', () => {
    expect(written(() => publishMetrics([rotationOutcomeMetric('TIMED_OUT')]))).toEqual([
      point({ Outcome: 'TIMED_OUT' }),
    ]);
    expect(outcomeMetrics({ status: 'DRY_RUN', message: 'm' })).toEqual([]);
  });
});
