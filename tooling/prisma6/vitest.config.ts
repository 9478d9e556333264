import { mergeConfig } from 'vitest/config';
import { sextantProject } from '../vitest.shared.ts';

export default mergeConfig(sextantProject('prisma6'), {
  test: { globalSetup: ['./test/generate.ts'] },
});
