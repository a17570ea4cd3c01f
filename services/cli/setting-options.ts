// Settings (services/shared/config.ts) as command-line options: each command lists the settings it
// takes; a flag given wins over the environment.
import { type Command, Option } from "commander";
import { type Config, loadConfig, SETTINGS, type Setting } from "../shared/config.js";

export type Flags = Record<string, string | undefined>;

/** commander's camelCase option name for a setting's flag, e.g. --database-url → databaseUrl. */
function optionName(flag: string): string {
  return flag.replace(/^--/, "").replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export function addSettingOptions(command: Command, keys: (keyof Config)[]): Command {
  for (const setting of SETTINGS as readonly Setting[]) {
    if (!setting.flag || !keys.includes(setting.key)) continue;
    const fallback = setting.default === undefined ? "" : ` (default: ${JSON.stringify(setting.default)})`;
    command.addOption(new Option(`${setting.flag} <value>`, `${setting.help} Env: ${setting.env}${fallback}`));
  }
  return command;
}

export function configFrom(flags: Flags, overrides: Partial<Config> = {}): Config {
  const byKey: Partial<Record<keyof Config, string>> = {};
  for (const setting of SETTINGS as readonly Setting[]) {
    if (!setting.flag) continue;
    const value = flags[optionName(setting.flag)];
    if (value !== undefined) byKey[setting.key] = value;
  }
  return loadConfig(process.env, byKey, overrides);
}
