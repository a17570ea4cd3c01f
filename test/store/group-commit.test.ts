// The group commit's rules, apart from any database: calls of one event-loop turn share a write, a
// call alone is written at the end of its turn, calls that arrive meanwhile share the next write,
// each gets its own answer, and a failing batch fails only the item that fails alone.
import { describe, expect, it } from "vitest";
import { createGroupCommit } from "../../services/agent/store/group-commit.js";

function deferred() {
  let release!: () => void;
  const done = new Promise<void>((resolve) => {
    release = resolve;
  });
  return { done, release };
}

/** The end of this turn of the event loop, when the group commit starts its write. */
const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("group commit", () => {
  it("writes the calls of one turn together", async () => {
    const batches: number[][] = [];
    const submit = createGroupCommit<number, number>({
      maxItems: 10,
      maxInFlight: 2,
      write: async (items) => {
        batches.push(items);
        return items.map((n) => n * 10);
      },
    });
    expect(await Promise.all([1, 2, 3].map(submit))).toEqual([10, 20, 30]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it("writes a call alone at the end of its turn and groups the calls that arrive while it is in flight", async () => {
    const batches: number[][] = [];
    const gate = deferred();
    const submit = createGroupCommit<number, number>({
      maxItems: 3,
      maxInFlight: 1,
      write: async (items) => {
        batches.push(items);
        if (batches.length === 1) await gate.done;
        return items.map((n) => n * 10);
      },
    });
    const first = submit(1);
    expect(batches).toEqual([]);
    await turn();
    expect(batches).toEqual([[1]]);
    const rest = [2, 3, 4, 5, 6].map(submit);
    await turn();
    expect(batches).toEqual([[1]]);
    gate.release();
    expect(await Promise.all([first, ...rest])).toEqual([10, 20, 30, 40, 50, 60]);
    expect(batches).toEqual([[1], [2, 3, 4], [5, 6]]);
  });

  it("keeps at most maxInFlight writes going", async () => {
    let inFlight = 0;
    let most = 0;
    const submit = createGroupCommit<number, number>({
      maxItems: 2,
      maxInFlight: 2,
      write: async (items) => {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 5));
        inFlight--;
        return items;
      },
    });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => submit(i)));
    expect(results).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(most).toBe(2);
  });

  it("retries a failed batch one item at a time, so only the bad item fails", async () => {
    const gate = deferred();
    let calls = 0;
    const submit = createGroupCommit<string, string>({
      maxItems: 10,
      maxInFlight: 1,
      write: async (items) => {
        if (calls++ === 0) await gate.done;
        if (items.includes("bad")) throw new Error("bad row");
        return items.map((s) => s.toUpperCase());
      },
    });
    const first = submit("first");
    await turn();
    const grouped = ["a", "bad", "b"].map((s) => submit(s).catch((error: Error) => error.message));
    gate.release();
    expect(await first).toBe("FIRST");
    expect(await Promise.all(grouped)).toEqual(["A", "bad row", "B"]);
  });

  it("writes each alone with maxItems 1", async () => {
    const sizes: number[] = [];
    const submit = createGroupCommit<number, number>({
      maxItems: 1,
      maxInFlight: 1,
      write: async (items) => {
        sizes.push(items.length);
        return items;
      },
    });
    await Promise.all([1, 2, 3, 4].map(submit));
    expect(sizes).toEqual([1, 1, 1, 1]);
  });

  it("never puts two items of one key in one batch", async () => {
    const batches: string[][] = [];
    const gate = deferred();
    const submit = createGroupCommit<string, string>({
      maxItems: 10,
      maxInFlight: 1,
      keyOf: (item) => item.split(":")[0]!,
      write: async (items) => {
        batches.push(items);
        if (batches.length === 1) await gate.done;
        return items;
      },
    });
    const all = [submit("a:1")];
    await turn();
    all.push(...["a:2", "b:1", "a:3", "c:1", "b:2"].map(submit));
    gate.release();
    expect(await Promise.all(all)).toEqual(["a:1", "a:2", "b:1", "a:3", "c:1", "b:2"]);
    expect(batches).toEqual([["a:1"], ["a:2", "b:1", "c:1"], ["a:3", "b:2"]]);
  });
});
