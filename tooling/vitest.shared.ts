import { fileURLToPath } from 'node:url';
import { defineProject } from 'vitest/config';

/** Workspace packages resolve to their sources, so tests never wait for a build. */
export const workspaceAliases = {
  '@sextant/core': fileURLToPath(new URL('../packages/core/src/index.ts', import.meta.url)),
};

export function sextantProject(name: string, extra: { testTimeout?: number } = {}) {
  return defineProject({
    resolve: { alias: workspaceAliases },
    test: {
      name,
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      testTimeout: extra.testTimeout ?? 20_000,
      hookTimeout: 60_000,
    },
  });
}
