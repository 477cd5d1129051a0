/**
 * The README and every page of docs/ point only at what exists: each relative link at a file or
 * folder of the repository (and each #anchor at a heading of its document), each path named in
 * inline code at a file or folder of the working tree. The pages describe the code by its paths,
 * so a moved or renamed file fails here until its page follows it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { anchors, codeSpans, links, REPO_ROOT, slug, workingTree } from '../support/markdown.ts';
import { pathsIn, resolves } from '../support/references.ts';

const pages = [
  'README.md',
  ...readdirSync(join(REPO_ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
];
const read = (page: string) => readFileSync(join(REPO_ROOT, page), 'utf8');
const tree = workingTree();
const topLevel = tree.dirs.filter((d) => !d.includes('/'));

describe('the Markdown helpers', () => {
  it('give headings the anchors GitHub gives them', () => {
    expect(slug('Quiet-since Q and the 15-minute grace')).toBe('quiet-since-q-and-the-15-minute-grace');
    expect(slug('`rekey audit`: the same scan from your machine')).toBe(
      'rekey-audit-the-same-scan-from-your-machine',
    );
    expect(slug('`OldKeyStillInUse`')).toBe('oldkeystillinuse');
    expect(slug('Events, and routing them to Slack')).toBe('events-and-routing-them-to-slack');
    expect([...anchors('# A\n## B\n```\n# not a heading\n```\n## B\n')]).toEqual(['a', 'b', 'b-1']);
  });

  it('find links in prose, not in code', () => {
    const found = links('[a](x.md#y) `[b](no.md)` ![c](img.png)\n```\n[d](no.md)\n```\n[ref]: ref.md\n');
    expect(found.map((l) => l.target)).toEqual(['x.md#y', 'img.png', 'ref.md']);
  });
});

describe.each(pages)('%s', (page) => {
  const markdown = read(page);

  it('has only relative links that resolve to a file and, with an #anchor, a heading of it', () => {
    const broken: string[] = [];
    for (const { line, target } of links(markdown)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
      const [path = '', anchor] = target.split('#');
      const file = path === '' ? join(REPO_ROOT, page) : join(REPO_ROOT, dirname(page), decodeURI(path));
      const where = relative(REPO_ROOT, file).split(sep).join('/');
      if (where.startsWith('..') || !existsSync(file)) {
        broken.push(`${page}:${line}: ${target} (no ${where})`);
        continue;
      }
      if (anchor === undefined) continue;
      if (!statSync(file).isFile() || !file.endsWith('.md')) {
        broken.push(`${page}:${line}: ${target} (an anchor into a file that is not Markdown)`);
      } else if (!anchors(readFileSync(file, 'utf8')).has(anchor)) {
        broken.push(`${page}:${line}: ${target} (no heading #${anchor} in ${where})`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('names in inline code only paths that exist', () => {
    const missing: string[] = [];
    for (const { line, code } of codeSpans(markdown)) {
      for (const path of pathsIn(code, topLevel)) {
        if (!resolves(path, page, tree)) missing.push(`${page}:${line}: ${path}`);
      }
    }
    expect(missing).toEqual([]);
  });
});

it('every page of docs/ is linked from the README', () => {
  const linked = new Set(links(read('README.md')).map((l) => l.target.split('#')[0]));
  expect(pages.filter((p) => p !== 'README.md' && !linked.has(p))).toEqual([]);
});
