// The one check every request message passes before a handler sees it (the input
// interceptor; Converse applies it per message, so a bad one is a rejection). It finds
// what decodes fine but that no handler, JSON conversion or Postgres can take, and
// names each place by its path:
// - strings (every field, map key, Value string and Struct key) holding U+0000 or a lone
//   UTF-16 surrogate: Postgres text and jsonb refuse both;
// - google.protobuf.Value with no kind, or a number that is NaN or ±Infinity (binary NaN,
//   or JSON `1e400`): they have no JSON form;
// - Values nested deeper than the input depth limit;
// - Duration and Timestamp outside their documented ranges.
import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import type { Value } from "@bufbuild/protobuf/wkt";
import type { FieldViolation } from "../../shared/errors.js";

export interface RequestCheckLimits {
  /** Deepest nesting of a JSON value (objects and arrays) accepted. */
  maxInputDepth: number;
}

/** ±10,000 years, as google/protobuf/duration.proto defines. */
const MAX_DURATION_SECONDS = 315_576_000_000n;
/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, as google/protobuf/timestamp.proto defines. */
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;
/** Echoed map keys and Struct keys are cut to this length in paths. */
const MAX_KEY_IN_PATH = 40;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why `text` cannot be stored, or undefined when it can. */
function stringProblem(text: string): string | undefined {
  if (text.includes("\u0000")) return "must not contain U+0000 (NUL)";
  if (LONE_SURROGATE.test(text)) return "must not contain a lone UTF-16 surrogate";
  return undefined;
}

function keyInPath(key: string): string {
  const shown = key.length > MAX_KEY_IN_PATH ? `${key.slice(0, MAX_KEY_IN_PATH)}…` : key;
  return JSON.stringify(shown).slice(1, -1);
}

function joinPath(prefix: string, name: string): string {
  return prefix === "" ? name : `${prefix}.${name}`;
}

/**
 * Where a value is, spelled out only when something there is reported: most requests have no
 * problem, and building every field's path text up front was most of this check's cost.
 */
type Path = string | PathStep;
type PathStep =
  | { up: Path; field: string } // joinPath(up, field)
  | { up: Path; mapKey: string } // up[key]
  | { up: Path; index: number } // up[index]
  | { up: Path; structKey: string }; // up.key

function pathText(path: Path): string {
  if (typeof path === "string") return path;
  const up = pathText(path.up);
  if ("field" in path) return joinPath(up, path.field);
  if ("mapKey" in path) return `${up}[${keyInPath(path.mapKey)}]`;
  if ("index" in path) return `${up}[${path.index}]`;
  return `${up}.${keyInPath(path.structKey)}`;
}

/** Every problem in `message` (of type `desc`), each with its path from `prefix`. */
export function checkMessage(
  desc: DescMessage,
  message: object,
  limits: RequestCheckLimits,
  prefix = "",
): FieldViolation[] {
  const out: FieldViolation[] = [];
  walkMessage(desc, message as Record<string, unknown>, prefix, limits, out);
  return out;
}

function walkMessage(
  desc: DescMessage,
  msg: Record<string, unknown>,
  path: Path,
  limits: RequestCheckLimits,
  out: FieldViolation[],
): void {
  switch (desc.typeName) {
    case "google.protobuf.Value":
      walkValue(msg as unknown as Value, path, limits.maxInputDepth, out);
      return;
    case "google.protobuf.Duration":
      checkDuration(msg as { seconds: bigint; nanos: number }, path, out);
      return;
    case "google.protobuf.Timestamp":
      checkTimestamp(msg as { seconds: bigint; nanos: number }, path, out);
      return;
  }
  for (const member of desc.members) {
    if (member.kind === "oneof") {
      const chosen = msg[member.localName] as { case?: string; value?: unknown } | undefined;
      const field = member.fields.find((f) => f.localName === chosen?.case);
      if (field) walkField(field, chosen?.value, path, limits, out);
    } else {
      walkField(member, msg[member.localName], path, limits, out);
    }
  }
}

