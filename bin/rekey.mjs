#!/usr/bin/env node
// The `rekey` command (package.json "bin"). Plain JavaScript so it starts without a build step:
// it registers tsx to load the TypeScript sources, then runs cli/main.ts.
const [major] = process.versions.node.split('.').map(Number);
if (major < 22) {
  process.stderr.write(
    `rekey needs Node.js 22 or later (this is ${process.version}); run it with \`npx rekey\`.\n`,
  );
  process.exit(1);
}

const { register } = await import('tsx/esm/api');
register();
const { main } = await import('../cli/main.ts');
// exitCode rather than process.exit(): stdout may be a pipe that is still being written.
process.exitCode = await main(process.argv);
