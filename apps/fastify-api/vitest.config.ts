import { mergeConfig } from 'vitest/config';
import { sextantProject } from '../../tooling/vitest.shared.ts';

// The job store's Prisma clients are generated once, before any test file starts an app.
export default mergeConfig(sextantProject('fastify-api'), {
  test: { globalSetup: ['./test/global-setup.ts'] },
});
