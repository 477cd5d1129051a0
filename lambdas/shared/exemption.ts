/**
 * Exemptions are user tags: key = the configured exempt tag (default `rekey:exempt`), value = a
 * reason with an optional expiry `until=YYYY-MM-DD` (IAM tag values allow letters, digits, spaces
 * and _ . : / = + - @), e.g. `until=2027-01-31 vendor SMTP relay, ticket SEC-12`. An exemption
 * without a date holds until the tag is removed; an expired one no longer exempts.
 */
export interface Exemption {
  reason: string;
  until: Date | null;
  expired: boolean;
}

const UNTIL = /until=(\d{4}-\d{2}-\d{2})/;

export function parseExemption(value: string, now: Date): Exemption {
  const match = UNTIL.exec(value);
  const reason = value.replace(UNTIL, '').trim() || 'no reason given';
  if (!match?.[1]) return { reason, until: null, expired: false };
  // The exemption holds through the whole named day (UTC).
  const until = new Date(`${match[1]}T23:59:59.999Z`);
  // Date rolls impossible days over (Feb 30 -> Mar 2): only a date that round-trips is readable.
  if (Number.isNaN(until.getTime()) || until.toISOString().slice(0, 10) !== match[1])
    return { reason: `${reason} (unreadable expiry "${match[1]}")`, until: null, expired: true };
  return { reason, until, expired: until.getTime() < now.getTime() };
}
