// A form generated from a JSON Schema: one field per property of an object schema (text, number,
// checkbox, select for enums, a JSON box for nested values), or one field for a scalar schema, with
// a raw JSON editor as fallback for anything else. Submits a JSON value; the server validates.
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { html } from "htm/preact";
import { useState } from "preact/hooks";

type Schema = JsonObject;

interface Field {
  name: string;
  schema: Schema;
  required: boolean;
}

const typeOf = (s: Schema): string => {
  const t = s["type"];
  if (Array.isArray(t)) return String(t.find((x) => x !== "null") ?? "");
  if (typeof t === "string") return t;
  if (Array.isArray(s["enum"])) return "enum";
  return "";
};

const isScalar = (s: Schema) =>
  ["string", "integer", "number", "boolean"].includes(typeOf(s)) || Array.isArray(s["enum"]);

function fieldsOf(schema: Schema): Field[] | null {
  if (isScalar(schema)) return [{ name: "", schema, required: true }];
  const props = schema["properties"];
  if (typeOf(schema) !== "object" && !props) return null;
  if (!props || typeof props !== "object" || Array.isArray(props)) return null;
  const required = new Set(Array.isArray(schema["required"]) ? schema["required"].map(String) : []);
  return Object.entries(props).map(([name, s]) => ({
    name,
    schema: s && typeof s === "object" && !Array.isArray(s) ? s : {},
    required: required.has(name),
  }));
}

function initial(f: Field): string {
  const d = f.schema["default"];
  if (d === undefined) return typeOf(f.schema) === "boolean" ? "false" : "";
  return typeof d === "string" ? d : JSON.stringify(d);
}

/** The JSON value of one field's text, or undefined to leave it out. Throws on bad JSON or numbers. */
function parseField(f: Field, text: string): JsonValue | undefined {
  const t = typeOf(f.schema);
  if (t === "boolean") return text === "true";
  if (text.trim() === "") {
    if (t === "string" && f.required) return "";
    return undefined;
  }
  if (t === "integer" || t === "number") {
    const n = Number(text);
    if (!Number.isFinite(n)) throw new Error(`${f.name || "value"}: not a number`);
    return n;
  }
  if (t === "string") return text;
  if (t === "enum") {
    const options = (f.schema["enum"] as JsonValue[]) ?? [];
    return options.find((o) => (typeof o === "string" ? o : JSON.stringify(o)) === text) ?? text;
  }
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    throw new Error(`${f.name || "value"}: not valid JSON`);
  }
}

export function SchemaForm(props: {
  schema: Schema | undefined;
  id: string;
  actions: { label: string; primary?: boolean; run: (value: JsonValue) => Promise<void> | void }[];
  busy?: boolean;
}) {
  const schema = props.schema ?? {};
  const fields = fieldsOf(schema);
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries((fields ?? []).map((f) => [f.name, initial(f)])),
  );
  const [raw, setRaw] = useState(fields === null);
  const [rawText, setRawText] = useState("{}");
  const [problem, setProblem] = useState("");

  const collect = (): JsonValue => {
    if (raw || !fields) {
      try {
        return JSON.parse(rawText) as JsonValue;
      } catch {
        throw new Error("the JSON is not valid");
      }
    }
    if (fields.length === 1 && fields[0]!.name === "") return parseField(fields[0]!, values[""] ?? "") ?? null;
    const out: JsonObject = {};
    for (const f of fields) {
      const v = parseField(f, values[f.name] ?? "");
      if (v !== undefined) out[f.name] = v;
    }
    return out;
  };

  const toggleRaw = () => {
    if (!raw) {
      try {
        setRawText(JSON.stringify(collect(), null, 2));
      } catch {
        /* keep the last raw text */
      }
    }
    setProblem("");
    setRaw(!raw);
  };

  const submit = (run: (v: JsonValue) => Promise<void> | void) => (e: Event) => {
    e.preventDefault();
    let value: JsonValue;
    try {
      value = collect();
    } catch (err) {
      setProblem((err as Error).message);
      return;
    }
    setProblem("");
    void run(value);
  };

  const set = (name: string, v: string) => setValues({ ...values, [name]: v });

  const control = (f: Field) => {
    const id = `${props.id}-${f.name || "value"}`;
    const t = typeOf(f.schema);
    const v = values[f.name] ?? "";
    const label = f.name || "Answer";
    const desc = typeof f.schema["description"] === "string" ? f.schema["description"] : "";
    let input: unknown;
    if (t === "boolean") {
      input = html`<input id=${id} name=${f.name} type="checkbox" checked=${v === "true"}
        onChange=${(e: Event) => set(f.name, String((e.target as HTMLInputElement).checked))} />`;
    } else if (t === "enum" || Array.isArray(f.schema["enum"])) {
      const options = (f.schema["enum"] as JsonValue[]).map((o) => (typeof o === "string" ? o : JSON.stringify(o)));
      input = html`<select id=${id} name=${f.name} value=${v} onChange=${(e: Event) => set(f.name, (e.target as HTMLSelectElement).value)}>
        ${f.required ? null : html`<option value="">—</option>`}
        ${options.map((o) => html`<option value=${o}>${o}</option>`)}
      </select>`;
    } else if (t === "integer" || t === "number") {
      input = html`<input id=${id} name=${f.name} type="number" step=${t === "integer" ? "1" : "any"} value=${v}
        required=${f.required} onInput=${(e: Event) => set(f.name, (e.target as HTMLInputElement).value)} />`;
    } else if (t === "string" && Number(f.schema["maxLength"]) <= 200) {
      input = html`<input id=${id} name=${f.name} type="text" value=${v} required=${f.required}
        onInput=${(e: Event) => set(f.name, (e.target as HTMLInputElement).value)} />`;
    } else {
      input = html`<textarea id=${id} name=${f.name} rows=${t === "string" ? 5 : 3} class=${t === "string" ? "" : "mono"}
        placeholder=${t === "string" ? "" : "JSON"} value=${v} required=${f.required}
        onInput=${(e: Event) => set(f.name, (e.target as HTMLTextAreaElement).value)}></textarea>`;
    }
    return html`<div class=${`field ${t === "boolean" ? "check" : ""}`}>
      <label for=${id}>${label}${f.required ? html`<span class="req" title="required"> *</span>` : null}
        ${t && t !== "enum" ? html` <small class="type">${t}</small>` : null}</label>
      ${input}
      ${desc ? html`<small class="hint">${desc}</small>` : null}
    </div>`;
  };

  return html`<form class="schema-form" onSubmit=${submit(props.actions[0]!.run)}>
    ${
      raw || !fields
        ? html`<div class="field"><label for=${`${props.id}-raw`}>JSON</label>
          <textarea id=${`${props.id}-raw`} class="mono" rows="8" value=${rawText}
            onInput=${(e: Event) => setRawText((e.target as HTMLTextAreaElement).value)}></textarea></div>`
        : fields.map(control)
    }
    ${problem ? html`<p class="error" role="alert">${problem}</p>` : null}
    <div class="actions">
      ${props.actions.map(
        (
          a,
          i,
        ) => html`<button type=${i === 0 ? "submit" : "button"} class=${a.primary ? "primary" : ""} disabled=${props.busy}
          onClick=${i === 0 ? undefined : submit(a.run)}>${a.label}</button>`,
      )}
      ${fields ? html`<button type="button" class="link" onClick=${toggleRaw}>${raw ? "Use the form" : "Edit as JSON"}</button>` : null}
    </div>
  </form>`;
}
