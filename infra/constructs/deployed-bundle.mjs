/**
 * Builds one deployed bundle with esbuild's API, which takes plugins where esbuild's command line
 * (NodejsFunction's bundler) takes none. infra/constructs/rekey-function.ts runs it after
 * NodejsFunction's own build, for the main bundle (which it replaces) and for each opt-in file:
 *
 *   node deployed-bundle.mjs '<spec as JSON>'
 *
 * spec: `entry`, `outfile`, `settings` (esbuild's format, target, mainFields, banner),
 * `aliases` (package -> stand-in module) and `standIns` (a file inside a package or under
 * lambdas/, by the end of its path -> the stand-in module built in its place). On top of the
 * construct's settings:
 * - each file in `standIns` is built from its stand-in (relative imports, which esbuild's
 *   aliases cannot reach); a stand-in that matches no file fails the build, so that an SDK
 *   update (or a rename) that moves the file is noticed;
 * - an SDK client's package.json, which the client imports whole for its version, becomes its
 *   name and version only (the same values; the other 2 KB a client are its npm metadata).
 * docs/performance.md ("Lambda bundles") has what each saves.
 */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { build } from 'esbuild';

const SDK_CLIENT_PACKAGE_JSON = /[\\/]node_modules[\\/]@aws-sdk[\\/]client-[^\\/]+[\\/]package\.json$/;

/** @param {{ standIns: Record<string, string> }} spec */
function deployedPlugin({ standIns }) {
  const unmatched = new Set(Object.keys(standIns));
  return {
    name: 'rekey-deployed',
    /** @param {import('esbuild').PluginBuild} build */
    setup(build) {
      build.onLoad({ filter: SDK_CLIENT_PACKAGE_JSON }, (args) => {
        const { name, version } = JSON.parse(readFileSync(args.path, 'utf8'));
        return { contents: JSON.stringify({ name, version }), loader: 'json' };
      });
      // The SDK's files, and rekey's own local-run modules (lambdas/shared/clients/*.ts).
      build.onLoad({ filter: /[\\/]node_modules[\\/].*\.js$|[\\/]lambdas[\\/].*\.ts$/ }, (args) => {
        const path = args.path.replaceAll('\\', '/');
        const file = Object.keys(standIns).find((suffix) => path.endsWith(`/${suffix}`));
        if (file === undefined) return undefined;
        unmatched.delete(file);
        const standIn = standIns[file];
        return { contents: readFileSync(standIn, 'utf8'), loader: 'ts', resolveDir: dirname(standIn) };
      });
      build.onEnd((result) => {
        if (result.errors.length === 0 && unmatched.size > 0)
          throw new Error(`rekey: no file in the bundle for the stand-ins of ${[...unmatched].join(', ')}`);
      });
    },
  };
}

const spec = JSON.parse(process.argv[2] ?? '{}');
await build({
  entryPoints: [spec.entry],
  outfile: spec.outfile,
  bundle: true,
  platform: 'node',
  minify: true,
  format: spec.settings.format,
  target: spec.settings.target,
  mainFields: spec.settings.mainFields,
  banner: { js: spec.settings.banner },
  alias: spec.aliases,
  plugins: [deployedPlugin(spec)],
  logLevel: 'warning',
});
