/**
 * A line-based editor for the AWS shared credentials file (~/.aws/credentials).
 *
 * Why not an INI library: the ones on npm (ini, js-ini, ...) parse into an object and serialize it
 * back, which drops comments and blank lines and reorders keys. The file belongs to the person
 * or machine that consumes the key: only the lines holding one profile's keys may change, every
 * other byte must stay as it was. So this editor finds the profile's section and replaces (or
 * inserts) exactly those lines.
 *
 * It reads the file the way the AWS SDKs and CLI do (Python's configparser, which botocore uses):
 * `[name]` starts a section, `key = value` or `key: value` (key case-insensitive), lines starting
 * with `#` or `;` are comments, an indented line after a key continues its value.
 */

export interface ProfileKeys {
  accessKeyId: string;
  secretAccessKey: string;
}

export class CredentialsFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialsFileError';
  }
}

const ACCESS_KEY = 'aws_access_key_id';
const SECRET_KEY = 'aws_secret_access_key';
/** Temporary-credential keys: a leftover token next to long-term keys would break every request. */
const TOKEN_KEYS = ['aws_session_token', 'aws_security_token'];

const HEADER = /^\s*\[(.+)\]/;
const KEY_VALUE = /^([^\s=:#;[][^=:]*?)(\s*[=:]\s*)(.*)$/;
const COMMENT = /^\s*[#;]/;

/** A profile name this editor can write as a section header without changing its meaning. */
export function isValidProfileName(name: string): boolean {
  return name.length > 0 && name === name.trim() && !/[[\]\r\n]/.test(name);
}

interface Line {
  text: string;
  /** Section name when this is a header. */
  header?: string;
  /** Lower-cased key when this is a `key = value` line. */
  key?: string;
  /** True for an indented line that continues the previous key's value. */
  continuation?: boolean;
}

function parse(lines: string[]): Line[] {
  let inKey = false;
  return lines.map((text) => {
    if (text.trim() === '' || COMMENT.test(text)) {
      // A blank line or comment ends a value in configparser's default mode.
      inKey = false;
      return { text };
    }
    const header = HEADER.exec(text);
    if (header?.[1] !== undefined && !/^\s/.test(text)) {
      inKey = false;
      return { text, header: header[1].trim() };
    }
    if (/^\s/.test(text) && inKey) return { text, continuation: true };
    const kv = KEY_VALUE.exec(text.trim());
    if (kv?.[1] !== undefined) {
      inKey = true;
      return { text, key: kv[1].trim().toLowerCase() };
    }
    inKey = false;
    return { text };
  });
}

function split(text: string): { lines: string[]; eol: string; finalNewline: boolean } {
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const finalNewline = text.endsWith('\n');
  const body = finalNewline ? text.slice(0, text.endsWith('\r\n') ? -2 : -1) : text;
  return { lines: body === '' && !finalNewline ? [] : body.split(/\r?\n/), eol, finalNewline };
}

function sectionRange(parsed: Line[], profile: string): { start: number; end: number } | null {
  const headers = parsed.flatMap((line, index) => (line.header === profile ? [index] : []));
  if (headers.length > 1) {
    throw new CredentialsFileError(
      `profile [${profile}] appears ${headers.length} times; the AWS SDKs refuse such a file: merge them first`,
    );
  }
  const [start] = headers;
  if (start === undefined) return null;
  let end = start + 1;
  while (end < parsed.length && parsed[end]?.header === undefined) end++;
  return { start, end };
}

/** The keys a profile holds now (undefined when the profile or a key is missing). */
export function readProfileKeys(text: string, profile: string): Partial<ProfileKeys> {
  const parsed = parse(split(text).lines);
  const range = sectionRange(parsed, profile);
  if (!range) return {};
  const found: Partial<ProfileKeys> = {};
  for (let i = range.start + 1; i < range.end; i++) {
    const line = parsed[i];
    const value = line?.key ? (KEY_VALUE.exec(line.text.trim())?.[3] ?? '').trim() : undefined;
    if (line?.key === ACCESS_KEY && found.accessKeyId === undefined) found.accessKeyId = value;
    if (line?.key === SECRET_KEY && found.secretAccessKey === undefined) found.secretAccessKey = value;
  }
  return found;
}

/**
 * The file's text with the profile holding these keys: existing key lines are rewritten in place
 * (their `key = ` spelling kept), missing ones are added after the profile's last setting, a
 * session token in that profile is removed, and a missing profile is appended at the end. Every
 * other line, comment and blank line is kept byte for byte, line endings included.
 */
export function setProfileKeys(text: string, profile: string, keys: ProfileKeys): string {
  if (!isValidProfileName(profile)) throw new CredentialsFileError(`invalid profile name "${profile}"`);
  for (const value of [keys.accessKeyId, keys.secretAccessKey]) {
    if (!/^\S+$/.test(value)) throw new CredentialsFileError('a key value is empty or contains whitespace');
  }
  const { lines, eol, finalNewline } = split(text);
  const parsed = parse(lines);
  const wanted: Record<string, string> = {
    [ACCESS_KEY]: keys.accessKeyId,
    [SECRET_KEY]: keys.secretAccessKey,
  };
  const range = sectionRange(parsed, profile);

  if (!range) {
    const out = [...lines];
    if (out.length > 0 && out.at(-1)?.trim() !== '') out.push('');
    out.push(
      `[${profile}]`,
      `${ACCESS_KEY} = ${keys.accessKeyId}`,
      `${SECRET_KEY} = ${keys.secretAccessKey}`,
    );
    return `${out.join(eol)}${eol}`;
  }

  const out: string[] = [];
  const written = new Set<string>();
  let dropping = false;
  // Where missing keys go: after the last setting (or the header), before trailing blanks/comments.
  let insertAt = range.start + 1;
  for (let i = 0; i < parsed.length; i++) {
    const line = parsed[i] as Line;
    const inSection = i > range.start && i < range.end;
    if (!inSection) {
      out.push(line.text);
      continue;
    }
    if (line.continuation) {
      if (!dropping) {
        out.push(line.text);
        insertAt = out.length;
      }
      continue;
    }
    dropping = false;
    const key = line.key;
    if (key !== undefined && (key in wanted || TOKEN_KEYS.includes(key))) {
      // The key's value (and any continuation of it) is replaced; a repeated key is dropped.
      dropping = true;
      const value = wanted[key];
      if (value !== undefined && !written.has(key)) {
        const kv = KEY_VALUE.exec(line.text.trim());
        const indent = /^\s*/.exec(line.text)?.[0] ?? '';
        out.push(`${indent}${kv?.[1] ?? key}${kv?.[2] ?? ' = '}${value}`);
        written.add(key);
        insertAt = out.length;
      }
      continue;
    }
    out.push(line.text);
    if (key !== undefined) insertAt = out.length;
  }
  const missing = Object.keys(wanted)
    .filter((key) => !written.has(key))
    .map((key) => `${key} = ${wanted[key]}`);
  out.splice(insertAt, 0, ...missing);
  return out.join(eol) + (finalNewline ? eol : '');
}
