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
}

export interface LoadOptions {
  name: string;
  url: string;
  method?: "GET" | "POST";
  seconds: number;
  connections: number;
  /** Per-request headers and body (e.g. a different user's token each time). */
  next?: (i: number) => { headers?: Record<string, string>; body?: string };
}

export async function load(o: LoadOptions): Promise<LoadResult> {
  let i = 0;
  const result = await autocannon({
    url: o.url,
    method: o.method ?? "GET",
    duration: o.seconds,
    connections: o.connections,
    requests: o.next
      ? [
          {
            setupRequest: (req) => {
              const n = o.next!(i++);
              return { ...req, headers: { ...req.headers, ...n.headers }, body: n.body };
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
  };
}
