/**
 * contract/ is what infra, the Lambdas and the CLI share. It must import no AWS SDK, directly or
 * through anything it imports: a lint rule (biome.json, noRestrictedImports) sees only each file's
 * own imports, and misses contract -> some module -> @aws-sdk. This test bundles every contract
 * module with esbuild and reads the import graph from its metafile.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CONTRACT = join(ROOT, 'contract');

/** The inputs of one esbuild bundle of `entryPoints`, as paths relative to the repository. */
async function bundleInputs(entryPoints: string[]): Promise<string[]> {
  const result = await build({
    entryPoints,
    bundle: true,
    write: false,
    metafile: true,
    platform: 'node',
    format: 'esm',
    outdir: join(ROOT, 'cdk.out', 'contract-imports'),
    logLevel: 'silent',
  });
  return Object.keys(result.metafile.inputs);
}

const FORBIDDEN = /(^|\/)node_modules\/(@aws-sdk|@smithy|aws-cdk-lib|constructs)\//;

describe('contract/', () => {
  it('reaches no AWS SDK, Smithy or CDK module, directly or transitively, and nothing outside contract/ but zod', async () => {
    // Prepare
    const modules = readdirSync(CONTRACT)
      .filter((f) => f.endsWith('.ts'))
      .map((f) => join(CONTRACT, f));

    // Act
    const inputs = await bundleInputs(modules);

    // Assert
    expect(modules.length).toBeGreaterThanOrEqual(6);
    expect(inputs.filter((path) => FORBIDDEN.test(path))).toEqual([]);
    expect(
      inputs.filter((path) => !path.startsWith('contract/') && !path.includes('node_modules/zod/')),
    ).toEqual([]);
  });

  it('the check sees a transitive SDK import (a module of lambdas/shared that imports the SDK)', async () => {
    // Act: the same bundle of a module outside contract/ that reaches the SDK through an import.
    const inputs = await bundleInputs([join(ROOT, 'lambdas', 'shared', 'authenticate.ts')]);

    // Assert
    expect(inputs.some((path) => FORBIDDEN.test(path))).toBe(true);
  });
});
