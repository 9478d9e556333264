import { mergeConfig } from 'vitest/config';
import { sextantProject } from '../../tooling/vitest.shared.ts';

export default mergeConfig(sextantProject('prisma'), {
  test: { globalSetup: ['./test/global-setup.ts'] },
});
