/**
 * Setup file of the nest11 project, run in each test file's worker.
 * - Child processes (commonjs.test.ts starts one) resolve `@nestjs/*` with Node, out of Vite's
 *   reach: they inherit NODE_OPTIONS and preload the resolve hook that sends them to Nest 11.
 *   Set here rather than in the config's `env`, which the workers themselves would start with.
 * - Once the file has run, no Nest but Nest 11 may have been loaded.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, expect } from 'vitest';
import { loadedNestPackages, notNest11 } from './loaded-nest.ts';

const hooks = fileURLToPath(new URL('./nest11-hooks.ts', import.meta.url));
process.env.NODE_OPTIONS = [process.env.NODE_OPTIONS, `--import=${hooks}`].filter(Boolean).join(' ');

afterAll(() => {
  expect(loadedNestPackages().filter(notNest11), 'Nest packages other than Nest 11 were loaded').toEqual([]);
});
