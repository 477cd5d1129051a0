#!/usr/bin/env node
// Runs before `npm test` and `npm run demo` (pre-scripts) so that both work as the first command
// on a fresh clone: installs the locked dependencies when node_modules is missing or older than
// package-lock.json. Plain JavaScript on purpose: it runs on whatever Node the machine has,
// before the project's own Node 24 (a dev dependency) is installed.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const lock = join(root, 'package-lock.json');
const installed = join(root, 'node_modules', '.package-lock.json');

const stale = !existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs;
if (stale) {
  console.error('rekey: installing the locked dependencies (npm ci, about a minute)...');
  const started = Date.now();
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  // `npm ci`: exactly the committed lockfile, never a resolution of its own.
  // Errors only: on a machine whose own Node is older than 22, npm warns EBADENGINE for every
  // package that needs 22+, although everything then runs on the pinned Node 24 (`node` package).
  const result = spawnSync(npm, ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (result.status !== 0) {
    console.error('rekey: npm ci failed; fix the error above and run the command again');
    process.exit(result.status ?? 1);
  }
  console.error(`rekey: dependencies installed in ${Math.round((Date.now() - started) / 1000)} s`);
}
