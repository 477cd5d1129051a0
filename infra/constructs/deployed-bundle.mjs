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
 *   name and version only (the same values; the other 2 KB a client are its npm metadata);
 * - an SDK client's modelled errors (its `models/errors` module, a class each, all of them kept: the
 *   client's schemas register every one) become one call each of serviceError
 *   (lambdas/shared/deployed/service-error.ts), which makes the same class; an error class of any
 *   other form fails the build, by client and name.
 * docs/performance.md ("Lambda bundles") has what each saves.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const SDK_CLIENT_PACKAGE_JSON = /[\\/]node_modules[\\/]@aws-sdk[\\/]client-[^\\/]+[\\/]package\.json$/;
const SDK_CLIENT_ERRORS =
  /[\\/]node_modules[\\/]@aws-sdk[\\/]client-[^\\/]+[\\/]dist-es[\\/]models[\\/]errors\.js$/;
const SERVICE_ERROR = join(
  dirname(fileURLToPath(import.meta.url)),
  '../../lambdas/shared/deployed/service-error.ts',
);

/** The base exception's import that opens a client's errors module. */
const ERRORS_HEAD = /^import \{ (\w+) as __BaseException \} from "(\.\/\w+)";\n/;
/** One error class, exactly as the SDK's code generator writes it (the name three times over). */
const ERROR_CLASS = new RegExp(
  [
    '^export class (\\w+) extends __BaseException \\{\\n',
    '(?:    static shapeId = "([^"\\n]+)";\\n)?',
    '    name = "\\1";\\n',
    '    \\$fault = "(client|server)";\\n',
    '(?:    \\$retryable = (\\{[^\\n]*\\});\\n)?',
    '((?:    \\w+;\\n)*)',
    '    constructor\\(opts\\) \\{\\n',
    '        super\\(\\{\\n            name: "\\1",\\n            \\$fault: "\\3",\\n            \\.\\.\\.opts,\\n        \\}\\);\\n',
    '        Object\\.setPrototypeOf\\(this, \\1\\.prototype\\);\\n',
    '((?:        this\\.\\w+ = opts\\.\\w+;\\n)*)',
    '    \\}\\n\\}\\n?$',
  ].join(''),
);

/**
 * A client's errors module (`source`, at `path`) as one serviceError call a class: the same names,
 * exported in the same order. Throws, naming the class, on any class the SDK writes otherwise.
 */
export function compactServiceErrors(source, path, serviceError = SERVICE_ERROR) {
  const head = ERRORS_HEAD.exec(source);
  if (!head) throw new Error(`rekey: ${path} does not open with its base exception's import`);
  const lines = [
    `import { ${head[1]} as __BaseException } from ${JSON.stringify(head[2])};`,
    `import { serviceError as __serviceError } from ${JSON.stringify(serviceError)};`,
  ];
  const namespaces = new Map();
  const classes = source.slice(head[0].length).split(/^(?=export class )/m);
  for (const text of classes[0] === '' ? classes.slice(1) : classes) {
    const match = ERROR_CLASS.exec(text);
    const name = /^export class (\w+)/.exec(text)?.[1] ?? JSON.stringify(text.slice(0, 40));
    const refuse = (why) =>
      new Error(`rekey: the error ${name} of ${path} ${why}; serviceError cannot make it`);
    if (!match) throw refuse('is not of the form the SDK generates');
    const [, , shapeId, fault, retryable, declared, assigned] = match;
    const fields = [...declared.matchAll(/^ {4}(\w+);$/gm)].map((m) => m[1]);
    const copied = [...assigned.matchAll(/this\.(\w+) = opts\.(\w+);/g)].map((m) =>
      m[1] === m[2] ? m[1] : '',
    );
    if (fields.join() !== copied.join()) throw refuse('does not copy exactly the members it declares');
    let namespace = 'void 0';
    if (shapeId !== undefined) {
      if (!shapeId.endsWith(`#${name}`)) throw refuse(`has the shape id ${shapeId}`);
      const id = shapeId.slice(0, -name.length - 1);
      if (!namespaces.has(id)) {
        namespaces.set(id, `__ns${namespaces.size}`);
        lines.push(`const ${namespaces.get(id)} = ${JSON.stringify(id)};`);
      }
      namespace = namespaces.get(id);
    }
    const args = [namespace, JSON.stringify(name), JSON.stringify(fault), JSON.stringify(fields)];
    if (retryable !== undefined) args.push(`() => (${retryable})`);
    lines.push(`export const ${name} = /* @__PURE__ */ __serviceError(__BaseException, ${args.join(', ')});`);
  }
  return `${lines.join('\n')}\n`;
}

/** @param {{ standIns: Record<string, string> }} spec */
export function deployedPlugin({ standIns }) {
  const unmatched = new Set(Object.keys(standIns));
  return {
    name: 'rekey-deployed',
    /** @param {import('esbuild').PluginBuild} build */
    setup(build) {
      build.onLoad({ filter: SDK_CLIENT_PACKAGE_JSON }, (args) => {
        const { name, version } = JSON.parse(readFileSync(args.path, 'utf8'));
        return { contents: JSON.stringify({ name, version }), loader: 'json' };
      });
      build.onLoad({ filter: SDK_CLIENT_ERRORS }, (args) => ({
        contents: compactServiceErrors(readFileSync(args.path, 'utf8'), args.path),
        loader: 'js',
      }));
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

/** @param {{ entry: string, outfile: string, settings: Record<string, any>, aliases: Record<string, string>, standIns: Record<string, string> }} spec */
export async function deployedBundle(spec) {
  return build({
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
}

// Run as the command (not when a test imports the plugin).
if (process.argv[1] === fileURLToPath(import.meta.url))
  await deployedBundle(JSON.parse(process.argv[2] ?? '{}'));
