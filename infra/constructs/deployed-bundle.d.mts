/** The types of deployed-bundle.mjs, for the tests that use its parts (test/lambdas/shared/deployed.test.ts). */
import type { BuildResult, Plugin } from 'esbuild';

export function compactServiceErrors(source: string, path: string, serviceError?: string): string;
export function deployedPlugin(spec: { standIns: Record<string, string> }): Plugin;
export function deployedBundle(spec: {
  entry: string;
  outfile: string;
  settings: { format: string; target: string; mainFields: readonly string[]; banner: string };
  aliases: Record<string, string>;
  standIns: Record<string, string>;
}): Promise<BuildResult>;
