import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Loop devices and large sparse files are machine-wide resources: keep files serial.
    fileParallelism: false,
    reporters: ['default'],
  },
});
