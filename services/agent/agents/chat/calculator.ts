// A safe arithmetic calculator for the `chat` agent's models: a small recursive-descent parser
// over a fixed grammar, never `eval`. Numbers, + - * / % ^ (right-associative), unary minus,
// parentheses, the constants pi and e, and a fixed set of functions.
//
//   expr    = term (("+" | "-") term)*
//   term    = unary (("*" | "/" | "%") unary)*
//   unary   = ("-" | "+") unary | power
//   power   = primary ("^" unary)?
//   primary = number | name | name "(" expr ("," expr)* ")" | "(" expr ")"

class CalculatorError extends Error {
  override name = "CalculatorError";
}

const FUNCTIONS: Record<string, { arity: [number, number]; fn: (...xs: number[]) => number }> = {
  sqrt: { arity: [1, 1], fn: Math.sqrt },
  abs: { arity: [1, 1], fn: Math.abs },
  round: { arity: [1, 1], fn: Math.round },
  floor: { arity: [1, 1], fn: Math.floor },
  ceil: { arity: [1, 1], fn: Math.ceil },
  ln: { arity: [1, 1], fn: Math.log },
  log: { arity: [1, 1], fn: Math.log10 },
  exp: { arity: [1, 1], fn: Math.exp },
  sin: { arity: [1, 1], fn: Math.sin },
  cos: { arity: [1, 1], fn: Math.cos },
  tan: { arity: [1, 1], fn: Math.tan },
  pow: { arity: [2, 2], fn: Math.pow },
  min: { arity: [1, 64], fn: Math.min },
  max: { arity: [1, 64], fn: Math.max },
};

const CONSTANTS: Record<string, number> = { pi: Math.PI, e: Math.E };

export const MAX_EXPRESSION_LENGTH = 1000;
const MAX_DEPTH = 64;

type Token =
  | { kind: "num"; value: number; at: number }
  | { kind: "name"; value: string; at: number }
  | { kind: "op"; value: string; at: number };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s*(?:(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|([-+*/%^(),]))/y;
  let i = 0;
  while (i < text.length) {
    if (/^\s*$/.test(text.slice(i))) break;
    re.lastIndex = i;
    const m = re.exec(text);
    if (!m) throw new CalculatorError(`unexpected character ${JSON.stringify(text.slice(i).trim()[0])} at ${i + 1}`);
    const at = m.index + m[0].length - (m[1] ?? m[2] ?? m[3] ?? "").length;
    if (m[1] !== undefined) tokens.push({ kind: "num", value: Number(m[1]), at });
    else if (m[2] !== undefined) tokens.push({ kind: "name", value: m[2].toLowerCase(), at });
    else tokens.push({ kind: "op", value: m[3]!, at });
    i = re.lastIndex;
  }
  return tokens;
}

/** Evaluates `expression`; throws {@link CalculatorError} for anything outside the grammar. */
export function evaluate(expression: string): number {
  if (expression.length > MAX_EXPRESSION_LENGTH)
    throw new CalculatorError(`expression longer than ${MAX_EXPRESSION_LENGTH} characters`);
  const tokens = tokenize(expression);
  if (tokens.length === 0) throw new CalculatorError("empty expression");
  let pos = 0;
  let depth = 0;
  const peek = () => tokens[pos];
  const isOp = (v: string) => peek()?.kind === "op" && peek()!.value === v;
  const expect = (v: string) => {
    if (!isOp(v)) throw new CalculatorError(`expected "${v}" ${peek() ? `at ${peek()!.at + 1}` : "at the end"}`);
    pos++;
  };
  const nested = <T>(fn: () => T): T => {
    if (++depth > MAX_DEPTH) throw new CalculatorError("expression nested too deeply");
    try {
      return fn();
    } finally {
      depth--;
    }
  };

  const expr = (): number =>
    nested(() => {
      let value = term();
      while (isOp("+") || isOp("-")) {
        const op = tokens[pos++]!.value;
        const right = term();
        value = op === "+" ? value + right : value - right;
      }
      return value;
    });
  const term = (): number => {
    let value = unary();
    while (isOp("*") || isOp("/") || isOp("%")) {
      const op = tokens[pos++]!.value;
      const right = unary();
      if ((op === "/" || op === "%") && right === 0) throw new CalculatorError("division by zero");
      value = op === "*" ? value * right : op === "/" ? value / right : value % right;
    }
    return value;
  };
  const unary = (): number =>
    nested(() => {
      if (isOp("-")) {
        pos++;
        return -unary();
      }
      if (isOp("+")) {
        pos++;
        return unary();
      }
      return power();
    });
  const power = (): number => {
    const base = primary();
    if (isOp("^")) {
      pos++;
      return base ** unary();
    }
    return base;
  };
  const primary = (): number => {
    const token = peek();
    if (!token) throw new CalculatorError("unexpected end of expression");
    if (token.kind === "num") {
      pos++;
      return token.value;
    }
    if (token.kind === "name") {
      pos++;
      if (isOp("(")) {
        const f = Object.hasOwn(FUNCTIONS, token.value) ? FUNCTIONS[token.value] : undefined;
        if (!f) throw new CalculatorError(`unknown function "${token.value}"`);
        pos++;
        const args = [expr()];
        while (isOp(",")) {
          pos++;
          args.push(expr());
        }
        expect(")");
        if (args.length < f.arity[0] || args.length > f.arity[1]) {
          throw new CalculatorError(
            `${token.value} takes ${f.arity[0] === f.arity[1] ? f.arity[0] : `${f.arity[0]} to ${f.arity[1]}`} argument(s)`,
          );
        }
        return f.fn(...args);
      }
      const c = Object.hasOwn(CONSTANTS, token.value) ? CONSTANTS[token.value] : undefined;
      if (c === undefined) throw new CalculatorError(`unknown name "${token.value}"`);
      return c;
    }
    if (token.value === "(") {
      pos++;
      const value = expr();
      expect(")");
      return value;
    }
    throw new CalculatorError(`unexpected "${token.value}" at ${token.at + 1}`);
  };

  const value = expr();
  if (pos < tokens.length) throw new CalculatorError(`unexpected "${tokens[pos]!.value}" at ${tokens[pos]!.at + 1}`);
  if (!Number.isFinite(value)) throw new CalculatorError("the result is not a finite number");
  return value;
}
