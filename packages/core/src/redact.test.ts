import { describe, expect, it } from 'vitest';
import { createRedactor, setSafeErrorMessage } from './redact.ts';

const redactor = createRedactor({ extraKeys: ['x-tenant-pin', 'internalNote'] });
const copy = (input: unknown) => redactor.value(input) as any;

describe('redaction by key', () => {
  it('matches built-in keys whatever their case and separators', () => {
    const result = copy({
      password: 'a',
      Authorization: 'b',
      'x-api-key': 'c',
      apiKey: 'd',
      API_KEY: 'e',
      'api-key': 'f',
      Cookie: 'g',
      'set-cookie': ['h'],
      client_secret: 'i',
      refreshToken: 'j',
      cvv: 123,
      card_number: '4111111111111111',
      username: 'alice',
    });
    for (const key of Object.keys(result).filter((k) => k !== 'username')) {
      expect(result[key], key).toBe('[REDACTED]');
    }
    expect(result.username).toBe('alice');
  });

  it('matches keys that end with a secret word, and nothing merely containing one', () => {
    const result = copy({
      db_password: 'a',
      csrfToken: 'b',
      aws_secret_access_key: 'c',
      tokenCount: 3,
      max_tokens: 9,
    });
    expect(result).toEqual({
      db_password: '[REDACTED]',
      csrfToken: '[REDACTED]',
      aws_secret_access_key: '[REDACTED]',
      tokenCount: 3,
      max_tokens: 9,
    });
  });

  it('redacts at any depth, in arrays, Maps and error properties', () => {
    const deep = { a: { b: { c: { d: { e: { f: { g: { Password: 'hunter2', keep: 1 } } } } } } } };
    const result = copy({
      deep,
      list: [{ token: 't' }, [{ secret: 's' }]],
      map: new Map<unknown, unknown>([
        ['authorization', 'Basic xyz'],
        ['plain', 'ok'],
      ]),
      err: Object.assign(new Error('boom'), { session: 'abc' }),
    });
    expect(result.deep.a.b.c.d.e.f.g).toEqual({ Password: '[REDACTED]', keep: 1 });
    expect(result.list).toEqual([{ token: '[REDACTED]' }, [{ secret: '[REDACTED]' }]]);
    expect(result.map).toEqual({ authorization: '[REDACTED]', plain: 'ok' });
    expect(result.err.session).toBe('[REDACTED]');
  });

  it('redacts the whole value under a secret key without reading it', () => {
    let read = false;
    const source = {
      get credentials() {
        read = true;
        return { user: 'u', pass: 'p' };
      },
    };
    expect(copy(source)).toEqual({ credentials: '[REDACTED]' });
    expect(read).toBe(false);
  });

  it('adds the extra keys, normalised the same way', () => {
    expect(copy({ X_TENANT_PIN: '1234', 'internal-note': 'x', note: 'y' })).toEqual({
      X_TENANT_PIN: '[REDACTED]',
      'internal-note': '[REDACTED]',
      note: 'y',
    });
  });

  it('redacts personal data used as a key', () => {
    expect(copy({ 'alice@example.com': 3 })).toEqual({ '[EMAIL]': 3 });
  });

  it('redacts sensitive query parameters, in URLs and connection strings', () => {
    expect(redactor.string('/cb?access_token=abc123&page=2&API-KEY=zz')).toBe(
      '/cb?access_token=[REDACTED]&page=2&API-KEY=[REDACTED]',
    );
    expect(redactor.string('Server=db;User Id=app;Password=s3cret;')).toBe(
      'Server=db;User Id=app;Password=[REDACTED];',
    );
    expect(redactor.string('/search?q=shoes&sort=asc')).toBe('/search?q=shoes&sort=asc');
  });
});

