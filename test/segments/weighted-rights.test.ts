/**
 * Issue 13, test 1: rights by segment and weight, end to end over HTTP. A static list of 100,000 ids and a rule
 * segment decide each user's branch; 5,000 users' shares of each right come within 2 % of the weights; `sticky`
 * gives each user the same right on every run; a right whose stock is gone drops out and the others share its weight.
 *
 * 5,000 users, not the issue's 10,000: each user's first run creates the user's account (a Durable Object with its
 * own SQLite files), and near 10,000 accounts in one run the local Workers runtime on this machine began failing
 * every object call with "internal error" (its open-file limit is 20,000). 3,000 listed users put the 2 % bound at
 * 2.5 standard deviations of the weighted draw; the sticky shares are fixed by the user ids (49 % / 51 % here).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, pushConfigs, records, runTask } from "../helpers";

const NOW = "2026-11-22T10:00:00+08:00";
const OPERATOR = { authorization: "Bearer test-operator-token" };

const segments = `
segments:
  listed: { kind: static, priority: 20, description: Uploaded list }
  shanghaiWomen:
    kind: rule
    priority: 10
    when: { all: [ { attribute: { name: gender, op: eq, value: female } }, { attribute: { name: city, op: eq, value: Shanghai } } ] }
`;

const activity = `
id: segs
name: Rights by segment
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
tasks:
  claim:
    validator: [login]
    reward:
      bySegment:
        # Written lowest priority first: the node still tries the list (20) before the rule (10).
        - segment: shanghaiWomen
          choose: sticky
          rights:
            - { id: spa, weight: 1, reward: { redPacket: { amount: 21 } } }
            - { id: tea, weight: 1, reward: { redPacket: { amount: 22 } } }
        - segment: listed
          rights:
            - { id: gold, weight: 3, reward: { redPacket: { amount: 30 } } }
            - { id: silver, weight: 1, reward: { redPacket: { amount: 10 } } }
        - default:
            rights: [ { id: basic, reward: { redPacket: { amount: 1 } } } ]
  limited:
    validator: [login]
    reward:
      bySegment:
        - segment: listed
          rights:
            - { id: gold, weight: 2, reward: { redPacket: { amount: 30, stock: 20, stockKey: limitedGold } } }
            - { id: silver, weight: 1, reward: { redPacket: { amount: 10 } } }
            - { id: bronze, weight: 1, reward: { redPacket: { amount: 5 } } }
`;

const LISTED = 3_000;
const RULED = 1_000;
const USERS = 5_000;
const user = (i: number) => `w-${i}`;
/** Users 0..2999 are on the list, 3000..3999 are women in Shanghai, the rest match nothing. */
const claims = (i: number) =>
  i >= LISTED && i < LISTED + RULED ? { gender: "female", city: "Shanghai" } : i % 2 === 0 ? { gender: "female", city: "Beijing" } : {};

/**
 * Runs `task` for every index, `batch` at a time, and answers each outcome's decision and amount. A 503 (an object or
 * D1 busy on this shared machine) is retried after its Retry-After, as a client would.
 */
async function runAll(task: string, indexes: number[], batch = 100) {
  const out = new Map<number, { right: string; segment: string | null; by: string; amount: number; granted: boolean }>();
  for (let i = 0; i < indexes.length; i += batch) {
    await Promise.all(
      indexes.slice(i, i + batch).map(async (n) => {
        let res = await runTask("segs", task, { user: user(n), claims: claims(n), now: NOW });
        for (let retry = 0; res.status === 503 && retry < 5; retry++) {
          await new Promise((r) => setTimeout(r, 1_000));
          res = await runTask("segs", task, { user: user(n), claims: claims(n), now: NOW });
        }
        expect(res.status, JSON.stringify(res.json)).toBe(200);
        const given = res.json.rewards.find((r: any) => r.granted);
        out.set(n, { ...given.decision, amount: given.amount, granted: given.granted });
      }),
    );
  }
  return out;
}

const share = (m: Map<number, { right: string }>, right: string) => [...m.values()].filter((d) => d.right === right).length / m.size;

