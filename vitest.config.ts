import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      'packages/*/vitest.config.ts',
      'apps/*/vitest.config.ts',
      'tooling/demo/vitest.config.ts',
      'tooling/prisma6/vitest.config.ts',
      'tooling/nest11/vitest.config.ts',
    ],
  },
});
