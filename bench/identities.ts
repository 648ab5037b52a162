/**
 * Issue 12's identity figure: the effective identities of a user with 100 segments, looked up per second in the worker
 * (GET /v1/me/identities: the user's account reads the timeline, the worker computes who the user is now and answers
 * the timeline), beside the health route. The users' segments are granted first through the grant route with a real
 * service key, each user's renewals stacking one after another.
 */
import { beside, load, pairedLine } from "./load";
import { BENCH_ADMIN_TOKEN, tokens, type LocalWorker } from "./local-worker";

const USERS = 20;
const SEGMENTS = 100;
/** Users seeded at once (each user's grants go one after another: they stack on one timeline). */
const SEEDING = 10;

export async function identityFigures(worker: LocalWorker, seconds: number, connections: number, say: (s: string) => void): Promise<boolean> {
  const made = await fetch(`${worker.url}/v1/admin/service-keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${BENCH_ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ name: `bench-identities-${Date.now()}`, scopes: ["membership:write"] }),
  });
  if (made.status !== 201) throw new Error(`service key not made: ${made.status} ${await made.text()}`);
  const secret = ((await made.json()) as { secret: string }).secret;
  const prefix = `identities-${Date.now()}`;
  const users = await tokens(USERS, prefix);

  const started = Date.now();
  let refused = 0;
  const seedUser = async (u: number) => {
    for (let s = 0; s < SEGMENTS; s++) {
      const res = await fetch(`${worker.url}/v1/membership/grants`, {
        method: "POST",
        headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
        body: JSON.stringify({ userId: `${prefix}-${u}`, sku: "silver-month", externalRef: `bench-${u}-${s}` }),
      });
      await res.body?.cancel();
      if (res.status !== 201) refused++;
    }
  };
  for (let from = 0; from < USERS; from += SEEDING) {
    await Promise.all(Array.from({ length: Math.min(SEEDING, USERS - from) }, (_, i) => seedUser(from + i)));
  }
  say(`seeded ${USERS} users × ${SEGMENTS} stacked segments in ${((Date.now() - started) / 1000).toFixed(1)} s (${refused} grants refused)`);
  // The grants' events (identity.granted, renewed) drain through the intake queue meanwhile: let them settle first.
  await new Promise((r) => setTimeout(r, 10_000));

  const asUser = (i: number) => ({ headers: { authorization: `Bearer ${users[i % USERS]}` } });
  const lookup = await beside(
    () => load({ name: "GET /health (baseline)", url: `${worker.url}/health`, seconds, connections, next: asUser }),
    () => load({ name: `GET /v1/me/identities, ${SEGMENTS} segments`, url: `${worker.url}/v1/me/identities`, seconds, connections, next: asUser }),
  );
  say(pairedLine(`effective identity lookup, a user with ${SEGMENTS} segments (GET /v1/me/identities, the whole timeline answered)`, lookup, null));
  return refused === 0 && lookup.result.errors + lookup.result.non2xx === 0;
}
