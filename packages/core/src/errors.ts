/** Every start-up error Sextant raises: coded, and prefixed with the package that raised it. */
export class SextantConfigError extends Error {
  override readonly name = 'SextantConfigError';
  readonly code: string;

  constructor(code: string, message: string, packageName = '@sextant/core') {
    super(`${packageName}: ${message}`);
    this.code = code;
  }
}

export const ERROR_CODES = Object.freeze({
  INVALID_OPTION: 'SEXTANT_INVALID_OPTION',
  INVALID_ENV: 'SEXTANT_INVALID_ENV',
  INVALID_METRIC: 'SEXTANT_INVALID_METRIC',
  DUPLICATE_METRIC: 'SEXTANT_DUPLICATE_METRIC',
  INVALID_HEALTH_CHECK: 'SEXTANT_INVALID_HEALTH_CHECK',
});

/** Renders a value for an error message without letting it break the line or grow unbounded. */
export function describeValue(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'string' ? JSON.stringify(value) : String(JSON.stringify(value) ?? String(value));
  } catch {
    text = Object.prototype.toString.call(value);
  }
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
