/**
 * Issue 12's hot-benefit figure: claims per second of one benefit of the benefits center (POST
 * /v1/benefits/{id}/claim) whose material is a redeem code from a pool of 100,000 codes on CODE_SHARDS shards and
 * whose `stock` is spread over STOCK_SHARDS counter shards, by many members at once, beside health. The busiest
 * stock shard's and code-pool shard's shares of the calls are counted by the shards themselves. The codes are
 * imported through the admin route and the members granted through the grant route first.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { beside, load, pairedLine, type LoadResult } from "./load";
import { BENCH_ADMIN_TOKEN, pushBesideShipped, tokens, type LocalWorker } from "./local-worker";
import { servedBetween, servedCounts } from "./object-share";

const CODES = 100_000;
const CODE_SHARDS = 8;
const STOCK_SHARDS = 8;
const MEMBERS = Number(process.env.BENCH_BENEFIT_MEMBERS ?? 2000);
/** Grants sent at once while seeding the members. */
const SEEDING = 16;
const BENEFIT = "bench-hot";
const POOL = "bench-benefit-codes";

/** True when the figure ran clean: every code imported, every member granted, every claim answered 200. */
export async function benefitFigures(
  worker: LocalWorker,
  health: () => Promise<LoadResult>,
  seconds: number,
  connections: number,
  say: (s: string) => void,
): Promise<boolean> {
  // The catalog lives in the membership file: the shipped one, with the hot benefit added.
  const shipped = parse(readFileSync(join(import.meta.dirname, "..", "task-configs", "membership.yaml"), "utf8")) as Record<string, any>;
  shipped.materials[BENEFIT] = { type: "redeemCode", supplier: "Bench", faceValue: 1000, issuance: "onClaim", codePool: POOL };
  shipped.benefits[BENEFIT] = {
    material: BENEFIT,
    title: "A hot redeem code",
    entitles: { identityTypes: ["silver", "gold"] },
    stock: CODES,
    stockShards: STOCK_SHARDS,
  };
  pushBesideShipped(worker.state, {
    "membership.yaml": stringify(shipped),
    "bench-benefit-codes.yaml": `codePools:\n  ${POOL}: { kind: issue, shards: ${CODE_SHARDS} }\n`,
  });
  // Picked up within CONFIG_REFRESH_MS.
  await new Promise((r) => setTimeout(r, 6_000));

  const admin = { authorization: `Bearer ${BENCH_ADMIN_TOKEN}` };
  const body = Array.from({ length: CODES }, (_, i) => `HOT-${String(i).padStart(6, "0")}-${(i * 7919) % 104_729}`).join("\n");
  const imported = await fetch(`${worker.url}/v1/admin/code-pools/${POOL}/imports/bench-${Date.now()}`, {
    method: "POST",
    headers: { ...admin, "content-type": "text/csv" },
    body,
  });
  const answer = (await imported.json()) as { added?: number; error?: unknown };
  if (imported.status !== 200 || answer.added !== CODES) {
    say(`import refused: HTTP ${imported.status} ${JSON.stringify(answer.error)}`);
    return false;
  }

  // Members: a silver month each, through the order system's grant route with a real service key.
  const made = await fetch(`${worker.url}/v1/admin/service-keys`, {
    method: "POST",
    headers: { ...admin, "content-type": "application/json" },
    body: JSON.stringify({ name: `bench-benefits-${Date.now()}`, scopes: ["membership:write"] }),
  });
  if (made.status !== 201) throw new Error(`service key not made: ${made.status} ${await made.text()}`);
  const secret = ((await made.json()) as { secret: string }).secret;
  const prefix = `benefits-${Date.now()}`;
  const seeded = Date.now();
  let refused = 0;
  for (let from = 0; from < MEMBERS; from += SEEDING) {
    await Promise.all(
      Array.from({ length: Math.min(SEEDING, MEMBERS - from) }, async (_, i) => {
        const res = await fetch(`${worker.url}/v1/membership/grants`, {
          method: "POST",
          headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
          body: JSON.stringify({ userId: `${prefix}-${from + i}`, sku: "silver-month", externalRef: `bench-${prefix}-${from + i}` }),
        });
        await res.body?.cancel();
        if (res.status !== 201) refused++;
      }),
    );
  }
  say(
    `imported ${CODES} codes over ${CODE_SHARDS} shards; granted ${MEMBERS} members in ${((Date.now() - seeded) / 1000).toFixed(1)} s (${refused} refused)`,
  );
  // The grants' events drain through the intake queue meanwhile: let them settle first.
  await new Promise((r) => setTimeout(r, 10_000));
  const users = await tokens(MEMBERS, prefix);

  const stockBefore = servedCounts(worker.state, "CounterShard");
  const poolBefore = servedCounts(worker.state, "CodePool");
  const claims = await beside(health, () =>
    load({
      name: `POST /v1/benefits/${BENEFIT}/claim`,
      url: `${worker.url}/v1/benefits/${BENEFIT}/claim`,
      method: "POST",
      seconds,
      connections,
      // Round robin over the members: a member's next claim comes long after the last (the claim's lock is per user).
      next: (i) => ({ headers: { authorization: `Bearer ${users[i % users.length]}` } }),
    }),
  );
  const stock = servedBetween(stockBefore, servedCounts(worker.state, "CounterShard"));
  const pool = servedBetween(poolBefore, servedCounts(worker.state, "CodePool"));
  const r = claims.result;
  say(
    pairedLine(
      `hot benefit claim (redeem code from ${CODES} on ${CODE_SHARDS} shards, stock on ${STOCK_SHARDS} counter shards, ${MEMBERS} members)`,
      claims,
      null,
    ),
  );
  say(
    `busiest stock shard: ${pct(stock.busiest / Math.max(1, stock.total))} of the stock's ${stock.total} calls (${stock.objects} shards served; even: ${pct(1 / STOCK_SHARDS)}); ` +
      `busiest code-pool shard: ${pct(pool.busiest / Math.max(1, pool.total))} of the pool's ${pool.total} calls (${pool.objects} shards; even: ${pct(1 / CODE_SHARDS)}); ` +
      `answers ${JSON.stringify(r.statuses)}`,
  );
  return refused === 0 && r.errors === 0 && r.non2xx === 0;
}

const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