describe("rights by segment and weight", () => {
  beforeAll(async () => {
    await pushConfigs({ "segments.yaml": segments, "segs.yaml": activity });
    // 100,000 ids: the first 3,000 test users and 97,000 others.
    const ids = [...Array.from({ length: LISTED }, (_, i) => user(i)), ...Array.from({ length: 100_000 - LISTED }, (_, i) => `other-${i}`)];
    const res = await call("/v1/admin/segments/listed/uploads/first", {
      headers: { ...OPERATOR, "content-type": "text/plain" },
      rawBody: ids.join("\n"),
    });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.json).toMatchObject({ version: "first", received: 100_000, size: 100_000, replayed: false });
  }, 120_000);

  it("the matched segment and the choice are in each reward record", async () => {
    const res = await runTask("segs", "claim", { user: user(3), claims: claims(3), now: NOW });
    const given = res.json.rewards[0];
    const [row] = await records<{ detail: string; node_path: string }>(1, "SELECT detail, node_path FROM reward_records WHERE id = ?", given.grantId);
    expect(JSON.parse(row!.detail).decision).toEqual({ segment: "listed", right: given.decision.right, by: "weighted" });
    expect(row!.node_path).toBe(`bySegment/1/${given.decision.right === "gold" ? 0 : 1}`);
  }, 150_000);

  it("over 5,000 users, each segment's rights come within 2 % of their weights, and the default takes the rest", async () => {
    const all = await runAll(
      "claim",
      Array.from({ length: USERS }, (_, i) => i),
    );
    const listed = new Map([...all].filter(([i]) => i < LISTED));
    const ruled = new Map([...all].filter(([i]) => i >= LISTED && i < LISTED + RULED));
    const rest = new Map([...all].filter(([i]) => i >= LISTED + RULED));
    expect([...listed.values()].every((d) => d.segment === "listed" && d.by === "weighted")).toBe(true);
    expect([...ruled.values()].every((d) => d.segment === "shanghaiWomen" && d.by === "sticky")).toBe(true);
    expect([...rest.values()].every((d) => d.segment === null && d.right === "basic" && d.amount === 1)).toBe(true);
    expect(Math.abs(share(listed, "gold") - 0.75)).toBeLessThan(0.02);
    expect(Math.abs(share(listed, "silver") - 0.25)).toBeLessThan(0.02);
    expect(Math.abs(share(ruled, "spa") - 0.5)).toBeLessThan(0.02);
    expect(Math.abs(share(ruled, "tea") - 0.5)).toBeLessThan(0.02);
    // The amount given is the chosen right's.
    const amounts: Record<string, number> = { gold: 30, silver: 10, spa: 21, tea: 22 };
    expect([...listed.values(), ...ruled.values()].every((d) => d.amount === amounts[d.right])).toBe(true);
  }, 2_400_000);

  it("sticky gives each user the same right on every run", async () => {
    const sample = Array.from({ length: 200 }, (_, i) => LISTED + i * 5);
    const first = await runAll("claim", sample);
    const second = await runAll("claim", sample);
    for (const i of sample) expect(second.get(i)!.right).toBe(first.get(i)!.right);
    expect(new Set([...first.values()].map((d) => d.right))).toEqual(new Set(["spa", "tea"]));
  }, 600_000);

  it("a right whose stock is gone drops out and the rights left share its weight", async () => {
    const runs = await runAll(
      "limited",
      Array.from({ length: 2_000 }, (_, i) => i),
    );
    const gold = [...runs.values()].filter((d) => d.right === "gold");
    expect(gold.length).toBe(20);
    const after = new Map([...runs].filter(([, d]) => d.right !== "gold"));
    // Silver and bronze (weights 1 and 1) split what is left evenly: each within 4 % of a half (3.5 sigma at n=1,980).
    expect(Math.abs(share(after, "silver") - 0.5)).toBeLessThan(0.04);
    expect(Math.abs(share(after, "bronze") - 0.5)).toBeLessThan(0.04);
    expect(after.size).toBe(1_980);
  }, 1_200_000);
});
