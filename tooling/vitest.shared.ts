import { defaultServerConditions } from 'vite';
import { defineProject } from 'vitest/config';

/**
 * Workspace packages resolve to their sources through the `sextant-source` export condition,
 * so tests never wait for a build (child processes get the same with `--conditions`).
 */
const conditions = ['sextant-source', ...defaultServerConditions];

export function sextantProject(name: string, extra: { testTimeout?: number } = {}) {
  return defineProject({
    resolve: { conditions },
    ssr: { resolve: { conditions } },
    test: {
      name,
      include: ['src/**/*.test.ts', 'test/**/*.test.ts', '*.test.ts'],
      testTimeout: extra.testTimeout ?? 20_000,
      hookTimeout: 60_000,
    },
  });
}
