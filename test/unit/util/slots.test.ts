import { describe, expect, test } from "bun:test";
import { Slots } from "../../../src/util/slots.ts";

describe("Slots", () => {
  test("at most `count` holders at once, and waiters are served in the order they asked", async () => {
    const slots = new Slots(2);
    const order: string[] = [];
    let holding = 0;
    let most = 0;
    const job = async (name: string, ms: number) => {
      await slots.acquire();
      order.push(name);
      most = Math.max(most, ++holding);
      await Bun.sleep(ms);
      holding--;
      slots.release();
    };
    await Promise.all([job("a", 20), job("b", 5), job("c", 5), job("d", 5), job("e", 5)]);
    expect(most).toBe(2);
    expect(order).toEqual(["a", "b", "c", "d", "e"]);
  });
});
