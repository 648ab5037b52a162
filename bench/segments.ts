/**
 * Issue 13's segment figure: membership checks per second against a static segment of 1,000,000 user ids (the admin
 * membership route: the segment's current version, then its hashed shard, read from D1 or the isolate's cache), beside
 * GET /health, and the list's stored size. The list is uploaded first through the admin route in one request.
 */
import { beside, load, pairedLine, type LoadResult } from "./load";
import { BENCH_ADMIN_TOKEN, pushBesideShipped, type LocalWorker } from "./local-worker";

const IDS = Number(process.env.BENCH_SEGMENT_IDS ?? 1_000_000);

/** True when every figure ran clean (the upload accepted whole, every check answered 200). */
export async function segmentFigures(
  worker: LocalWorker,
  health: () => Promise<LoadResult>,
  seconds: number,
  connections: number,
  say: (s: string) => void,
): Promise<boolean> {
  pushBesideShipped(worker.state, { "bench-segments.yaml": "segments:\n  benchList: { kind: static, priority: 1 }\n" });
  // Picked up within CONFIG_REFRESH_MS.
  await new Promise((r) => setTimeout(r, 6_000));

  const id = (i: number) => `member-${String(i).padStart(7, "0")}`;
  const body = Array.from({ length: IDS }, (_, i) => id(i)).join("\n");
  const started = Date.now();
  const uploaded = await fetch(`${worker.url}/v1/admin/segments/benchList/uploads/bench-${Date.now()}`, {
    method: "POST",
    headers: { authorization: `Bearer ${BENCH_ADMIN_TOKEN}`, "content-type": "text/plain" },
    body,
  });
  const answer = (await uploaded.json()) as { size?: number; shards?: number; bytes?: number; error?: unknown };
  say(
    `upload of ${IDS} ids (text, ${(body.length / 1024 / 1024).toFixed(1)} MB, one request): ${((Date.now() - started) / 1000).toFixed(1)} s, ` +
      `HTTP ${uploaded.status}; stored: ${answer.size} ids in ${answer.shards} shard rows, ${((answer.bytes ?? 0) / 1024 / 1024).toFixed(1)} MB of ids ` +
      `(${((answer.bytes ?? 0) / Math.max(1, answer.size ?? 0)).toFixed(1)} bytes an id)`,
  );
  if (uploaded.status !== 200 || answer.size !== IDS) {
    say(`upload refused: ${JSON.stringify(answer.error)}`);
    return false;
  }
  // Half the checks ask for members, half for ids not on the list, spread over the whole list's shards.
  const checks = await beside(health, () =>
    load({
      name: "GET segment membership",
      url: `${worker.url}/health`,
      seconds,
      connections,
      next: (i) => ({
        headers: { authorization: `Bearer ${BENCH_ADMIN_TOKEN}` },
        path: `/v1/admin/segments/benchList/members/${i % 2 === 0 ? id((i * 7919) % IDS) : `outsider-${i}`}`,
      }),
    }),
  );
  say(pairedLine(`membership check against a static segment of ${IDS} ids`, checks, null));
  return checks.result.errors === 0 && checks.result.non2xx === 0;
}
