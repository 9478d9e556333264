/**
 * The nest11 project runs packages/nestjs/test against NestJS 11 (see ../vitest.config.ts). This
 * checks that it really does: through the same aliases, for @sextant/nestjs's sources, and in the
 * child processes the suite starts.
 */
import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import bullmq from '@nestjs/bullmq/package.json' with { type: 'json' };
import common from '@nestjs/common/package.json' with { type: 'json' };
import core from '@nestjs/core/package.json' with { type: 'json' };
import microservices from '@nestjs/microservices/package.json' with { type: 'json' };
import platformExpress from '@nestjs/platform-express/package.json' with { type: 'json' };
import platformFastify from '@nestjs/platform-fastify/package.json' with { type: 'json' };
import { createSextant } from '@sextant/core';
import { describe, expect, it } from 'vitest';
import { loadedNestPackages, notNest11 } from './loaded-nest.ts';

const run = promisify(execFile);
describe(`NestJS ${core.version}`, () => {
  it('is what the @nestjs/* imports resolve to', () => {
    console.info(`nest11: @nestjs/core ${core.version}, @nestjs/common ${common.version}`);
    for (const pkg of [core, common, platformExpress, platformFastify, microservices, bullmq]) {
      expect(`${pkg.name}@${pkg.version}`).toMatch(/^@nestjs\/[a-z-]+@11\./);
    }
  });

  it('is the only Nest loaded once an application runs @sextant/nestjs', async () => {
    const { NestFactory } = await import('@nestjs/core');
    const { Module } = await import('@nestjs/common');
    const { ExpressAdapter } = await import('@nestjs/platform-express');
    const { FastifyAdapter } = await import('@nestjs/platform-fastify');
    const { SextantModule } = await import('../../../packages/nestjs/src/index.ts');
    const sextant = createSextant({
      serviceName: 'nest11',
      tracing: { exporter: 'memory' },
      logs: { level: 'silent' },
      env: {},
    });
    @Module({ imports: [SextantModule.forRoot({ sextant })] })
    class AppModule {}
    for (const adapter of [new ExpressAdapter(), new FastifyAdapter()]) {
      const app = await NestFactory.create(AppModule, adapter, { logger: false });
      await app.init();
      await app.close();
    }
    await sextant.shutdown();

    const packages = loadedNestPackages();
    expect(packages).toEqual(
      expect.arrayContaining([`@nestjs/core@${core.version}`, `@nestjs/common@${common.version}`]),
    );
    expect(packages.filter(notNest11)).toEqual([]);
  });

  it('is what a child process started from packages/nestjs requires', async () => {
    const { stdout } = await run(
      process.execPath,
      [
        '--conditions=sextant-source',
        '-p',
        "[require('@nestjs/core/package.json').version, require('@nestjs/common/package.json').version]",
      ],
      { cwd: fileURLToPath(new URL('../../../packages/nestjs', import.meta.url)) },
    );
    expect(stdout).toMatch(/^\[ '11\.[^']+', '11\.[^']+' \]$/m);
  });
});
