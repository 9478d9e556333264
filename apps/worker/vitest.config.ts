import { sextantProject } from '../../tooling/vitest.shared.ts';

export default sextantProject('worker');
