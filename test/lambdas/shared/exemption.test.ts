import { describe, expect, it } from 'vitest';
import { parseExemption } from '../../../lambdas/shared/exemption.ts';
import { NOW } from '../../support/lambda-fixtures.ts';

describe('parseExemption', () => {
  it('an exemption without a date holds until the tag is removed', () => {
    expect(parseExemption('vendor SMTP relay, ticket SEC-12', NOW)).toEqual({
      reason: 'vendor SMTP relay, ticket SEC-12',
      until: null,
      expired: false,
    });
  });

  it('an empty tag value still exempts, with "no reason given"', () => {
    expect(parseExemption('   ', NOW)).toEqual({ reason: 'no reason given', until: null, expired: false });
  });

  it('a future date holds through the end of that day (UTC) and is removed from the reason', () => {
    expect(parseExemption('until=2027-01-31 vendor SMTP relay', NOW)).toEqual({
      reason: 'vendor SMTP relay',
      until: new Date('2027-01-31T23:59:59.999Z'),
      expired: false,
    });
  });

  it('a date equal to today still holds (the whole day counts)', () => {
    // NOW is 2026-03-01T12:00Z
    expect(parseExemption('until=2026-03-01 migration', NOW).expired).toBe(false);
  });

  it('a past date no longer exempts', () => {
    expect(parseExemption('until=2026-02-28 migration', NOW)).toEqual({
      reason: 'migration',
      until: new Date('2026-02-28T23:59:59.999Z'),
      expired: true,
    });
  });

  it('a date with only the until token gets "no reason given"', () => {
    expect(parseExemption('until=2027-01-31', NOW).reason).toBe('no reason given');
  });

  it('an unreadable date (month 13) is treated as expired and says so in the reason', () => {
    expect(parseExemption('until=2027-13-45 migration', NOW)).toEqual({
      reason: 'migration (unreadable expiry "2027-13-45")',
      until: null,
      expired: true,
    });
  });

  it('a date not in YYYY-MM-DD form is not an expiry at all: the exemption holds', () => {
    expect(parseExemption('until=31/01/2027 migration', NOW)).toEqual({
      reason: 'until=31/01/2027 migration',
      until: null,
      expired: false,
    });
  });

  it('an impossible calendar date (Feb 30) is reported as unreadable, not rolled over', () => {
    expect(parseExemption('until=2027-02-30 migration', NOW)).toEqual({
      reason: 'migration (unreadable expiry "2027-02-30")',
      until: null,
      expired: true,
    });
  });
});
