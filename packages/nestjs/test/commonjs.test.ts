import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('@sextant/nestjs from a CommonJS application', () => {
  it('loads through require(esm) and instruments the request', async () => {
    const { stdout } = await run(
      process.execPath,
      ['--conditions=sextant-source', fileURLToPath(new URL('fixtures/commonjs-app.cjs', import.meta.url))],
      { cwd: fileURLToPath(new URL('..', import.meta.url)) },
    );
    expect(JSON.parse(stdout)).toEqual({
      status: 200,
      spans: ['GET /cjs/ping/:id', 'PingController.ping'],
      module: 'object',
    });
  });
});
