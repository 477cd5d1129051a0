import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/support/setup.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // Two cores: at most two test files at once (workflow files each run their own emulator).
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Fail on unhandled rejections and on tests that were focused or skipped by mistake.
    allowOnly: false,
  },
});
