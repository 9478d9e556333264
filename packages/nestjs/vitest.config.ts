import { mergeConfig } from 'vitest/config';
import { sextantProject } from '../../tooling/vitest.shared.ts';

// Nest relies on TypeScript's legacy decorators and their `design:*` metadata, which Vite's
// default transform leaves alone.
export default mergeConfig(sextantProject('nestjs'), {
  oxc: { decorator: { legacy: true, emitDecoratorMetadata: true } },
});
