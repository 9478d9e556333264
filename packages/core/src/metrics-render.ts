import { type Metric, type OpenMetricsContentType, Registry } from 'prom-client';
import { COUNTER_SUFFIX } from './metric-names.ts';

export const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
export const OPENMETRICS_CONTENT_TYPE = Registry.OPENMETRICS_CONTENT_TYPE;

export interface RenderedMetrics {
  contentType: string;
  body: string;
}

const OPENMETRICS_MEDIA_TYPE = 'application/openmetrics-text';
// The versions whose syntax prom-client writes: 0.0.1 is the pre-1.0 name Prometheus still asks for.
const OPENMETRICS_VERSIONS: ReadonlySet<string> = new Set(['1.0.0', '0.0.1']);
const TEXT_MEDIA_TYPES: ReadonlySet<string> = new Set(['text/plain', 'text/*', '*/*']);

/**
 * True when the scraper prefers OpenMetrics: some `application/openmetrics-text` range (of a
 * version we write) has a non-zero quality at least that of the best text/plain range.
 * Prometheus asks `application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5,...`.
 */
export function prefersOpenMetrics(accept: string | undefined): boolean {
  if (typeof accept !== 'string' || !accept.includes(OPENMETRICS_MEDIA_TYPE)) return false;
  let openMetricsQuality = 0;
  let textQuality = 0;
  for (const range of accept.split(',')) {
    const [type = '', ...parameters] = range.split(';');
    const mediaType = type.trim().toLowerCase();
    let quality = 1;
    let version: string | undefined;
    for (const parameter of parameters) {
      const separator = parameter.indexOf('=');
      if (separator === -1) continue;
      const key = parameter.slice(0, separator).trim().toLowerCase();
      const value = parameter.slice(separator + 1).trim();
      if (key === 'q') {
        const parsed = Number(value);
        quality = Number.isFinite(parsed) && parsed >= 0 && parsed <= 1 ? parsed : 0;
      } else if (key === 'version') {
        version = value;
      }
    }
    if (mediaType === OPENMETRICS_MEDIA_TYPE) {
      if (version === undefined || OPENMETRICS_VERSIONS.has(version)) {
        openMetricsQuality = Math.max(openMetricsQuality, quality);
      }
    } else if (TEXT_MEDIA_TYPES.has(mediaType)) {
      textQuality = Math.max(textQuality, quality);
    }
  }
  return openMetricsQuality > 0 && openMetricsQuality >= textQuality;
}

type RegisteredMetric = ReturnType<Registry['getMetricsAsArray']>[number];

/**
 * What an OpenMetrics registry renders for a counter. prom-client's OpenMetrics rendering strips
 * `_total` from the counter object's own `name` (a lasting mutation), which would break the
 * Prometheus rendering of that same object; the view carries the family name instead, and
 * prom-client appends `_total` to each sample as OpenMetrics requires.
 */
function counterFamilyView(counter: RegisteredMetric): Metric {
  const familyName = counter.name.endsWith(COUNTER_SUFFIX)
    ? counter.name.slice(0, -COUNTER_SUFFIX.length)
    : counter.name;
  const view = {
    type: 'counter',
    name: familyName,
    async get() {
      const data = await (counter as unknown as Metric).get();
      return { ...data, name: familyName };
    },
  };
  return view as unknown as Metric;
}

/**
 * Renders one registry in either format. The OpenMetrics registry is rebuilt from the
 * Prometheus one on each OpenMetrics scrape (a few dozen references), so metrics registered
 * directly on `registry` appear in both formats.
 */
export function createRenderer(registry: Registry): (openMetrics: boolean) => Promise<string> {
  const counterViews = new WeakMap<RegisteredMetric, Metric>();

  function openMetricsRegistry(): Registry<OpenMetricsContentType> {
    // prom-client's typings omit the constructor's content-type parameter; the setter is typed.
    const openMetrics = new Registry() as unknown as Registry<OpenMetricsContentType>;
    openMetrics.setContentType(OPENMETRICS_CONTENT_TYPE);
    for (const metric of registry.getMetricsAsArray()) {
      if ((metric.type as unknown) !== 'counter') {
        openMetrics.registerMetric(metric as unknown as Metric);
        continue;
      }
      let view = counterViews.get(metric);
      if (view === undefined) {
        view = counterFamilyView(metric);
        counterViews.set(metric, view);
      }
      openMetrics.registerMetric(view);
    }
    return openMetrics;
  }

  return (openMetrics) => (openMetrics ? openMetricsRegistry().metrics() : registry.metrics());
}
