/**
 * held + sold + remaining = stock, and sold ≤ stock, after every step of random sequences of grabs, checkouts,
 * cancellations and expiries (fast-check), through the real worker; on one shard the outcomes also match a model.
 */
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { call, unique } from "../helpers";

const BEGIN = Date.parse("2026-11-11T00:00:00Z");
const TTL_S = 60;
const adminHeaders = { authorization: `Bearer ${env.ADMIN_TOKEN}` };

type Step =
  | { kind: "grab"; user: number }
  | { kind: "checkout"; token: number; byOwner: boolean }
  | { kind: "cancel"; token: number }
  | { kind: "wait"; seconds: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("grab" as const), user: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("checkout" as const), token: fc.nat(20), byOwner: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("cancel" as const), token: fc.nat(20) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("wait" as const), seconds: fc.integer({ min: 10, max: 90 }) }) },
);

interface ModelToken {
  token: string;
  user: string;
  status: "held" | "sold" | "cancelled" | "expired";
  expiresAt: number;
}

describe("a flash sale's stock", () => {
  it("always balances: held + sold + remaining = stock, sold ≤ stock (random sequences)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 2 }),
        fc.array(step, { minLength: 1, maxLength: 25 }),
        async (stock, shards, steps) => {
          fc.pre(shards <= stock);
          const id = `inv-${unique()}`;
          const created = await call("/v1/admin/flash-sales", {
            body: {
              id,
              sku: "INV",
              stock,
              shards,
              perUserLimit: 2,
              checkoutWithinSeconds: TTL_S,
              beginTime: new Date(BEGIN).toISOString(),
              endTime: new Date(BEGIN + 86_400_000).toISOString(),
            },
            headers: adminHeaders,
          });
          expect(created.status, JSON.stringify(created.json)).toBe(201);
          let clock = BEGIN + 1000;
          const tokens: ModelToken[] = [];
          // Tokens whose deadline passed count as expired from then on (the shard expires them at that time).
          const settle = () => tokens.forEach((t) => t.status === "held" && clock > t.expiresAt && (t.status = "expired"));

          for (const s of steps) {
            settle();
            if (s.kind === "grab") {
              const user = `b${s.user}`;
              const r = await call(`/v1/flash-sales/${id}/grab`, { user, now: clock });
              settle();
              const live = tokens.filter((t) => t.user === user && (t.status === "held" || t.status === "sold")).length;
              const used = tokens.filter((t) => t.status === "held" || t.status === "sold").length;
              if (r.status === 200) {
                expect(live).toBeLessThan(2);
                expect(used).toBeLessThan(stock);
                tokens.push({ token: r.json.token, user, status: "held", expiresAt: clock + TTL_S * 1000 });
              } else {
                expect(["SOLD_OUT", "LIMIT_REACHED"]).toContain(r.json.error.code);
                if (r.json.error.code === "LIMIT_REACHED") expect(live).toBe(2);
                // One shard holds all the stock: sold out means nothing is left at all.
                if (shards === 1 && r.json.error.code === "SOLD_OUT") expect(used).toBe(stock);
              }
            } else if (s.kind === "checkout" && tokens.length > 0) {
              const t = tokens[s.token % tokens.length]!;
              const r = await call(`/v1/flash-sales/${id}/checkout`, { user: s.byOwner ? t.user : "intruder", now: clock, body: { token: t.token } });
              if (!s.byOwner) expect(r.json.error.code).toBe("FORBIDDEN");
              else if (t.status === "held" || t.status === "sold") {
                expect(r.status).toBe(200);
                t.status = "sold";
              } else expect(r.json.error.code).toBe("TOKEN_EXPIRED");
            } else if (s.kind === "cancel" && tokens.length > 0) {
              const t = tokens[s.token % tokens.length]!;
              const r = await call(`/v1/flash-sales/${id}/cancel`, { user: t.user, now: clock, body: { token: t.token } });
              const expected = { held: 200, sold: 409, cancelled: 200, expired: 410 }[t.status];
              expect(r.status).toBe(expected);
              if (t.status === "held") t.status = "cancelled";
            } else if (s.kind === "wait") {
              clock += s.seconds * 1000;
            }

            settle();
            const st = (await call(`/v1/admin/flash-sales/${id}`, { method: "GET", headers: adminHeaders, now: clock })).json;
            expect(st.held + st.sold + st.remaining).toBe(st.stock);
            expect(st.stock + st.inTransit).toBe(stock);
            expect(st.sold).toBeLessThanOrEqual(stock);
            for (const shard of st.shards) expect(shard.held + shard.sold + shard.remaining).toBe(shard.stock);
            expect(st.sold).toBe(tokens.filter((t) => t.status === "sold").length);
            expect(st.held).toBe(tokens.filter((t) => t.status === "held").length);
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});
