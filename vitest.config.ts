import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // One Dawn device per worker; SwiftShader is CPU-bound, so run files one at a time.
    fileParallelism: false,
  },
});
