import { mergeConfig } from 'vitest/config';
import { sextantProject } from '../../tooling/vitest.shared.ts';

// The app runs as `node dist/main.js` (Node's type stripping has no decorators): build it first.
export default mergeConfig(sextantProject('nest-api', { testTimeout: 60_000 }), {
  test: { globalSetup: ['./test/build.global-setup.ts'] },
});
