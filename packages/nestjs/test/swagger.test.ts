/**
 * @Traced() next to real @nestjs/swagger decorators: the OpenAPI document SwaggerModule builds for a
 * traced handler is the one it builds for the same handler without @Traced(), whichever side of
 * @Traced() the Swagger decorators are; the handler's guard and roles still apply; and it still
 * gets its span.
 */
import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Controller,
  Get,
  Headers,
  type INestApplication,
  Module,
  Param,
  Query,
  SetMetadata,
  UseGuards,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import {
  ApiBearerAuth,
  ApiExtension,
  ApiForbiddenResponse,
  ApiHeader,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiProperty,
  ApiQuery,
  ApiResponse,
  ApiSecurity,
  ApiTags,
  DocumentBuilder,
  type OpenAPIObject,
  SwaggerModule,
} from '@nestjs/swagger';
import { SpanKind } from '@opentelemetry/api';
import { createSextant, type Sextant } from '@sextant/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SextantModule, Traced } from '../src/index.ts';
import { ROLES, RolesGuard } from './fixture.ts';

class Report {
  @ApiProperty({ example: 7, description: 'the report id' })
  readonly id: number = 0;

  @ApiProperty({ enum: ['json', 'csv'] })
  readonly format: string = 'json';
}

const find = (id: string, format = 'json', tenant?: string) => ({ id: Number(id), format, tenant });

// The same handler four times: without @Traced(), with it above every Swagger decorator (they all
// write to the original method), below them (they all write to its wrapper), and in between (the
// responses declared on both sides are merged across it).

@Controller('reports')
@ApiTags('reporting')
class PlainController {
  @Get(':id')
  @ApiOperation({ summary: 'One report', description: 'Reads one report.' })
  @ApiTags('reports')
  @ApiBearerAuth()
  @ApiSecurity('api-key', ['reports:read'])
  @ApiParam({ name: 'id', description: 'the report id' })
  @ApiQuery({ name: 'format', required: false, enum: ['json', 'csv'] })
  @ApiHeader({ name: 'x-tenant', required: false, description: 'the tenant' })
  @ApiOkResponse({ type: Report, description: 'the report' })
  @ApiResponse({ status: 404, description: 'no such report' })
  @ApiForbiddenResponse({ description: 'not a reader' })
  @ApiExtension('x-owner', 'reporting')
  @UseGuards(RolesGuard)
  @SetMetadata(ROLES, ['reader'])
  find(@Param('id') id: string, @Query('format') format?: string, @Headers('x-tenant') tenant?: string) {
    return find(id, format, tenant);
  }
}

@Controller('reports')
@ApiTags('reporting')
class TracedAboveController {
  @Traced()
  @Get(':id')
  @ApiOperation({ summary: 'One report', description: 'Reads one report.' })
  @ApiTags('reports')
  @ApiBearerAuth()
  @ApiSecurity('api-key', ['reports:read'])
  @ApiParam({ name: 'id', description: 'the report id' })
  @ApiQuery({ name: 'format', required: false, enum: ['json', 'csv'] })
  @ApiHeader({ name: 'x-tenant', required: false, description: 'the tenant' })
  @ApiOkResponse({ type: Report, description: 'the report' })
  @ApiResponse({ status: 404, description: 'no such report' })
  @ApiForbiddenResponse({ description: 'not a reader' })
  @ApiExtension('x-owner', 'reporting')
  @UseGuards(RolesGuard)
  @SetMetadata(ROLES, ['reader'])
  find(@Param('id') id: string, @Query('format') format?: string, @Headers('x-tenant') tenant?: string) {
    return find(id, format, tenant);
  }
}

@Controller('reports')
@ApiTags('reporting')
class TracedBelowController {
  @Get(':id')
  @ApiOperation({ summary: 'One report', description: 'Reads one report.' })
  @ApiTags('reports')
  @ApiBearerAuth()
  @ApiSecurity('api-key', ['reports:read'])
  @ApiParam({ name: 'id', description: 'the report id' })
  @ApiQuery({ name: 'format', required: false, enum: ['json', 'csv'] })
  @ApiHeader({ name: 'x-tenant', required: false, description: 'the tenant' })
  @ApiOkResponse({ type: Report, description: 'the report' })
  @ApiResponse({ status: 404, description: 'no such report' })
  @ApiForbiddenResponse({ description: 'not a reader' })
  @ApiExtension('x-owner', 'reporting')
  @UseGuards(RolesGuard)
  @SetMetadata(ROLES, ['reader'])
  @Traced()
  find(@Param('id') id: string, @Query('format') format?: string, @Headers('x-tenant') tenant?: string) {
    return find(id, format, tenant);
  }
}

