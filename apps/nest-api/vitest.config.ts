import { mergeConfig } from 'vitest/config';
import { sextantProject } from '../../tooling/vitest.shared.ts';

// The app runs as `node dist/main.js` (Node's type stripping has no decorators): build it first.
// The job store's Prisma clients are generated once, before any test file starts the app.
export default mergeConfig(sextantProject('nest-api', { testTimeout: 60_000 }), {
  test: { globalSetup: ['./test/global-setup.ts', './test/build.global-setup.ts'] },
});
