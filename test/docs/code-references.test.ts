/**
 * No code comment names a file the repository lacks. A comment that cites a path (a design
 * section, the module that does the work, the test that proves it) is read as a pointer; a
 * pointer to nothing sends the reader nowhere. Every path-like word of every comment in the
 * project's scripts is resolved against the working tree, whatever its layout.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, workingTree } from '../support/markdown.ts';
import { type Comment, hashComments, pathsIn, resolves, scriptComments } from '../support/references.ts';

const tree = workingTree();
const topLevel = [...new Set([...tree.files, ...tree.dirs].map((p) => p.split('/')[0] ?? ''))].filter((p) =>
  tree.dirs.includes(p),
);

/** A script without an extension is a shell script when its first line says so (`.ci/run`). */
const isShellScript = (path: string, source: string) =>
  path.endsWith('.sh') || (!/\.[^/]+$/.test(path) && /^#!.*\b(ba|z|da)?sh\b/.test(source));

function commentsOf(path: string): Comment[] {
  const source = readFileSync(join(REPO_ROOT, path), 'utf8');
  if (/\.(ts|mts|cts|mjs|cjs|js)$/.test(path)) return scriptComments(path, source);
  if (path.endsWith('.py')) return hashComments(source, true);
  if (isShellScript(path, source)) return hashComments(source, false);
  return [];
}

describe('paths named in code comments', () => {
  it('reads paths the way a reader does', () => {
    const tops = ['infra', 'lambdas', 'test', '.ci'];
    expect(pathsIn('see DESIGN.md and infra/config.ts (stepTimeoutSeconds)', tops)).toEqual([
      'DESIGN.md',
      'infra/config.ts',
    ]);
    expect(pathsIn('the tests under test/infra/, and .ci/run', tops)).toEqual(['test/infra/', '.ci/run']);
    expect(
      pathsIn(
        'lambdas/<step>/index.ts, *.test.ts, @aws-sdk/client-iam, aws-cdk-lib/aws-iam, https://x.y/z.md',
        tops,
      ),
    ).toEqual([]);
    const fake = { files: ['lambdas/shared/keys.ts', 'docs/design.md'], dirs: ['lambdas', 'lambdas/shared'] };
    expect(resolves('keys.ts', 'cli/main.ts', fake)).toBe(true);
    expect(resolves('shared/keys.ts', 'cli/main.ts', fake)).toBe(true);
    expect(resolves('./keys.ts', 'lambdas/shared/lock.ts', fake)).toBe(true);
    expect(resolves('docs/design.md', 'infra/app.ts', fake)).toBe(true);
    expect(resolves('DESIGN.md', 'infra/app.ts', fake)).toBe(false);
    expect(resolves('lambdas/shared/domain/keys.ts', 'infra/app.ts', fake)).toBe(false);
  });

  it('reads comments, not strings', () => {
    const ts = scriptComments(
      'x.ts',
      "// one.md\nconst a = '// two.md'; /* three.md */\nconst r = /\\/\\/ four.md/; // five.md\n",
    );
    expect(ts.map((c) => pathsIn(c.text, []))).toEqual([['one.md'], ['three.md'], ['five.md']]);
    const sh = hashComments('# one.md\necho \'# two.md\' "# three.md" $# # four.md\n', false);
    expect(sh.map((c) => c.text)).toEqual(['# one.md', '# four.md']);
    const py = hashComments('"""one.md"""\nx = "# two.md"  # three.md\n', true);
    expect(py.map((c) => c.text)).toEqual(['"""one.md"""', '# three.md']);
  });

  it('every one names a file or folder of the repository', () => {
    const scripts = tree.files.filter(
      (p) => /\.(ts|mts|cts|mjs|cjs|js|py|sh)$/.test(p) || (!/\.[^/]+$/.test(p) && !p.includes('fixtures')),
    );
    const missing: string[] = [];
    let cited = 0;
    for (const path of scripts) {
      for (const comment of commentsOf(path)) {
        for (const named of pathsIn(comment.text, topLevel)) {
          cited++;
          if (!resolves(named, path, tree)) missing.push(`${path}:${comment.line}: ${named}`);
        }
      }
    }
    expect(cited, 'the scan found no citation at all: it is blind').toBeGreaterThan(10);
    expect(missing, 'comments that name a file the repository lacks').toEqual([]);
  });
});