describe('redaction by value pattern', () => {
  it('replaces e-mail addresses but not package specifiers', () => {
    expect(redactor.string('sent to alice.smith+tag@mail.example.co.uk today')).toBe('sent to [EMAIL] today');
    expect(redactor.string('loaded pino@10.4.0 and @scope/pkg@1.2.3')).toBe(
      'loaded pino@10.4.0 and @scope/pkg@1.2.3',
    );
    expect(redactor.string('user@localhost')).toBe('user@localhost');
  });

  it('replaces Luhn-valid card numbers only', () => {
    expect(redactor.string('card 4111 1111 1111 1111 ok')).toBe('card [CARD] ok');
    expect(redactor.string('card 4111-1111-1111-1111')).toBe('card [CARD]');
    expect(redactor.string('amex 378282246310005')).toBe('amex [CARD]');
    expect(redactor.string('mc=5555555555554444')).toBe('mc=[CARD]');
    // Same length, fails the Luhn check: an order number, kept.
    expect(redactor.string('order 4111111111111112')).toBe('order 4111111111111112');
    // Epoch milliseconds and long ids are not cards.
    expect(redactor.string('at 1700000000000')).toBe('at 1700000000000');
    expect(redactor.string('id 41111111111111110000000')).toBe('id 41111111111111110000000');
  });

  it('replaces bearer tokens, keeping the scheme', () => {
    expect(redactor.string('Authorization: Bearer abc.DEF-123_xyz~+/==')).toBe(
      'Authorization: Bearer [REDACTED]',
    );
    expect(redactor.string('header bearer 0123456789abcdef')).toBe('header bearer [REDACTED]');
    expect(redactor.string('BEARER 0123456789abcdef')).toBe('BEARER [REDACTED]');
    expect(redactor.string('the bearer of bad news')).toBe('the bearer of bad news');
  });

  it('replaces JWTs', () => {
    const jwt =
      'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c';
    expect(redactor.string(`token=${jwt};`)).toBe('token=[JWT];');
    expect(redactor.string(`got ${jwt} from idp`)).toBe('got [JWT] from idp');
    expect(redactor.string('eyJust kidding. not.a token')).toBe('eyJust kidding. not.a token');
  });

  it('replaces common API key shapes', () => {
    const keys = [
      'sk_live_4eC39HqLyjWDarjtT1zdp7dc',
      'rk_test_51H8abcdefghijklmnop',
      'ghp_16C7e42F292c6912E7710c838347Ae178B4a',
      'github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz',
      'AKIAIOSFODNN7EXAMPLE',
      'xoxb-123456789012-abcdefghijkl',
      'sk-proj-abcdefghijklmnopqrstuvwx',
      'glpat-abcdefghijklmnopqrst',
      'AIzaSyA1234567890abcdefghijklmnopqrstuv',
      'npm_abcdefghijklmnopqrstuvwxyz0123456789',
    ];
    for (const key of keys) expect(redactor.string(`key ${key} used`), key).toBe('key [API_KEY] used');
    expect(redactor.string('task-queue-processing-worker-0001')).toBe('task-queue-processing-worker-0001');
    expect(redactor.string('AKIA is a prefix')).toBe('AKIA is a prefix');
  });

  it('replaces credentials in URLs', () => {
    expect(redactor.string('connect postgres://app:s3cret@db.internal:5432/app')).toBe(
      'connect postgres://[REDACTED]@db.internal:5432/app',
    );
    expect(redactor.string('redis://:pw@cache:6379')).toBe('redis://[REDACTED]@cache:6379');
    expect(redactor.string('https://example.com/a@b')).toBe('https://example.com/a@b');
  });

  it('applies to error messages and stacks', () => {
    const result = copy(new Error('no user alice@example.com'));
    expect(result.type).toBe('Error');
    expect(result.message).toBe('no user [EMAIL]');
    expect(result.stack).toContain('no user [EMAIL]');
    expect(result.stack).not.toContain('alice');
  });

  it('leaves ordinary strings alone', () => {
    for (const text of [
      'GET /users/:id',
      'ok',
      'order 42 shipped to warehouse 7',
      '2024-05-01T10:00:00.000Z',
    ]) {
      expect(redactor.string(text)).toBe(text);
    }
  });

  it('finishes on adversarial input', () => {
    const inputs = [
      'a@'.repeat(50_000),
      '1 '.repeat(50_000),
      '4 '.repeat(50_000),
      '4-'.repeat(50_000),
      'a'.repeat(100_000),
      `${'a'.repeat(100_000)}@`,
      `${'a.'.repeat(50_000)}@`,
      `a@${'b.'.repeat(50_000)}`,
      `x://${'a'.repeat(100_000)}@`,
      `eyJ${'a'.repeat(50_000)}.${'b'.repeat(50_000)}`,
      `Bearer ${'a'.repeat(100_000)}`,
      `sk_live_${'a'.repeat(100_000)}`,
      `?${'a=b&'.repeat(25_000)}`,
      '4111111111111111 '.repeat(6_000),
    ];
    for (const input of inputs) {
      const result = redactor.string(input);
      expect(result.length).toBeLessThanOrEqual(16 * 1024 + 40);
    }
  });
});

