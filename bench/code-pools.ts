/**
 * Issue 12's code-pool figure: claims per second of one hot redeem-code benefit whose pool holds 100,000 codes over
 * CODE_SHARDS shards, beside health, and the share of the claims the busiest shard served (counted by the shards).
 * The 100,000 codes are imported first through the admin route, in one request; its time is reported too.
 */
import { beside, load, pairedLine, type LoadResult } from "./load";
import { BENCH_ADMIN_TOKEN, pushBesideShipped, type LocalWorker } from "./local-worker";
import { servedBetween, servedCounts } from "./object-share";

const CODES = 100_000;
const CODE_SHARDS = 8;
const NOW = "2026-11-22T10:00:00+08:00";

/** True when every figure ran clean (no errors, every claim answered 200 while codes were left). */
export async function codePoolFigures(
  worker: LocalWorker,
  users: string[],
  health: () => Promise<LoadResult>,
  seconds: number,
  connections: number,
  say: (s: string) => void,
): Promise<boolean> {
  pushBesideShipped(worker.state, {
    "bench-codes.yaml":
      `codePools:\n  bench-codes: { kind: issue, shards: ${CODE_SHARDS} }\n` +
      `id: benchCodes\nname: A hot redeem-code benefit\ntimeWindow: { beginTime: "2026-01-01 00:00:00", endTime: "2027-12-31 23:59:59" }\n` +
      `tasks:\n  claim:\n    validator: [login]\n    reward: [ { redeemCode: { pool: bench-codes } } ]\n`,
  });
  // Picked up within CONFIG_REFRESH_MS.
  await new Promise((r) => setTimeout(r, 6_000));

  const body = Array.from({ length: CODES }, (_, i) => `BENCH-${String(i).padStart(6, "0")}-${(i * 7919) % 104_729}`).join("\n");
  const started = Date.now();
  const imported = await fetch(`${worker.url}/v1/admin/code-pools/bench-codes/imports/bench-${Date.now()}`, {
    method: "POST",
    headers: { authorization: `Bearer ${BENCH_ADMIN_TOKEN}`, "content-type": "text/csv" },
    body,
  });
  const answer = (await imported.json()) as { added?: number; parts?: number; error?: unknown };
  say(
    `import of ${CODES} codes (CSV, ${(body.length / 1024 / 1024).toFixed(1)} MB, one request): ${((Date.now() - started) / 1000).toFixed(1)} s, ` +
      `HTTP ${imported.status}, ${answer.added} added in ${answer.parts} parts over ${CODE_SHARDS} shards`,
  );
  if (imported.status !== 200 || answer.added !== CODES) {
    say(`import refused: ${JSON.stringify(answer.error)}`);
    return false;
  }

  const before = servedCounts(worker.state, "CodePool");
  const claims = await beside(health, () =>
    load({
      name: "POST redeem-code claim",
      url: `${worker.url}/v1/activities/benchCodes/tasks/claim`,
      method: "POST",
      seconds,
      connections,
      next: (i) => ({
        headers: { authorization: `Bearer ${users[i % users.length]}`, "content-type": "application/json", "x-fanfare-now": NOW },
        body: "{}",
      }),
    }),
  );
  const shards = servedBetween(before, servedCounts(worker.state, "CodePool"));
  const r = claims.result;
  say(pairedLine(`redeem-code claim, one pool of ${CODES} codes on ${CODE_SHARDS} shards`, claims, null));
  say(
    `hottest code-pool shard: ${pct(shards.busiest / Math.max(1, r.requests))} of ${r.requests} claims (busiest served ${shards.busiest} takes; ` +
      `${shards.objects} shards served ${shards.total}; answers ${JSON.stringify(r.statuses)}; even: ${pct(1 / CODE_SHARDS)})`,
  );
  return r.errors === 0 && r.non2xx === 0;
}

const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
