import { describe, expect, it } from 'vitest';
import { portFromEnv } from '../src/port.ts';

/** A logger that keeps the fatal records: what the caller needs to check, nothing else. */
function recordingLogger() {
  const fatal: Array<{ fields: unknown; msg: string }> = [];
  const logger = { fatal: (fields: unknown, msg: string) => void fatal.push({ fields, msg }) };
  return { sextant: { logger } as unknown as Parameters<typeof portFromEnv>[0], fatal };
}

describe('portFromEnv', () => {
  // Checked here, not by starting the service: the default port may be taken on the machine.
  it.each([[{}], [{ PORT: '' }], [{ PORT: '   ' }]])('answers the default port, 3000, for %j', (env) => {
    const { sextant, fatal } = recordingLogger();
    expect(portFromEnv(sextant, env)).toBe(3000);
    expect(fatal).toEqual([]);
  });

  it.each([
    ['0', 0],
    [' 8080 ', 8080],
    ['65535', 65_535],
  ])('reads PORT=%j as %d', (value, port) => {
    const { sextant, fatal } = recordingLogger();
    expect(portFromEnv(sextant, { PORT: value })).toBe(port);
    expect(fatal).toEqual([]);
  });

  it.each(['abc', '0x50', '-1', '65536'])('refuses PORT=%j with one fatal record', (value) => {
    const { sextant, fatal } = recordingLogger();
    expect(portFromEnv(sextant, { PORT: value })).toBeUndefined();
    expect(fatal).toEqual([
      {
        fields: { port: value },
        msg: `PORT must be an integer from 0 to 65535, got ${JSON.stringify(value)}`,
      },
    ]);
  });
});
