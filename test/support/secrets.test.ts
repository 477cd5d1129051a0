import { describe, expect, it } from 'vitest';
import { expectNoSecrets, secretLeaks } from './secrets.ts';

const SECRET = 'tEsTsEcReT/DoNoTuSe+0123456789abcdefGHIJ';
const OTHER_SHAPED = 'AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/AB';

describe('the secret-leak scanner', () => {
  it('names each haystack a known secret reaches, in strings and in nested JSON', () => {
    const leaks = secretLeaks(
      { secrets: [SECRET] },
      { 'the logs': `x ${SECRET} y`, 'the events': [{ detail: { value: SECRET } }], 'the output': 'clean' },
    );
    expect(leaks).toEqual(['the logs', 'the events']);
  });

  it('counts a secret-shaped string only when asked to', () => {
    const haystacks = { 'the digest': `key ${OTHER_SHAPED} end` };
    expect(secretLeaks({ secrets: [SECRET] }, haystacks)).toEqual([]);
    expect(secretLeaks({ secrets: [SECRET], shaped: true }, haystacks)).toEqual(['the digest']);
    // 41 characters of the alphabet are no key: only exactly 40 count.
    expect(secretLeaks({ secrets: [SECRET], shaped: true }, { x: `${OTHER_SHAPED}C` })).toEqual([]);
  });

  it('fails a test on a leak, and refuses to scan for nothing', () => {
    expect(() => expectNoSecrets({ secrets: [SECRET] }, { 'the error': SECRET })).toThrow(
      /a secret value appears in the error/,
    );
    expect(() => expectNoSecrets({ secrets: [] }, { 'the error': SECRET })).toThrow(/blind/);
    expect(() => expectNoSecrets({ secrets: [SECRET] }, { 'the error': 'nothing' })).not.toThrow();
  });
});