describe('safe copy', () => {
  it('marks cycles and keeps shared references', () => {
    const shared = { n: 1 };
    const node: any = { name: 'root', a: shared, b: shared };
    node.self = node;
    node.list = [node];
    expect(copy(node)).toEqual({
      name: 'root',
      a: { n: 1 },
      b: { n: 1 },
      self: '[Circular]',
      list: ['[Circular]'],
    });
  });

  it('marks throwing getters and hostile proxies as unreadable', () => {
    const getter = {
      ok: 1,
      get broken() {
        throw new Error('nope');
      },
    };
    const noKeys = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('no keys');
        },
      },
    );
    const { proxy: revoked, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(copy({ getter, noKeys, revoked })).toEqual({
      getter: { ok: 1, broken: '[Unreadable]' },
      noKeys: '[Unreadable]',
      revoked: '[Unreadable]',
    });
    expect(copy(noKeys)).toBe('[Unreadable]');
  });

  it('caps depth, breadth and string length', () => {
    let deep: any = { leaf: true };
    for (let i = 0; i < 20; i++) deep = { next: deep };
    let cursor = copy(deep);
    let depth = 0;
    while (typeof cursor === 'object') {
      cursor = cursor.next;
      depth++;
    }
    expect(cursor).toBe('[Truncated]');
    expect(depth).toBe(10);

    const big = copy({ list: Array.from({ length: 1_000_000 }, (_, i) => i) });
    expect(big.list).toHaveLength(101);
    expect(big.list[100]).toBe('[Truncated: 999900 more items]');

    const wide = copy(Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`k${i}`, i])));
    expect(Object.keys(wide)).toHaveLength(101);
    expect(wide['[Truncated]']).toBe('50 more keys');

    const long = redactor.string('x'.repeat(100_000));
    expect(long.startsWith('x'.repeat(16 * 1024))).toBe(true);
    expect(long.endsWith('...[Truncated: 100000 chars]')).toBe(true);
  });

  it('recognises a secret that straddles the cut before cutting', () => {
    const email = 'alice@example.com';
    const text = `${'x '.repeat(8 * 1024 - 5)}${email} tail ${'y'.repeat(20_000)}`;
    const result = redactor.string(text);
    expect(result).toContain('[EMAIL]');
    expect(result).not.toContain('alice');
  });

  it('bounds the work on one value', () => {
    const many = Array.from({ length: 100 }, () =>
      Array.from({ length: 100 }, () => ({ a: 'x'.repeat(20_000) })),
    );
    const result = copy(many);
    const flat = result.flat();
    expect(flat).toContain('[Truncated]');
    expect(JSON.stringify(result).length).toBeLessThan(2 * 1024 * 1024);
  });

  it('converts values JSON cannot hold', () => {
    const fn = () => 1;
    const result = copy({
      big: 12345678901234567890n,
      fn,
      sym: Symbol('s'),
      [Symbol('hidden')]: 1,
      buffer: Buffer.from('secret bytes'),
      bytes: new Uint16Array(4),
      date: new Date(0),
      invalid: new Date(Number.NaN),
      set: new Set([1, 'a@b.io']),
      url: new URL('https://user:pw@example.com/x'),
      nan: Number.NaN,
    });
    expect(result).toEqual({
      big: '12345678901234567890',
      buffer: '[Buffer: 12 bytes]',
      bytes: '[Uint16Array: 8 bytes]',
      date: '1970-01-01T00:00:00.000Z',
      invalid: null,
      set: [1, '[EMAIL]'],
      url: 'https://[REDACTED]@example.com/x',
      nan: Number.NaN,
    });
  });

  it('keeps a __proto__ key as data', () => {
    const parsed = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}');
    const result = copy(parsed);
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
    expect(Object.hasOwn(result, '__proto__')).toBe(true);
    expect(JSON.parse(JSON.stringify(result))).toEqual(parsed);
  });

  it('serialises errors with their own fields, cause and aggregated errors', () => {
    const cause = new TypeError('inner token=abc');
    const error = Object.assign(new Error('outer', { cause }), { code: 'E_OUTER', statusCode: 502 });
    const result = copy(error);
    expect(result).toMatchObject({
      type: 'Error',
      message: 'outer',
      code: 'E_OUTER',
      statusCode: 502,
      cause: { type: 'TypeError', message: 'inner token=[REDACTED]' },
    });
    const aggregate = copy(new AggregateError([new RangeError('r')], 'many'));
    expect(aggregate).toMatchObject({
      type: 'AggregateError',
      aggregateErrors: [{ type: 'RangeError', message: 'r' }],
    });

    const looped: any = new Error('loop');
    looped.cause = looped;
    expect(copy(looped).cause).toBe('[Circular]');

    class Hostile extends Error {
      override get message(): string {
        throw new Error('no message');
      }
    }
    expect(copy(new Hostile()).message).toBe('[Unreadable]');
  });

  it("leaves out the payloads libraries hang on errors: a malformed request's raw body, an HTTP client's request and response", () => {
    // What body-parser throws for `{"username":"alice","password":"hunter2",` (cut short).
    const parseError = Object.assign(new SyntaxError('Unexpected end of JSON input'), {
      status: 400,
      type: 'entity.parse.failed',
      body: '{"username":"alice","password":"hunter2",',
      rawBody: Buffer.from('{"password":"hunter2"'),
    });
    const logged = copy(parseError) as Record<string, unknown>;
    expect(logged).toMatchObject({
      type: 'SyntaxError',
      message: 'Unexpected end of JSON input',
      status: 400,
    });
    expect(logged).not.toHaveProperty('body');
    expect(logged).not.toHaveProperty('rawBody');
    expect(JSON.stringify(logged)).not.toContain('hunter2');
    // An HTTP client's error (axios' shape): the request's headers and the response's body.
    const clientError = Object.assign(new Error('Request failed with status code 401'), {
      code: 'ERR_BAD_REQUEST',
      config: { url: '/v1/charges', headers: { 'X-Custom-Auth': 'opaque-credential-1234' } },
      request: { path: '/v1/charges' },
      response: { status: 401, data: 'customer 4111 1111 1111 1111 refused' },
    });
    const client = copy(clientError) as Record<string, unknown>;
    expect(Object.keys(client).sort()).toEqual(['code', 'message', 'stack', 'type']);
    expect(JSON.stringify(client)).not.toContain('opaque-credential');
  });

  it('redacts what error text quotes: sensitive key-value pairs, and the input a JSON parse error shows', () => {
    const redactor = createRedactor({ extraKeys: ['ssn'] });
    // A Prisma validation error prints the query's arguments.
    expect(
      redactor.errorText(
        'Invalid `prisma.account.create()` invocation: { data: { name: "Bob", password: "hunter2-SECRET", ssn: "078-05-1120" } }',
      ),
    ).toBe(
      'Invalid `prisma.account.create()` invocation: { data: { name: "Bob", password: [REDACTED], ssn: [REDACTED] } }',
    );
    expect(redactor.errorText('refused: api_key=ABCDEF, retry in 5 s')).toBe(
      'refused: api_key=[REDACTED], retry in 5 s',
    );
    expect(
      redactor.errorText(`Unexpected token 'h', "{"user":"bob","password": hunter2}" is not valid JSON`),
    ).toBe(`Unexpected token 'h', [REDACTED] is not valid JSON`);
    expect(redactor.errorText("'/cb?code=OAUTH-CODE&state=abc' is not a valid url component")).toBe(
      "'/cb?code=[REDACTED]&state=[REDACTED]' is not a valid url component",
    );
    // Innocent pairs stay readable.
    expect(redactor.errorText('connect ECONNREFUSED host: db.internal port: 5432')).toBe(
      'connect ECONNREFUSED host: db.internal port: 5432',
    );
  });

  it("shows an error an adapter gave a safe message by that message, its stack's frames and its code only", () => {
    const error = Object.assign(new Error('Invalid input: "not-a-uuid-SECRET" for column id'), {
      code: 'P2007',
      meta: { driverAdapterError: { message: 'invalid input syntax for type uuid: "not-a-uuid-SECRET"' } },
    });
    setSafeErrorMessage(error, 'Data validation error');
    const logged = copy(error) as Record<string, unknown>;
    expect(Object.keys(logged).sort()).toEqual(['code', 'message', 'stack', 'type']);
    expect(logged.message).toBe('Data validation error');
    expect(String(logged.stack)).toMatch(/^Error: Data validation error\n {4}at /);
    expect(JSON.stringify(logged)).not.toContain('SECRET');
    // The application's own error is unchanged.
    expect(error.message).toContain('not-a-uuid-SECRET');
    expect(Object.keys(error)).toEqual(['code', 'meta']);
  });

  it('drops what JSON drops and returns primitives as they are', () => {
    expect(copy(undefined)).toBeUndefined();
    expect(copy(() => 1)).toBeUndefined();
    expect(copy(42)).toBe(42);
    expect(copy(null)).toBeNull();
    expect(copy('mail bob@example.org')).toBe('mail [EMAIL]');
  });
});

describe('redaction of repeated values', () => {
  it('redacts like string(), on first sight, from memory, and past the memory bound', () => {
    const fresh = createRedactor({ extraKeys: [] });
    const agent = 'MyApp/1.0 (ops@example.com) curl/8.5.0';
    expect(fresh.repeated(agent)).toBe(fresh.string(agent));
    expect(fresh.repeated(agent)).toBe('MyApp/1.0 ([EMAIL]) curl/8.5.0');
    for (let i = 0; i < 300; i++) fresh.repeated(`agent-${i} user${i}@example.com`);
    expect(fresh.repeated('agent-7 user7@example.com')).toBe('agent-7 [EMAIL]');
    expect(fresh.repeated(agent)).toBe('MyApp/1.0 ([EMAIL]) curl/8.5.0');
    const long = `${'x'.repeat(600)} 4111 1111 1111 1111`;
    expect(fresh.repeated(long)).toBe(fresh.string(long));
    expect(fresh.repeated(long)).not.toContain('4111 1111 1111 1111');
  });
});