function walkField(
  field: DescField,
  value: unknown,
  prefix: Path,
  limits: RequestCheckLimits,
  out: FieldViolation[],
): void {
  if (value === undefined || value === null) return;
  const path: Path = { up: prefix, field: field.name };
  switch (field.fieldKind) {
    case "scalar":
      if (field.scalar === ScalarType.STRING) checkString(value as string, path, out);
      return;
    case "enum":
      return;
    case "message":
      walkMessage(field.message, value as Record<string, unknown>, path, limits, out);
      return;
    case "list":
      (value as unknown[]).forEach((item, i) => {
        if (field.listKind === "scalar" && field.scalar === ScalarType.STRING)
          checkString(item as string, { up: path, index: i }, out);
        else if (field.listKind === "message")
          walkMessage(field.message, item as Record<string, unknown>, { up: path, index: i }, limits, out);
      });
      return;
    case "map":
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        const itemPath: Path = { up: path, mapKey: key };
        if (field.mapKey === ScalarType.STRING) {
          const problem = stringProblem(key);
          if (problem) {
            out.push({ field: pathText(itemPath), description: `key ${problem}`, reason: "INVALID_CHARACTER" });
          }
        }
        if (field.mapKind === "scalar" && field.scalar === ScalarType.STRING)
          checkString(item as string, itemPath, out);
        else if (field.mapKind === "message")
          walkMessage(field.message, item as Record<string, unknown>, itemPath, limits, out);
      }
      return;
  }
}

function checkString(text: string, path: Path, out: FieldViolation[]): void {
  const problem = stringProblem(text);
  if (problem) out.push({ field: pathText(path), description: problem, reason: "INVALID_CHARACTER" });
}

/** A Value tree, without recursion (it may be deep), stopping below the depth limit. */
function walkValue(root: Value, rootPath: Path, maxDepth: number, out: FieldViolation[]): void {
  // depth = how many objects and arrays enclose this value's own contents (as jsonDepth counts).
  const stack: [Value, Path, number][] = [[root, rootPath, 0]];
  let tooDeepReported = false;
  while (stack.length > 0) {
    const [value, path, depth] = stack.pop()!;
    const kind = value.kind;
    switch (kind.case) {
      case undefined:
        out.push({
          field: pathText(path),
          description: "is a google.protobuf.Value with no kind set (use null_value for null)",
          reason: "INVALID_VALUE",
        });
        break;
      case "numberValue":
        if (!Number.isFinite(kind.value)) {
          out.push({
            field: pathText(path),
            description: "must be a finite number (JSON has no NaN or Infinity)",
            reason: "INVALID_VALUE",
          });
        }
        break;
      case "stringValue":
        checkString(kind.value, path, out);
        break;
      case "structValue":
      case "listValue": {
        if (depth + 1 > maxDepth) {
          if (!tooDeepReported) {
            out.push({
              field: pathText(rootPath),
              description: `is nested deeper than ${maxDepth} levels`,
              reason: "INPUT_TOO_DEEP",
            });
            tooDeepReported = true;
          }
          break;
        }
        if (kind.case === "structValue") {
          for (const [key, child] of Object.entries(kind.value.fields)) {
            const childPath: Path = { up: path, structKey: key };
            const problem = stringProblem(key);
            if (problem) {
              out.push({ field: pathText(childPath), description: `key ${problem}`, reason: "INVALID_CHARACTER" });
            }
            stack.push([child, childPath, depth + 1]);
          }
        } else {
          kind.value.values.forEach((child, i) => {
            stack.push([child, { up: path, index: i }, depth + 1]);
          });
        }
        break;
      }
    }
  }
}

function checkDuration(d: { seconds: bigint; nanos: number }, at: Path, out: FieldViolation[]): void {
  const { seconds, nanos } = d;
  if (seconds > MAX_DURATION_SECONDS || seconds < -MAX_DURATION_SECONDS) {
    out.push({
      field: joinPath(pathText(at), "seconds"),
      description: "must be within ±315576000000 (10,000 years)",
      reason: "INVALID_DURATION",
    });
  }
  if (!Number.isInteger(nanos) || nanos > 999_999_999 || nanos < -999_999_999) {
    out.push({
      field: joinPath(pathText(at), "nanos"),
      description: "must be within ±999999999",
      reason: "INVALID_DURATION",
    });
  } else if ((seconds > 0n && nanos < 0) || (seconds < 0n && nanos > 0)) {
    out.push({
      field: joinPath(pathText(at), "nanos"),
      description: "must have the sign of seconds",
      reason: "INVALID_DURATION",
    });
  }
}

function checkTimestamp(t: { seconds: bigint; nanos: number }, at: Path, out: FieldViolation[]): void {
  if (t.seconds < MIN_TIMESTAMP_SECONDS || t.seconds > MAX_TIMESTAMP_SECONDS) {
    out.push({
      field: joinPath(pathText(at), "seconds"),
      description: "must be between 0001-01-01 and 9999-12-31",
      reason: "INVALID_TIMESTAMP",
    });
  }
  if (!Number.isInteger(t.nanos) || t.nanos < 0 || t.nanos > 999_999_999) {
    out.push({
      field: joinPath(pathText(at), "nanos"),
      description: "must be between 0 and 999999999",
      reason: "INVALID_TIMESTAMP",
    });
  }
}
