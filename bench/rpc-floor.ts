/**
 * `npm run bench:floor`: what one Durable Object RPC costs through `wrangler dev` on this machine, as a ratio to a
 * health route of the same worker (each beside health measured just before and after it). A route that makes n such
 * calls cannot do better than about the n-th power of these ratios; BENCHMARKS.md reads the draw figure against it.
 */
import { join } from "node:path";
import { beside, load, pairedLine } from "./load";
import { DEFAULT_STATE_DIR, startWorker } from "./local-worker";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);

async function main() {
  const state = join(process.env.BENCH_STATE_DIR ?? DEFAULT_STATE_DIR, "..", "floor-state");
  const worker = await startWorker(Number(process.env.BENCH_PORT ?? 8790), { config: "bench/rpc-floor/wrangler.toml", state });
  try {
    console.log(`# npm run bench:floor — ${new Date().toISOString()}, ${SECONDS}s per figure, ${CONNECTIONS} connections, state in ${state}`);
    const route = (path: string) => () => load({ name: path, url: `${worker.url}${path}`, seconds: SECONDS, connections: CONNECTIONS });
    await load({ name: "warm-up", url: `${worker.url}/rpc-insert`, seconds: 2, connections: CONNECTIONS });
    console.log(pairedLine("one RPC doing nothing", await beside(route("/health"), route("/rpc")), null));
    console.log(pairedLine("one RPC inserting a row", await beside(route("/health"), route("/rpc-insert")), null));
    console.log(pairedLine("one RPC inserting a row, into one of 5,000 objects", await beside(route("/health"), route("/rpc-insert-spread")), null));
    console.log(pairedLine("one RPC inserting a row, into a new object", await beside(route("/health"), route("/rpc-insert-new")), null));
  } finally {
    await worker.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
