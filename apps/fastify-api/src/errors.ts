import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

/**
 * An error answer in Fastify's own shape, which the three sample APIs share:
 * `{ "statusCode": 400, "error": "Bad Request", "message": "..." }`.
 */
export function answerError(reply: FastifyReply, statusCode: number, message: string): FastifyReply {
  return reply.code(statusCode).send({ statusCode, error: STATUS_CODES[statusCode], message });
}

/**
 * The app's error handler. Client errors (4xx: a malformed body, a bad query string) keep
 * Fastify's answer, message included. Anything else is logged with the error and answered with a
 * generic 500: the client learns nothing about the internals. Sextant's `onError` hook has
 * already put the exception on the request's span by then.
 */
export function handleError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const statusCode = error.statusCode ?? 500;
  if (statusCode >= 400 && statusCode < 500) return reply.send(error);
  request.log.error({ err: error }, error.message);
  return answerError(reply, 500, 'internal server error');
}
