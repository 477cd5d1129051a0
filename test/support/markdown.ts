/**
 * Just enough Markdown for the documentation tests: the anchors GitHub gives a document's
 * headings, and the links and inline code spans of its prose (fenced code blocks left out).
 */
import { readdirSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

/** The repository root (this file is test/support/markdown.ts). */
export const REPO_ROOT = join(import.meta.dirname, '..', '..');

/** Folders that are not the project's own files: installed, generated or version control. */
export const NOT_PROJECT = new Set(['node_modules', 'cdk.out', '.git', 'coverage']);

/** Every file and folder of the working tree, as repository-relative paths with '/' separators. */
export function workingTree(root: string = REPO_ROOT): { files: string[]; dirs: string[] } {
  const files: string[] = [];
  const dirs: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (NOT_PROJECT.has(entry.name)) continue;
      const path = join(dir, entry.name);
      const rel = relative(root, path).split(sep).join('/');
      if (entry.isDirectory()) {
        dirs.push(rel);
        walk(path);
      } else files.push(rel);
    }
  };
  walk(root);
  return { files, dirs };
}

/** The document's lines outside fenced code blocks, each with its 1-based line number. */
export function proseLines(markdown: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let fence: string | null = null;
  markdown.split('\n').forEach((text, i) => {
    const marker = /^\s*(`{3,}|~{3,})/.exec(text)?.[1];
    if (marker && (fence === null || marker.startsWith(fence))) {
      fence = fence === null ? marker : null;
      return;
    }
    if (fence === null) out.push({ line: i + 1, text });
  });
  return out;
}

/**
 * GitHub's anchor for a heading's text: lower case, punctuation dropped (letters, digits, '_',
 * '-' and spaces stay), each space a '-'. Code spans keep their text, links their label.
 */
export function slug(heading: string): string {
  const text = heading
    .replace(/`([^`]*)`/g, '$1')
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

/** Every anchor of a document, a repeated heading's with GitHub's `-1`, `-2`, ... */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const { text } of proseLines(markdown)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text)?.[1];
    if (heading === undefined) continue;
    const base = slug(heading);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  return result;
}

/** A line without its code spans (a link inside backticks is no link). */
const withoutCode = (text: string) => text.replace(/`+[^`]*`+/g, '');

/** The targets of the document's links and images, inline and reference-style, with their lines. */
export function links(markdown: string): { line: number; target: string }[] {
  const out: { line: number; target: string }[] = [];
  for (const { line, text } of proseLines(markdown)) {
    const prose = withoutCode(text);
    for (const m of prose.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g)) {
      out.push({ line, target: m[1] ?? '' });
    }
    const definition = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/.exec(prose);
    if (definition?.[1]) out.push({ line, target: definition[1] });
  }
  return out;
}

/** The inline code spans of the document's prose, with their lines. */
export function codeSpans(markdown: string): { line: number; code: string }[] {
  const out: { line: number; code: string }[] = [];
  for (const { line, text } of proseLines(markdown)) {
    for (const m of text.matchAll(/(`+)([^`]+?)\1(?!`)/g)) out.push({ line, code: (m[2] ?? '').trim() });
  }
  return out;
}
