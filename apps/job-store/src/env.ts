/** The environment as the apps read it: `process.env`, or a copy in tests. */
export type Environment = Readonly<Record<string, string | undefined>>;

/**
 * A setting from the environment with surrounding spaces trimmed, or `undefined` when it is unset
 * or blank. A blank value (`PORT=` in a .env or compose file, an empty variable in a manifest)
 * counts as unset, as everywhere in Sextant: the setting's default applies.
 */
export function envSetting(name: string, env: Environment = process.env): string | undefined {
  const value = env[name]?.trim();
  return value === '' ? undefined : value;
}
