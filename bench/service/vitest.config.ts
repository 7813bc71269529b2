import { defineConfig } from 'vitest/config';

/** `npx vitest run --config bench/service/vitest.config.ts`: the service benchmark, never part of `npm test`. */
export default defineConfig({
  test: {
    include: ['bench/service/*.bench-run.ts'],
    testTimeout: 900_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
