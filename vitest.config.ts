import { defineConfig } from 'vitest/config';

// Integration tests share one Docker Engine, registry and cluster; they run in
// one worker, file after file, so they never fight over the 2 cores or a port.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    fileParallelism: false,
    pool: 'forks',
    reporters: ['default', './test/helpers/count-reporter.ts'],
  },
});
