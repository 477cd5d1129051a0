/**
 * The one secret-leak scanner of the tests: where, among named haystacks (strings, or anything
 * JSON-serializable: an execution history, logs, events, a CLI's output), a secret value occurs.
 * A test that knows every secret of its world (the workflow tests, the campaign) looks for those
 * values; a unit test of made-up keys also refuses anything shaped like a secret access key
 * (`shaped`), so a key it did not make up cannot slip through either.
 */
import { expect } from 'vitest';

/** 40 characters of a secret access key's alphabet, not part of a longer such run. */
const SECRET_SHAPE = /(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])/;

export interface SecretScan {
  /** The secret values to look for. */
  readonly secrets: readonly string[];
  /** Also count any secret-shaped string as a leak. @default false */
  readonly shaped?: boolean;
}

const textOf = (value: unknown) => (typeof value === 'string' ? value : (JSON.stringify(value) ?? ''));

/** The names of the haystacks in which a secret value (or, with `shaped`, a secret-shaped string) occurs. */
export function secretLeaks(scan: SecretScan, haystacks: Record<string, unknown>): string[] {
  return Object.entries(haystacks)
    .filter(([, value]) => {
      const text = textOf(value);
      return (
        scan.secrets.some((secret) => text.includes(secret)) ||
        (scan.shaped === true && SECRET_SHAPE.test(text))
      );
    })
    .map(([where]) => where);
}

/** Fails the test, naming each haystack a secret reached. */
export function expectNoSecrets(scan: SecretScan, haystacks: Record<string, unknown>): void {
  expect(scan.secrets.length, 'the scan looks for no secret: it is blind').toBeGreaterThan(0);
  const leaks = secretLeaks(scan, haystacks);
  expect(leaks, `a secret value appears in ${leaks.join(', ')}`).toEqual([]);
}
