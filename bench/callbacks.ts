/**
 * Partner callbacks (issue 12): signed completions, each verified (Standard Webhooks), claimed by webhook-id in D1,
 * applied in the user's account (ticket transition and points earn in one commit) and settled in D1; then the same
 * callbacks again, as replays (verified, answered from D1, nothing applied). Throughput and p99 of each.
 */
import { Webhook } from "standardwebhooks";
import { beside, load, pairedLine, type LoadResult } from "./load";
import { BENCH_ADMIN_TOKEN, pushBesideShipped, type LocalWorker } from "./local-worker";

const PROGRAM = "benchPartnerPoints";

export async function callbackFigures(
  worker: LocalWorker,
  users: string[],
  connections: number,
  say: (s: string) => void,
): Promise<{ applied: LoadResult; replayed: LoadResult }> {
  // A push replaces the whole config: the shipped files go along with the bench's program.
  pushBesideShipped(worker.state, { "bench-partner.yaml": `pointPrograms:\n  ${PROGRAM}: { expiry: never }\n` });
  await new Promise((r) => setTimeout(r, 7_000));

  const partnerId = `bench-${Date.now()}`;
  const created = await fetch(`${worker.url}/v1/admin/partners`, {
    method: "POST",
    headers: { authorization: `Bearer ${BENCH_ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({
      id: partnerId,
      name: "Bench partner",
      url: "https://partner.invalid/deliveries",
      benefits: ["bench-benefit"],
      pointsDelta: { min: 1, max: 100 },
      program: PROGRAM,
      ticketTtlSeconds: 3600,
    }),
  });
  if (created.status !== 201) throw new Error(`partner not created: ${created.status} ${await created.text()}`);
  const secret = ((await created.json()) as { key: { secret: string } }).key.secret;

  // One ticket per user (a redirect each), made before the figure.
  const tickets: string[] = new Array(users.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      for (let i = next++; i < users.length; i = next++) {
        const res = await fetch(`${worker.url}/v1/benefits/bench-benefit/redirect`, {
          headers: { authorization: `Bearer ${users[i]}` },
          redirect: "manual",
        });
        const location = res.headers.get("location");
        if (res.status !== 302 || !location) throw new Error(`redirect answered ${res.status}`);
        tickets[i] = new URL(location).searchParams.get("ticket")!;
      }
    }),
  );

  // Signed now, as the partner would; the figure runs well within the 5 minutes a signature is accepted.
  const wh = new Webhook(secret);
  const callbacks = tickets.map((ticket, i) => {
    const id = `bench_${i}`;
    const body = JSON.stringify({ type: "completed", ticket, pointsDelta: 10, occurredAt: new Date().toISOString() });
    const at = new Date();
    return {
      headers: {
        "content-type": "application/json",
        "webhook-id": id,
        "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
        "webhook-signature": wh.sign(id, at, body),
      },
      body,
    };
  });
  const url = `${worker.url}/v1/partners/${partnerId}/callbacks`;
  // The baseline beside each figure: the health route just before and just after it (the machine's load drifts).
  const health = () => load({ name: "GET /health (baseline)", url: `${worker.url}/health`, seconds: 5, connections });
  const applied = await beside(health, () =>
    load({ name: "callbacks", url, method: "POST", seconds: 0, amount: callbacks.length, connections, next: (i) => callbacks[i]! }),
  );
  const replayed = await beside(health, () =>
    load({ name: "replays", url, method: "POST", seconds: 0, amount: callbacks.length, connections, next: (i) => callbacks[i]! }),
  );
  say(
    pairedLine("partner callback, a completion (verify, claim the webhook-id in D1, ticket + points in the user's account, settle)", applied, null),
  );
  say(pairedLine("the same callbacks replayed (verify, answered from D1, nothing applied)", replayed, null));
  return { applied: applied.result, replayed: replayed.result };
}
