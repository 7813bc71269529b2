import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    // tools/depcheck has a node_modules of its own, with .test.ts files in it.
    exclude: ['**/node_modules/**', 'dist/**'],
    // Integration tests start real runc containers, registries and Redis.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // 2 cores: more files in parallel only adds contention with runc and registries.
    maxWorkers: 2,
  },
});
