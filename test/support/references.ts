/**
 * What a piece of text (a code comment, an inline code span of the docs) says about the
 * repository's files: the paths it names, and whether each names a file or folder of the working
 * tree. Used by the tests that keep comments and docs from citing files the repository lacks.
 */
import { posix } from 'node:path';
import ts from 'typescript';

/** File extensions that make a word a file name (`config.ts`, `operations.md`). */
const EXTENSIONS = 'ts|mts|cts|mjs|cjs|js|py|sh|md|json|ya?ml|toml';

/** Characters a path never follows: it is part of something longer (a glob, a placeholder, a URL). */
const BEFORE = String.raw`(?<![\w./@*<>{}$%~:\\-])`;
/** A path segment: what IAM, npm and this repository use in names. */
const SEGMENT = String.raw`[\w@+=-][\w@.+=-]*`;

/** URLs and the like are not repository paths. */
const URL = /\b[a-z][a-z0-9+.-]*:\/\/\S+/gi;

/**
 * The repository paths `text` names: words ending in a file extension (a path, a file name, a
 * `./` or `../` relative one), and paths under one of the repository's top-level folders. A word
 * with a placeholder or a wildcard (`lambdas/<step>/index.ts`, `*.test.ts`) names no one file and
 * is left out, as are npm packages (`@aws-sdk/client-iam`), URLs, product names such as Node.js,
 * and what a build writes (under cdk.out or node_modules).
 */
export function pathsIn(text: string, topLevel: readonly string[]): string[] {
  const prose = text.replace(URL, ' ');
  const found = new Set<string>();
  const file = new RegExp(
    String.raw`${BEFORE}((?:\.{1,2}/)*(?:${SEGMENT}/)*${SEGMENT}\.(?:${EXTENSIONS}))(?![\w/*<>{}-])`,
    'g',
  );
  for (const m of prose.matchAll(file)) {
    const path = m[1];
    // Node.js, Next.js: a capitalised word ending in .js with no folder is a product's name.
    if (path && !/^[A-Z][A-Za-z]*\.js$/.test(path)) found.add(path);
  }
  const tops = topLevel.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
  if (tops) {
    const folder = new RegExp(String.raw`${BEFORE}((?:${tops})/(?:${SEGMENT}/?)*)(?![\w/*<>{}-])`, 'g');
    for (const m of prose.matchAll(folder)) {
      const path = m[1]?.replace(/\.$/, '');
      // A path that ends in a file name was taken above, whole.
      if (path && ![...found].some((f) => f.startsWith(path) || path.startsWith(f))) found.add(path);
    }
  }
  return [...found].filter((p) => !GENERATED.some((g) => p === g || p.startsWith(`${g}/`)));
}

/** What a build or an install writes: named in comments as where output goes, never committed. */
const GENERATED = ['cdk.out', 'node_modules'];

export interface Tree {
  files: readonly string[];
  dirs: readonly string[];
}

/**
 * Whether `path`, named in the file `from` (both repository-relative), names a file or folder of
 * the tree: relative to the repository root, relative to `from`'s folder, or, for a partial path
 * (`lambdas/shared/keys.ts`, `keys.ts`), as the end of an existing path.
 */
export function resolves(path: string, from: string, tree: Tree): boolean {
  const clean = path.replace(/\/$/, '');
  const all = new Set([...tree.files, ...tree.dirs]);
  const candidates = [posix.normalize(clean), posix.join(posix.dirname(from), clean)];
  if (candidates.some((c) => all.has(c))) return true;
  if (clean.startsWith('.')) return false;
  for (const existing of all) if (existing.endsWith(`/${clean}`)) return true;
  return false;
}

export interface Comment {
  line: number;
  text: string;
}

/** The comments of a TypeScript or JavaScript file, as the compiler sees them (not strings, not regexes). */
export function scriptComments(fileName: string, source: string): Comment[] {
  const kind = /\.[mc]?js$/.test(fileName) ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true, kind);
  const seen = new Map<number, Comment>();
  const add = (ranges: readonly ts.CommentRange[] | undefined) => {
    for (const r of ranges ?? []) {
      if (seen.has(r.pos)) continue;
      seen.set(r.pos, {
        line: sf.getLineAndCharacterOfPosition(r.pos).line + 1,
        text: source.slice(r.pos, r.end),
      });
    }
  };
  const visit = (node: ts.Node) => {
    add(ts.getLeadingCommentRanges(source, node.getFullStart()));
    add(ts.getTrailingCommentRanges(source, node.getEnd()));
    for (const child of node.getChildren(sf)) visit(child);
  };
  visit(sf);
  return [...seen.values()].sort((a, b) => a.line - b.line);
}

/**
 * The comments of a shell or Python file: `#` to the end of the line outside quotes, and (Python)
 * triple-quoted strings, which serve as its docstrings.
 */
export function hashComments(source: string, python: boolean): Comment[] {
  const out: Comment[] = [];
  let line = 1;
  let i = 0;
  const lineAt = (from: number, to: number) => {
    for (let j = from; j < to; j++) if (source[j] === '\n') line++;
  };
  while (i < source.length) {
    const c = source[i];
    if (python && (source.startsWith('"""', i) || source.startsWith("'''", i))) {
      const quote = source.slice(i, i + 3);
      const end = source.indexOf(quote, i + 3);
      const stop = end === -1 ? source.length : end + 3;
      out.push({ line, text: source.slice(i, stop) });
      lineAt(i, stop);
      i = stop;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < source.length && source[j] !== c && source[j] !== '\n') j += source[j] === '\\' ? 2 : 1;
      lineAt(i, j + 1);
      i = j + 1;
    } else if (c === '#' && (python || i === 0 || /\s/.test(source[i - 1] ?? ' '))) {
      const end = source.indexOf('\n', i);
      const stop = end === -1 ? source.length : end;
      out.push({ line, text: source.slice(i, stop) });
      i = stop;
    } else {
      if (c === '\n') line++;
      i++;
    }
  }
  return out;
}
