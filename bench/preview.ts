/**
 * Issue 11's preview figure: a task's preview beside a real run of the same task, throughput ratio (goal ≥ 1: a
 * preview writes nothing). Both sides: a login, a per-user daily limit and a red packet with a shared stock; the run
 * reserves the stock and commits in the user's account, the preview peeks at both (and counts in its rate limit).
 */
import { load, type LoadResult } from "./load";
import { pushBesideShipped, type LocalWorker } from "./local-worker";

const TASK = `id: benchPreview
name: Preview against a run
timeWindow: { beginTime: "2026-01-01 00:00:00", endTime: "2027-12-31 23:59:59" }
tasks:
  packet:
    validator: [login, { limit: { perUserPerDay: 1000000 } }]
    reward: [ { redPacket: { amount: 1, stock: 100000000 } } ]
`;

export async function previewFigures(
  worker: LocalWorker,
  users: string[],
  seconds: number,
  connections: number,
  now: string,
  say: (s: string) => void,
): Promise<{ run: LoadResult; preview: LoadResult }> {
  pushBesideShipped(worker.state, { "bench-preview.yaml": TASK });
  await new Promise((r) => setTimeout(r, 7_000));
  const url = `${worker.url}/v1/activities/benchPreview/tasks/packet`;
  // The same users on both sides, each once per figure (a preview's rate limit is per user: 60 a minute).
  const asUser = (i: number) => ({
    headers: { authorization: `Bearer ${users[i % users.length]}`, "content-type": "application/json", "x-fanfare-now": now },
    body: "{}",
  });
  // Warm both paths (config, stubs, the users' accounts) before measuring.
  await load({ name: "warm-up run", url, method: "POST", seconds: 0, amount: 500, connections, next: asUser });
  const run = await load({ name: "POST packet run", url, method: "POST", seconds, connections, next: asUser });
  const preview = await load({ name: "POST packet ?dry=true", url: `${url}?dry=true`, method: "POST", seconds, connections, next: asUser });
  const line = (label: string, r: LoadResult) =>
    `${label}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms (${r.requests} requests, answers ${JSON.stringify(r.statuses)}, ${r.errors} errors)`;
  say(line("red-packet task run (reserve + the user's commit)", run));
  say(line("the same task previewed (?dry=true: peeks, rate limit, nothing written)", preview));
  say(`preview / run throughput ratio: ${(preview.rps / run.rps).toFixed(2)} (goal ≥ 1)`);
  return { run, preview };
}
