import { describe, expect, it } from 'vitest';
import { resolveConfig } from './config.ts';
import { SextantConfigError } from './errors.ts';

const resolve = (options: Parameters<typeof resolveConfig>[0] = {}, env: Record<string, string> = {}) =>
  resolveConfig({ ...options, env });

describe('resolveConfig', () => {
  it('applies the documented defaults', () => {
    const { config, warnings } = resolve();
    expect(warnings).toEqual([]);
    expect(config.serviceName).toBe('unknown_service:node');
    expect(config.tracing.exporter).toBe('otlp');
    expect(config.tracing.sampler).toBe('parentbased_always_on');
    expect(config.tracing.attributeValueLengthLimit).toBe(4096);
    expect(config.health.checkTimeoutMs).toBe(500);
    expect(config.metrics.seriesLimit).toBe(2000);
    expect(config.endpoints.prefix).toBe('');
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.tracing)).toBe(true);
  });

  it('lets the environment override options in code', () => {
    const { config } = resolve(
      { serviceName: 'from-code', tracing: { sampler: 'always_on', samplerRatio: 0.5 } },
      {
        OTEL_SERVICE_NAME: 'from-env',
        OTEL_TRACES_SAMPLER: 'traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '0.25',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_BSP_MAX_QUEUE_SIZE: '100',
        OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: '64',
        OTEL_RESOURCE_ATTRIBUTES: 'team=core,region=eu%2Dwest',
        SEXTANT_LOG_LEVEL: 'DEBUG',
        SEXTANT_ENDPOINTS_PREFIX: '/internal',
      },
    );
    expect(config.serviceName).toBe('from-env');
    expect(config.tracing.sampler).toBe('traceidratio');
    expect(config.tracing.samplerRatio).toBe(0.25);
    expect(config.tracing.endpoint).toBe('http://collector:4318');
    expect(config.tracing.batch.maxQueueSize).toBe(100);
    expect(config.tracing.batch.maxExportBatchSize).toBe(100);
    expect(config.tracing.attributeValueLengthLimit).toBe(64);
    expect(config.resourceAttributes).toEqual({ team: 'core', region: 'eu-west' });
    expect(config.logs.level).toBe('debug');
    expect(config.endpoints.prefix).toBe('/internal');
  });

  it.each([
    ['serviceName', { serviceName: 42 }, { OTEL_SERVICE_NAME: 'from-env' }, /option serviceName is 42/],
    [
      'tracing.sampler',
      { tracing: { sampler: 'bogus' } },
      { OTEL_TRACES_SAMPLER: 'always_on' },
      /tracing\.sampler/,
    ],
    [
      'tracing.exporter',
      { tracing: { exporter: 'jaeger' } },
      { OTEL_TRACES_EXPORTER: 'otlp' },
      /tracing\.exporter/,
    ],
    [
      'tracing.protocol',
      { tracing: { protocol: 'grpc' } },
      { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' },
      /tracing\.protocol/,
    ],
    ['tracing.enabled', { tracing: { enabled: 'no' } }, { OTEL_SDK_DISABLED: 'true' }, /tracing\.enabled/],
    [
      'tracing.batch.maxQueueSize',
      { tracing: { batch: { maxQueueSize: -5 } } },
      { OTEL_BSP_MAX_QUEUE_SIZE: '100' },
      /tracing\.batch\.maxQueueSize is -5/,
    ],
    [
      'metrics.seriesLimit',
      { metrics: { seriesLimit: 0 } },
      { SEXTANT_METRICS_SERIES_LIMIT: '10' },
      /metrics\.seriesLimit/,
    ],
    [
      'shutdown.timeoutMs',
      { shutdown: { timeoutMs: 'soon' } },
      { SEXTANT_SHUTDOWN_TIMEOUT_MS: '5' },
      /shutdown\.timeoutMs/,
    ],
  ])('refuses an invalid %s in code even where the environment sets it', (_path, options, env, message) => {
    // The same code must not start where the variable is set and fail where it is not.
    expect(() => resolve(options as never, env)).toThrow(message);
    expect(() => resolve(options as never)).toThrow(message);
  });

  it('refuses a batch size above the queue size in code, naming both', () => {
    expect(() => resolve({ tracing: { batch: { maxQueueSize: 10, maxExportBatchSize: 100 } } })).toThrow(
      'option tracing.batch.maxExportBatchSize is 100: expected at most tracing.batch.maxQueueSize (10)',
    );
    // From the environment it is capped, as the specification says.
    const { config } = resolve({}, { OTEL_BSP_MAX_QUEUE_SIZE: '10', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '100' });
    expect(config.tracing.batch).toMatchObject({ maxQueueSize: 10, maxExportBatchSize: 10 });
  });

  it('takes version, environment and instance from OTEL_RESOURCE_ATTRIBUTES below their own options and variables', () => {
    const attributes =
      'service.name=checkout,service.version=1.4.2,deployment.environment.name=prod,service.instance.id=pod-7';
    const { config } = resolve({}, { OTEL_RESOURCE_ATTRIBUTES: attributes, NODE_ENV: 'production' });
    // What the logs and the health report carry: the same as the spans' resource.
    expect(config).toMatchObject({
      serviceName: 'checkout',
      serviceVersion: '1.4.2',
      environment: 'prod',
      serviceInstanceId: 'pod-7',
    });
    const explicit = resolve(
      { serviceVersion: '2.0.0', serviceInstanceId: 'vm-1' },
      { OTEL_RESOURCE_ATTRIBUTES: attributes, SEXTANT_ENVIRONMENT: 'staging' },
    ).config;
    expect(explicit).toMatchObject({
      serviceVersion: '2.0.0',
      environment: 'staging',
      serviceInstanceId: 'vm-1',
    });
  });

  it('reads the per-signal OTLP variables, which win over the general ones', () => {
    const general = resolve({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).config.tracing;
    expect(general.tracesUrl).toBe('http://collector:4318/v1/traces');
    expect(general.otlpTimeoutMillis).toBe(10_000);
    const { config } = resolve(
      {},
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example.com/ingest',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_HEADERS: 'a=1,b=2',
        OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'b=3',
        OTEL_EXPORTER_OTLP_TIMEOUT: '2000',
        OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '1500',
      },
    );
    expect(config.tracing.tracesUrl).toBe('https://traces.example.com/ingest');
    expect(config.tracing.protocol).toBe('http/json');
    expect(config.tracing.headers).toEqual({ a: '1', b: '3' });
    expect(config.tracing.otlpTimeoutMillis).toBe(1500);
    const invalid = resolve(
      {},
      { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'traces:4318', OTEL_EXPORTER_OTLP_TIMEOUT: '0' },
    );
    expect(invalid.warnings.map((w) => w.message)).toEqual([
      expect.stringContaining('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="traces:4318"'),
      expect.stringContaining('OTEL_EXPORTER_OTLP_TIMEOUT="0"'),
    ]);
    expect(invalid.config.tracing.tracesUrl).toBe('http://localhost:4318/v1/traces');
    expect(invalid.config.tracing.otlpTimeoutMillis).toBe(10_000);
  });

  it('names only the keys of an invalid OTEL_EXPORTER_OTLP_HEADERS, never a value (they are credentials)', () => {
    for (const value of ['x-honeycomb-team=hcaik_01SECRETKEY,dataset', 'api-key=S3CR3T%ZZ']) {
      const { warnings, config } = resolve({}, { OTEL_EXPORTER_OTLP_HEADERS: value });
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.message).not.toMatch(/SECRET|S3CR3T/);
      expect(config.tracing.headers).toEqual({});
    }
    const [warning] = resolve(
      {},
      { OTEL_EXPORTER_OTLP_HEADERS: 'x-honeycomb-team=hcaik_01SECRETKEY,dataset' },
    ).warnings;
    expect(warning!.message).toContain(
      'OTEL_EXPORTER_OTLP_HEADERS="x-honeycomb-team=[REDACTED],[not key=value]"',
    );
  });

  it('OTEL_SDK_DISABLED=true turns tracing off', () => {
    expect(resolve({}, { OTEL_SDK_DISABLED: 'TRUE' }).config.tracing.enabled).toBe(false);
    expect(resolve({}, { OTEL_SDK_DISABLED: 'false' }).config.tracing.enabled).toBe(true);
  });

  it.each([
    ['OTEL_TRACES_SAMPLER', 'sometimes', 'one of always_on'],
    ['OTEL_TRACES_SAMPLER_ARG', '1.5', 'a number from 0 to 1'],
    ['OTEL_TRACES_SAMPLER_ARG', 'half', 'a number from 0 to 1'],
    ['OTEL_BSP_MAX_QUEUE_SIZE', '-3', 'an integer >= 1'],
    ['OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT', '12.5', 'an integer >= 1'],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', 'collector:4318', 'an absolute http:// or https:// URL'],
    ['OTEL_EXPORTER_OTLP_PROTOCOL', 'grpc', 'one of http/protobuf, http/json'],
    ['OTEL_TRACES_EXPORTER', 'zipkin', 'one of otlp, console, memory, none'],
    ['OTEL_RESOURCE_ATTRIBUTES', 'team', 'key=value pairs'],
    ['OTEL_SDK_DISABLED', 'yes', '"true" or "false"'],
  ])(
    'an invalid %s=%s warns, naming variable, value and what is allowed, then uses the default',
    (name, value, allowed) => {
      const { config, warnings } = resolve({}, { [name]: value });
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.message).toContain(name);
      expect(warnings[0]?.message).toContain(JSON.stringify(value));
      expect(warnings[0]?.message).toContain(allowed);
      const defaults = resolve().config;
      expect(config.tracing.sampler).toBe(defaults.tracing.sampler);
      expect(config.tracing.samplerRatio).toBe(defaults.tracing.samplerRatio);
      expect(config.tracing.endpoint).toBe(defaults.tracing.endpoint);
      expect(config.tracing.exporter).toBe(defaults.tracing.exporter);
      expect(config.tracing.enabled).toBe(true);
    },
  );

  it.each([
    ['SEXTANT_LOG_LEVEL', 'loud', 'one of fatal, error'],
    ['SEXTANT_METRICS_SERIES_LIMIT', '0', 'an integer from 1 to 1000000'],
    ['SEXTANT_ACCESS_LOG', 'maybe', '"true" or "false"'],
    ['SEXTANT_ENDPOINTS_PREFIX', 'internal/', 'a path such as "/internal"'],
    ['SEXTANT_HEALTH_TIMEOUT_MS', 'fast', 'an integer from 1 to 600000'],
  ])('an invalid %s=%s stops start-up with a coded error', (name, value, allowed) => {
    let error: unknown;
    try {
      resolve({}, { [name]: value });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(SextantConfigError);
    expect((error as SextantConfigError).code).toBe('SEXTANT_INVALID_ENV');
    expect((error as Error).message).toMatch(/^@sextant\/core: /);
    expect((error as Error).message).toContain(name);
    expect((error as Error).message).toContain(JSON.stringify(value));
    expect((error as Error).message).toContain(allowed);
  });

  it.each([
    [{ serviceName: 42 }, 'option serviceName is 42: expected a non-empty string'],
    [{ tracing: { sampler: 'often' } }, 'option tracing.sampler is "often": expected one of'],
    [{ tracing: { samplerRatio: 2 } }, 'option tracing.samplerRatio is 2: expected a number from 0 to 1'],
    [{ tracing: { endpoint: 'ftp://x' } }, 'expected an absolute http:// or https:// URL'],
    [{ tracing: { batch: { maxQueueSize: 0 } } }, 'option tracing.batch.maxQueueSize is 0'],
    [{ metrics: { seriesLimit: 1.5 } }, 'option metrics.seriesLimit is 1.5: expected an integer'],
    [
      { metrics: { httpDurationBuckets: [1, 0.5] } },
      'expected a non-empty array of finite numbers in increasing order',
    ],
    [{ logs: { level: 'loud' } }, 'option logs.level is "loud"'],
    [{ logs: { destination: {} } }, 'a stream with a write(line) method'],
    [{ http: { requestIdHeader: 'x request id' } }, 'a header name of letters, digits and dashes'],
    [{ http: { ignorePaths: ['health'] } }, 'an array of paths starting with "/"'],
    [{ health: { checkTimeoutMs: 0 } }, 'option health.checkTimeoutMs is 0'],
    [{ tracing: { sampling: 'always_on' } }, 'unknown option tracing.sampling: expected one of enabled'],
    [{ servicename: 'x' }, 'unknown option servicename'],
  ])('an invalid option %j stops start-up, naming it and what is allowed', (options, message) => {
    expect(() => resolve(options as never)).toThrowError(SextantConfigError);
    expect(() => resolve(options as never)).toThrowError(message);
  });

  it('accepts a SpanExporter instance as the exporter', () => {
    const exporter = { export: () => undefined, shutdown: async () => undefined };
    expect(resolve({ tracing: { exporter: exporter as never } }).config.tracing.exporter).toBe(exporter);
  });
});

