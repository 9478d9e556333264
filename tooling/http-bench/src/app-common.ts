/** What every server variant shares: the answer of `GET /users/:id` and the log destination. */
import pino from 'pino';

export function user(id: string) {
  return { id, name: `User ${id}`, plan: 'pro', active: true };
}

/**
 * Every variant that logs writes to /dev/null through the same kind of destination Sextant writes
 * stdout with by default (pino's asynchronous SonicBoom), so log formatting is measured and no
 * variant gets a cheaper sink.
 */
export function logDestination() {
  return pino.destination({ dest: '/dev/null', sync: false });
}
