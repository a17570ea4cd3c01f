// A task's input from the command line: --input JSON, --input-file F (- for
// stdin), or key=value pairs (each value JSON when it parses, text otherwise).
import { readFile } from "node:fs/promises";
import type { JsonValue } from "@bufbuild/protobuf";
import { ConfigError } from "../../shared/config.js";

export interface InputFlags {
  input?: string;
  inputFile?: string;
}

function parseJson(text: string, where: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (err) {
    throw new ConfigError(`invalid ${where}: not JSON (${(err as Error).message})`);
  }
}

/** key=value pairs as one object; `a.b=1` nests. */
function pairsToObject(pairs: string[]): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0)
      throw new ConfigError(`invalid input ${JSON.stringify(pair)}: use key=value (or --input JSON / --input-file F)`);
    const path = pair.slice(0, eq).split(".");
    const raw = pair.slice(eq + 1);
    let value: JsonValue;
    try {
      value = JSON.parse(raw) as JsonValue;
    } catch {
      value = raw;
    }
    let at: Record<string, JsonValue> = out;
    for (const part of path.slice(0, -1)) {
      const next = at[part];
      if (!next || typeof next !== "object" || Array.isArray(next)) at[part] = {};
      at = at[part] as Record<string, JsonValue>;
    }
    at[path.at(-1)!] = value;
  }
  return out;
}

export async function readInput(
  flags: InputFlags,
  pairs: string[],
  readStdin: () => Promise<string> = stdinText,
): Promise<JsonValue | undefined> {
  const given = [flags.input !== undefined, flags.inputFile !== undefined, pairs.length > 0].filter(Boolean).length;
  if (given > 1) throw new ConfigError("give the input one way: --input JSON, --input-file F or key=value pairs");
  if (flags.input !== undefined) return parseJson(flags.input, "--input");
  if (flags.inputFile !== undefined) {
    const text =
      flags.inputFile === "-"
        ? await readStdin()
        : await readFile(flags.inputFile, "utf8").catch(() => {
            throw new ConfigError(`invalid --input-file ${JSON.stringify(flags.inputFile)}: cannot read it`);
          });
    return parseJson(text, `--input-file ${flags.inputFile}`);
  }
  return pairs.length > 0 ? pairsToObject(pairs) : undefined;
}

async function stdinText(): Promise<string> {
  let text = "";
  for await (const chunk of process.stdin) text += chunk;
  return text;
}
