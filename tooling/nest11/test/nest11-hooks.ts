/**
 * Preloaded (`--import`) into Node processes the nest11 project starts: resolves every `@nestjs/*`
 * specifier, from `import` or `require`, as if tooling/nest11 had asked for it, so a child process
 * started from packages/nestjs loads Nest 11 rather than the Nest 12 installed there.
 */
import { createRequire, registerHooks } from 'node:module';
import { pathToFileURL } from 'node:url';

const parentURL = new URL('../package.json', import.meta.url).href;
const requireHere = createRequire(parentURL);

registerHooks({
  resolve(specifier, context, nextResolve) {
    // Resolutions from tooling/nest11 itself (requireHere below) go through unchanged.
    if (!specifier.startsWith('@nestjs/') || context.parentURL === parentURL) {
      return nextResolve(specifier, context);
    }
    // require() resolves from the requiring module whatever `parentURL` says, so resolve it here.
    if (context.conditions?.includes('require')) {
      return { url: pathToFileURL(requireHere.resolve(specifier)).href, shortCircuit: true };
    }
    return nextResolve(specifier, { ...context, parentURL });
  },
});
