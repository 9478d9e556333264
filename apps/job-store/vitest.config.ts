import { mergeConfig } from 'vitest/config';
import { sextantProject } from '../../tooling/vitest.shared.ts';

// The Prisma clients are generated once, before any test file opens a store.
export default mergeConfig(sextantProject('job-store'), {
  test: { globalSetup: ['./src/testing.ts'] },
});