describe('endpoints.token', () => {
  const SECRET = 's3cr3t-Token_1.2~a+b/c==';

  function configError(options: Parameters<typeof resolveConfig>[0], env: Record<string, string> = {}) {
    try {
      resolve(options, env);
    } catch (error) {
      expect(error).toBeInstanceOf(SextantConfigError);
      return error as SextantConfigError;
    }
    throw new Error('resolveConfig did not throw');
  }

  it('accepts every RFC 6750 token character, from code and from the environment', () => {
    expect(resolve({ endpoints: { token: SECRET } }).config.endpoints.token).toBe(SECRET);
    expect(resolve({}, { SEXTANT_ENDPOINTS_TOKEN: SECRET }).config.endpoints.token).toBe(SECRET);
    expect(resolve().config.endpoints.token).toBeUndefined();
  });

  it('trims the environment value, as it does every variable', () => {
    const { config } = resolve({}, { SEXTANT_ENDPOINTS_TOKEN: ` ${SECRET}\n` });
    expect(config.endpoints.token).toBe(SECRET);
  });

  it('refuses a token from code with a trailing newline, naming the rule and not the secret', () => {
    // Read from a secret file: no client could send it, since header values are trimmed.
    const error = configError({ endpoints: { token: `${SECRET}\n` } });
    expect(error.code).toBe('SEXTANT_INVALID_OPTION');
    expect(error.message).toContain('option endpoints.token is invalid: it contains whitespace');
    expect(error.message).toContain('trim it');
    expect(error.message).toContain('RFC 6750');
    expect(error.message).not.toContain('s3cr3t');
  });

  it.each([
    ['', 'it is empty'],
    ['two words', 'it contains whitespace at character 4 of 9'],
    ['quote"d', 'it contains a character not allowed at character 6 of 7'],
    ['a=b', 'it contains "=" before its end at character 2 of 3'],
    ['==', 'it is only "=" padding'],
    [42, 'it is a number'],
  ])('refuses the token %j from code', (token, problem) => {
    const error = configError({ endpoints: { token: token as string } });
    expect(error.code).toBe('SEXTANT_INVALID_OPTION');
    expect(error.message).toContain(`option endpoints.token is invalid: ${problem}: expected a bearer token`);
  });

  it('refuses an invalid token in the environment without showing it', () => {
    const error = configError({}, { SEXTANT_ENDPOINTS_TOKEN: 'abc,def' });
    expect(error.code).toBe('SEXTANT_INVALID_ENV');
    expect(error.message).toContain(
      'SEXTANT_ENDPOINTS_TOKEN is invalid: it contains a character not allowed',
    );
    expect(error.message).not.toContain('abc');
  });

  it.each(['', '  ', '\n'])(
    'refuses SEXTANT_ENDPOINTS_TOKEN=%j rather than turning authentication off',
    (value) => {
      // A secret that failed to mount; leaving the variable out is how to ask for no token.
      for (const options of [{}, { endpoints: { token: SECRET } }]) {
        const error = configError(options, { SEXTANT_ENDPOINTS_TOKEN: value });
        expect(error.code).toBe('SEXTANT_INVALID_ENV');
        expect(error.message).toContain('SEXTANT_ENDPOINTS_TOKEN is set but blank');
        expect(error.message).toContain('left unset to serve the endpoints without a token');
      }
    },
  );
});
