import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Compiles the app to dist/ once before the tests start it as its own process, as `pnpm start` does. */
export default function buildApp(): void {
  const tsc = fileURLToPath(
    new URL('bin/tsc', pathToFileURL(createRequire(import.meta.url).resolve('typescript/package.json'))),
  );
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    stdio: 'inherit',
  });
}