@Controller('reports')
@ApiTags('reporting')
class TracedBetweenController {
  @Get(':id')
  @ApiOperation({ summary: 'One report', description: 'Reads one report.' })
  @ApiTags('reports')
  @ApiBearerAuth()
  @ApiParam({ name: 'id', description: 'the report id' })
  @ApiOkResponse({ type: Report, description: 'the report' })
  @ApiResponse({ status: 404, description: 'no such report' })
  @UseGuards(RolesGuard)
  @Traced()
  @ApiSecurity('api-key', ['reports:read'])
  @ApiQuery({ name: 'format', required: false, enum: ['json', 'csv'] })
  @ApiHeader({ name: 'x-tenant', required: false, description: 'the tenant' })
  @ApiForbiddenResponse({ description: 'not a reader' })
  @ApiExtension('x-owner', 'reporting')
  @SetMetadata(ROLES, ['reader'])
  find(@Param('id') id: string, @Query('format') format?: string, @Headers('x-tenant') tenant?: string) {
    return find(id, format, tenant);
  }
}

const traced = {
  'above the Swagger decorators': TracedAboveController,
  'below the Swagger decorators': TracedBelowController,
  'between the Swagger decorators': TracedBetweenController,
};

const documentConfig = new DocumentBuilder()
  .setTitle('reports')
  .setVersion('1.0')
  .addBearerAuth()
  .addApiKey({ type: 'apiKey', in: 'header', name: 'x-api-key' }, 'api-key')
  .build();

/** The document of an application with one controller; operation ids without the controller's class name. */
const documentOf = (app: INestApplication): OpenAPIObject =>
  SwaggerModule.createDocument(app, documentConfig, { operationIdFactory: (_controller, method) => method });

describe.each(['express', 'fastify'] as const)('@Traced() with @nestjs/swagger on %s', (platform) => {
  let sextant: Sextant;
  const apps: INestApplication[] = [];

  async function start(controller: new () => object): Promise<INestApplication> {
    @Module({
      imports: [SextantModule.forRoot({ sextant })],
      controllers: [controller],
      providers: [RolesGuard],
    })
    class AppModule {}
    const adapter = platform === 'express' ? new ExpressAdapter() : new FastifyAdapter();
    const app = await NestFactory.create(AppModule, adapter, { logger: false });
    apps.push(app);
    await app.listen(0, '127.0.0.1');
    return app;
  }

  /** The spans of a trace, once its server span has ended (on Fastify, after the answer is sent). */
  async function spansOf(traceId: string) {
    for (let attempt = 0; attempt < 200; attempt++) {
      const spans = sextant.tracing.finishedSpans().filter((s) => s.spanContext().traceId === traceId);
      if (spans.some((s) => s.kind === SpanKind.SERVER)) return spans;
      await sleep(10);
    }
    throw new Error(`no server span in trace ${traceId}`);
  }

  let plain: OpenAPIObject;
  beforeAll(async () => {
    sextant = createSextant({
      serviceName: `nestjs-swagger-${platform}`,
      tracing: { exporter: 'memory' },
      logs: { level: 'silent' },
      env: {},
    });
    plain = documentOf(await start(PlainController));
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    await sextant?.shutdown();
  });

  it('documents the handler without @Traced(): summary, responses, tags, security, parameters', () => {
    const operation = plain.paths['/reports/{id}']?.get;
    expect(operation).toMatchObject({
      operationId: 'find',
      summary: 'One report',
      description: 'Reads one report.',
      tags: expect.arrayContaining(['reporting', 'reports']),
      security: expect.arrayContaining([{ bearer: [] }, { 'api-key': ['reports:read'] }]),
      'x-owner': 'reporting',
      responses: {
        200: {
          description: 'the report',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Report' } } },
        },
        403: { description: 'not a reader' },
        404: { description: 'no such report' },
      },
    });
    expect(operation?.security).toHaveLength(2);
    expect(Object.keys(operation?.responses ?? {}).sort()).toEqual(['200', '403', '404']);
    expect(operation?.parameters).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'id', in: 'path', required: true, description: 'the report id' }),
        expect.objectContaining({ name: 'format', in: 'query', required: false }),
        expect.objectContaining({
          name: 'x-tenant',
          in: 'header',
          required: false,
          description: 'the tenant',
        }),
      ]),
    );
    expect(operation?.parameters).toHaveLength(3);
    expect(plain.components?.schemas?.Report).toMatchObject({
      properties: { id: { example: 7 }, format: { enum: ['json', 'csv'] } },
    });
  });

  it.each(Object.entries(traced))(
    'with @Traced() %s: the same document, the guard and roles apply, and a span per call',
    async (_, controller) => {
      const app = await start(controller);
      expect(documentOf(app)).toEqual(plain);

      const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
      const forbidden = await fetch(`${url}/reports/7`);
      expect(forbidden.status).toBe(403);

      const response = await fetch(`${url}/reports/7?format=csv`, {
        headers: { 'x-role': 'reader', 'x-tenant': 'acme' },
      });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ id: 7, format: 'csv', tenant: 'acme' });
      const inTrace = await spansOf(response.headers.get('traceresponse')!.split('-')[1]!);
      const server = inTrace.find((s) => s.kind === SpanKind.SERVER);
      const method = inTrace.find((s) => s.name === `${controller.name}.find`);
      expect(server?.name).toBe('GET /reports/:id');
      expect(method?.kind).toBe(SpanKind.INTERNAL);
      expect(method?.parentSpanContext?.spanId).toBe(server?.spanContext().spanId);
    },
  );
});
