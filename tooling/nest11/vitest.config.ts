import { fileURLToPath } from 'node:url';
import { mergeConfig } from 'vitest/config';
import { sextantProject } from '../vitest.shared.ts';

/**
 * The @sextant/nestjs test suite (packages/nestjs/test) run against NestJS 11, the previous major
 * its peer range covers; packages/nestjs itself installs and tests Nest 12.
 *
 * - Every `@nestjs/*` import Vite transforms (the suite's tests and packages/nestjs/src) is aliased
 *   to the Nest 11 copy installed here. Nest's own files are loaded by Node and find each other
 *   through pnpm's links, which for these copies are Nest 11 too (one instance of each package).
 * - commonjs.test.ts runs a child Node process from packages/nestjs, out of Vite's reach: the
 *   resolve hook in test/nest11-hooks.ts, preloaded through NODE_OPTIONS (test/setup.ts), sends
 *   its `@nestjs/*` imports and requires here as well.
 * - test/nest11.test.ts proves both paths load Nest 11, and test/setup.ts fails any test file
 *   after which a Nest package other than Nest 11 is found loaded.
 */
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const nest11 = here('./node_modules/@nestjs/');

const config = mergeConfig(sextantProject('nest11'), {
  resolve: { alias: [{ find: /^@nestjs\/(.+)$/, replacement: `${nest11}$1` }] },
  // Nest relies on TypeScript's legacy decorators and their `design:*` metadata, which Vite's
  // default transform leaves alone (as in packages/nestjs/vitest.config.ts).
  oxc: { decorator: { legacy: true, emitDecoratorMetadata: true } },
  test: {
    // Globs are relative to the repository root so they can reach the suite in packages/nestjs.
    dir: here('../..'),
    setupFiles: [here('./test/setup.ts')],
  },
});
// Set after merging: mergeConfig would append these to the shared project's globs, not replace them.
config.test.include = ['packages/nestjs/test/*.test.ts', 'tooling/nest11/test/*.test.ts'];

export default config;
