import { sextantProject } from '../vitest.shared.ts';

export default sextantProject('demo', { testTimeout: 180_000 });
