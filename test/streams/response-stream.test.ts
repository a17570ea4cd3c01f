// The one wrapper of an RPC response stream (services/agent/streams/response-stream.ts) acts as
// the nested wrappers it replaced: revocation innermost, then error mapping, then the observer.
import { describe, expect, it } from "vitest";
import { ResponseStream, type StreamObserver } from "../../services/agent/streams/response-stream.js";

/** Yields `values`, then waits until `release` is called; fails with `error` if given. */
function source(values: number[], opts: { error?: unknown } = {}) {
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  let returned = false;
  const messages = (async function* () {
    try {
      yield* values;
      await released;
      if (opts.error) throw opts.error;
    } finally {
      returned = true;
    }
  })();
  return { messages, release, returned: () => returned };
}

function observer(log: string[]): StreamObserver {
  return {
    enter: (pull, stream) => {
      log.push("enter");
      return pull(stream);
    },
    ended: (error) => log.push(`ended ${error === undefined ? "ok" : String(error)}`),
    closedByClient: () => log.push("closed by client"),
  };
}

function interrupter(log: string[]) {
  const part = {
    stream: undefined as { interrupt(error: unknown): void } | undefined,
    start(stream: { interrupt(error: unknown): void }) {
      log.push("start");
      part.stream = stream;
    },
    stop: () => log.push("stop"),
  };
  return part;
}

const mapping = { map: (error: unknown) => `mapped(${String(error)})` };

function wrapAll<T>(messages: AsyncIterable<T>, log: string[]) {
  const revocation = interrupter(log);
  const inner = ResponseStream.withInterrupter(messages, revocation);
  const middle = ResponseStream.withErrorMapping(inner, mapping);
  const outer = ResponseStream.withObserver(middle, observer(log));
  return { inner, middle, outer, revocation };
}

describe("ResponseStream", () => {
  it("takes the three parts on one object when attached innermost first", async () => {
    const log: string[] = [];
    const s = source([1, 2]);
    const { inner, middle, outer } = wrapAll(s.messages, log);
    expect(middle).toBe(inner);
    expect(outer).toBe(inner);
    expect(await outer.next()).toEqual({ done: false, value: 1 });
    expect(await outer.next()).toEqual({ done: false, value: 2 });
    const last = outer.next();
    s.release();
    expect(await last).toEqual({ done: true, value: undefined });
    expect(log).toEqual(["enter", "start", "enter", "enter", "stop", "ended ok"]);
  });

  it("wraps again when a part would land inside one already attached", () => {
    const s = source([]);
    const observed = ResponseStream.withObserver(s.messages, observer([]));
    expect(ResponseStream.withErrorMapping(observed, mapping)).not.toBe(observed);
  });

  it("fails the pending pull when interrupted, mapped, and then answers done", async () => {
    const log: string[] = [];
    const s = source([1]);
    const { outer, revocation } = wrapAll(s.messages, log);
    await outer.next();
    const pending = outer.next();
    revocation.stream?.interrupt("revoked");
    await expect(pending).rejects.toBe("mapped(revoked)");
    expect(await outer.next()).toEqual({ done: true, value: undefined });
    expect(log).toEqual(["enter", "start", "enter", "stop", "ended mapped(revoked)"]);
  });

  it("fails the next pull when interrupted between pulls", async () => {
    const log: string[] = [];
    const s = source([1, 2]);
    const { outer, revocation } = wrapAll(s.messages, log);
    await outer.next();
    revocation.stream?.interrupt("revoked");
    await expect(outer.next()).rejects.toBe("mapped(revoked)");
    expect(log.at(-1)).toBe("ended mapped(revoked)");
  });

  it("maps the messages' own failure and tells the observer the mapped error", async () => {
    const log: string[] = [];
    const s = source([], { error: "boom" });
    const { outer } = wrapAll(s.messages, log);
    const pending = outer.next();
    s.release();
    await expect(pending).rejects.toBe("mapped(boom)");
    expect(log).toEqual(["enter", "start", "stop", "ended mapped(boom)"]);
  });

  it("on return, tells the observer and stops watching, leaving the messages to the call's signal", async () => {
    const log: string[] = [];
    const s = source([1]);
    const { outer } = wrapAll(s.messages, log);
    await outer.next();
    expect(await outer.return?.()).toEqual({ done: true, value: undefined });
    expect(log).toEqual(["enter", "start", "closed by client", "stop"]);
    expect(s.returned()).toBe(false);
  });

  it("without an interrupter, returns the messages that have started", async () => {
    const s = source([1]);
    const stream = ResponseStream.withObserver(ResponseStream.withErrorMapping(s.messages, mapping), observer([]));
    await stream.next();
    await stream.return?.();
    expect(s.returned()).toBe(true);
  });
});
