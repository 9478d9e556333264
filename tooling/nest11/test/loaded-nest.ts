import { readFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Every module URL Node resolves under a `@nestjs/*` package from now on in this process (from
// `import` and `require` alike, Nest 11 being CommonJS and Nest 12 ESM), recorded once per process.
const key = Symbol.for('sextant.nest11.resolvedNestFiles');
const store = globalThis as { [key]?: Set<string> };
const resolved = store[key] ?? new Set<string>();
if (store[key] === undefined) {
  store[key] = resolved;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const result = nextResolve(specifier, context);
      if (result.url.includes('/node_modules/@nestjs/')) resolved.add(result.url);
      return result;
    },
  });
}

/** `name@version` of every `@nestjs/*` package a module was resolved from in this process. */
export function loadedNestPackages(): string[] {
  const roots = new Set<string>();
  for (const url of resolved) {
    const match = /^(.*\/node_modules\/@nestjs\/[^/]+)\//.exec(
      url.startsWith('file:') ? fileURLToPath(url) : url,
    );
    if (match?.[1] !== undefined) roots.add(match[1]);
  }
  const packages = [...roots].map((root) => {
    const { name, version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    return `${name}@${version}`;
  });
  return [...new Set(packages)].sort();
}

// @nestjs/mapped-types (a dependency of @nestjs/swagger) took Nest's major number only with 12:
// its Nest 11 line is 2.x.
export const notNest11 = (name: string) =>
  !/^@nestjs\/[a-z-]+@11\./.test(name) && !/^@nestjs\/mapped-types@2\./.test(name);
