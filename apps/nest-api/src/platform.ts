import { STATUS_CODES } from 'node:http';
import { HttpException, type INestApplication } from '@nestjs/common';
import { ExpressAdapter, type NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';

/** The HTTP platforms Nest runs on here (`NEST_PLATFORM`). */
export type Platform = 'express' | 'fastify';

export function isPlatform(value: string): value is Platform {
  return value === 'express' || value === 'fastify';
}

/**
 * The largest request body, 1 MiB: what express-api and fastify-api take (Fastify's default), so
 * that a problem one sample API accepts, the others accept too. Nest's Express default is 100 kB,
 * less than the largest valid QUBO problem written with full-precision coefficients.
 */
export const BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * What the platform refuses before a route runs (a body over the limit, malformed JSON, an
 * unsupported charset, ...) in the `{ statusCode, error, message }` shape the sample APIs share:
 * both of Nest's adapters turn those errors into an `HttpException` with a bare message, whose
 * body has no `error`.
 */
function inSharedShape(mapped: unknown, cause: unknown): unknown {
  if (!(mapped instanceof HttpException)) return mapped;
  const message = mapped.getResponse();
  if (typeof message !== 'string') return mapped;
  const statusCode = mapped.getStatus();
  return new HttpException({ statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message }, statusCode, {
    cause,
  });
}

class SampleExpressAdapter extends ExpressAdapter {
  override mapException(error: unknown): unknown {
    return inSharedShape(super.mapException(error), error);
  }
}

class SampleFastifyAdapter extends FastifyAdapter {
  override mapException(error: unknown): unknown {
    return inSharedShape(super.mapException(error), error);
  }
}

export function createAdapter(platform: Platform): ExpressAdapter | FastifyAdapter {
  return platform === 'fastify'
    ? new SampleFastifyAdapter({ bodyLimit: BODY_LIMIT_BYTES })
    : new SampleExpressAdapter();
}

/** What the platform needs once the application exists, before it listens: Express's body limit. */
export function configurePlatform(app: INestApplication, platform: Platform): void {
  // Registered before Nest's own JSON parser would be, which it then leaves out.
  if (platform === 'express')
    (app as NestExpressApplication).useBodyParser('json', { limit: BODY_LIMIT_BYTES });
}
