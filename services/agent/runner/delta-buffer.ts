// Coalesces streamed text (DESIGN.md rule 2): deltas collect for a short window
// or up to a size cap, then go to the log as one event, so a 1,000-token answer
// costs a handful of rows and the stream a client sees is exactly what the log holds.
//
// The window trails the last write, not the first text: text arriving after a quiet
// spell of at least one window (the first token of a run, the first after a tool call)
// is due at once, so a watcher never waits a whole window for the start of an answer.

export interface DeltaBuffer {
  add(text: string): void;
  /** Takes what is buffered now (empty string when nothing). */
  take(): string;
}

export function createDeltaBuffer(opts: {
  windowMs: number;
  maxChars: number;
  onDue: () => void;
  now?: () => number;
}): DeltaBuffer {
  const now = opts.now ?? (() => performance.now());
  let parts: string[] = [];
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  let lastDue = Number.NEGATIVE_INFINITY;
  const due = () => {
    lastDue = now();
    opts.onDue();
  };
  return {
    add(text) {
      if (text === "") return;
      parts.push(text);
      size += text.length;
      if (size >= opts.maxChars) {
        clearTimeout(timer);
        timer = undefined;
        due();
      } else if (!timer) {
        const wait = lastDue + opts.windowMs - now();
        if (wait <= 0) due();
        else
          timer = setTimeout(() => {
            timer = undefined;
            due();
          }, wait);
      }
    },
    take() {
      clearTimeout(timer);
      timer = undefined;
      const text = parts.join("");
      parts = [];
      size = 0;
      return text;
    },
  };
}
