import type { Sextant } from '@sextant/core';

/**
 * The HTTP apps' listening port, from `PORT` (default 3000): digits only, 0 to 65535 (0 picks a
 * free port). Anything else is a fatal record naming the variable, the value and what is allowed,
 * and `undefined`: the caller exits with code 1 without listening. Digits only, because
 * `Number('')` is 0 (a random port) and `Number('0x50')` is 80, neither what was meant.
 */
export function portFromEnv(
  sextant: Pick<Sextant, 'logger'>,
  env: Record<string, string | undefined> = process.env,
): number | undefined {
  const raw = env.PORT ?? '3000';
  const port = /^\d{1,5}$/.test(raw) ? Number(raw) : Number.NaN;
  if (port >= 0 && port <= 65_535) return port;
  sextant.logger.fatal({ port: raw }, `PORT must be an integer from 0 to 65535, got ${JSON.stringify(raw)}`);
  return undefined;
}
