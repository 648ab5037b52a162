/** Drives HTTP load with autocannon and reduces it to the figures we report. */
import autocannon from "autocannon";

export interface LoadResult {
  name: string;
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  /** Answers by HTTP status (what the non-2xx were). */
  statuses: Record<string, number>;
}

export interface LoadOptions {
  name: string;
  url: string;
  method?: "GET" | "POST";
  seconds: number;
  connections: number;
  /** Send exactly this many requests (then `seconds` is ignored). */
  amount?: number;
  /** Per-request headers and body (e.g. a different user's token each time), and a path other than the url's. */
  next?: (i: number) => { headers?: Record<string, string>; body?: string; path?: string };
}

export async function load(o: LoadOptions): Promise<LoadResult> {
  let i = 0;
  const result = await autocannon({
    url: o.url,
    method: o.method ?? "GET",
    ...(o.amount ? { amount: o.amount } : { duration: o.seconds }),
    connections: o.connections,
    requests: o.next
      ? [
          {
            setupRequest: (req) => {
              const n = o.next!(i++);
              return { ...req, headers: { ...req.headers, ...n.headers }, body: n.body, ...(n.path && { path: n.path }) };
            },
          },
        ]
      : undefined,
  });
  return {
    name: o.name,
    requests: result.requests.total,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
    statuses: Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, s]) => [code, (s as { count: number }).count])),
  };
}

/** A throughput figure and its baseline, the health route measured just before and just after it. */
export interface Paired {
  result: LoadResult;
  before: LoadResult;
  after: LoadResult;
  /** result / mean(before, after): a shared machine's load drifts over a long run, so the baseline is taken beside. */
  ratio: number;
}

export async function beside(baseline: () => Promise<LoadResult>, figure: () => Promise<LoadResult>): Promise<Paired> {
  const before = await baseline();
  const result = await figure();
  const after = await baseline();
  return { result, before, after, ratio: result.rps / ((before.rps + after.rps) / 2) };
}

/** One line for a paired figure: its throughput and latency, the baseline's, and the ratio against the goal. */
export function pairedLine(label: string, p: Paired, goal: number | null = 0.5): string {
  const r = p.result;
  return (
    `${label}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms (${r.requests} requests, ${r.non2xx} non-2xx, ${r.errors} errors)   ` +
    `GET /health before/after: ${p.before.rps.toFixed(0)}/${p.after.rps.toFixed(0)} req/s   ratio ${p.ratio.toFixed(2)}${goal === null ? "" : ` (goal ≥ ${goal})`}`
  );
}
