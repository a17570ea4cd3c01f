// One row of the settings table: its flag, environment variable, kind, bounds, default and help.
import type { Config } from "../config.js";

export type Kind = "string" | "int" | "bool" | "list" | "intList" | "url";

export interface Setting<K extends keyof Config = keyof Config> {
  key: K;
  env: string;
  flag?: string;
  kind: Kind;
  min?: number;
  max?: number;
  default: Config[K];
  help: string;
}

export function s<K extends keyof Config>(setting: Setting<K>): Setting<K> {
  return setting;
}
