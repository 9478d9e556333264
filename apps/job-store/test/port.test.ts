import { describe, expect, it } from 'vitest';
import { envSetting, portFromEnv } from '../src/index.ts';

/** A logger that keeps the fatal records: what the caller needs to check, nothing else. */
function recordingLogger() {
  const fatal: Array<{ fields: unknown; msg: string }> = [];
  const logger = { fatal: (fields: unknown, msg: string) => void fatal.push({ fields, msg }) };
  return { sextant: { logger } as unknown as Parameters<typeof portFromEnv>[0], fatal };
}

describe('envSetting', () => {
  it('treats unset, empty and blank alike, and trims surrounding spaces', () => {
    expect(envSetting('HOST', {})).toBeUndefined();
    expect(envSetting('HOST', { HOST: '' })).toBeUndefined();
    expect(envSetting('HOST', { HOST: ' \t ' })).toBeUndefined();
    expect(envSetting('HOST', { HOST: ' 127.0.0.1 ' })).toBe('127.0.0.1');
  });
});

describe('portFromEnv', () => {
  // Checked here, not by starting the apps: the default port may be taken on the machine.
  it.each([[{}], [{ PORT: '' }], [{ PORT: '   ' }]])('answers the default port, 3000, for %j', (env) => {
    const { sextant, fatal } = recordingLogger();
    expect(portFromEnv(sextant, env)).toBe(3000);
    expect(fatal).toEqual([]);
  });

  it.each([
    ['0', 0],
    ['8080', 8080],
    [' 8080 ', 8080],
    ['65535', 65_535],
  ])('reads PORT=%j as %d', (value, port) => {
    const { sextant, fatal } = recordingLogger();
    expect(portFromEnv(sextant, { PORT: value })).toBe(port);
    expect(fatal).toEqual([]);
  });

  it.each(['abc', '0x50', '1e3', '3000.5', '-1', '65536', '30 00', ' abc '])(
    'refuses PORT=%j with one fatal record naming the value as given',
    (value) => {
      const { sextant, fatal } = recordingLogger();
      expect(portFromEnv(sextant, { PORT: value })).toBeUndefined();
      expect(fatal).toEqual([
        {
          fields: { port: value },
          msg: `PORT must be an integer from 0 to 65535, got ${JSON.stringify(value)}`,
        },
      ]);
    },
  );
});
