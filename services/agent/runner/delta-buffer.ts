// Coalesces streamed text (DESIGN.md rule 2): deltas collect for a short window
// or up to a size cap, then go to the log as one event, so a 1,000-token answer
// costs a handful of rows and the stream a client sees is exactly what the log holds.

export interface DeltaBuffer {
  add(text: string): void;
  /** Takes what is buffered now (empty string when nothing). */
  take(): string;
}

export function createDeltaBuffer(opts: { windowMs: number; maxChars: number; onDue: () => void }): DeltaBuffer {
  let parts: string[] = [];
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  return {
    add(text) {
      if (text === "") return;
      parts.push(text);
      size += text.length;
      if (size >= opts.maxChars) {
        clearTimeout(timer);
        timer = undefined;
        opts.onDue();
      } else if (!timer) {
        timer = setTimeout(() => {
          timer = undefined;
          opts.onDue();
        }, opts.windowMs);
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
