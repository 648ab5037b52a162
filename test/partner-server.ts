/**
 * A real HTTP server standing in for partner systems (an HTTP coupon center, a notification receiver). It records
 * what it receives; `POST /control` sets how many of the next requests fail with 503. Runs in Node beside workerd.
 */
import { createServer, type Server } from "node:http";
import type { TestProject } from "vitest/node";

let server: Server;

export default async function setup(project: TestProject) {
  const received: { path: string; headers: Record<string, unknown>; body: unknown }[] = [];
  let failNext = 0;
  server = createServer((req, res) => {
    let data = "";
    req.on("data", (chunk) => (data += chunk));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://partner");
      res.setHeader("content-type", "application/json");
      if (url.pathname === "/control") {
        failNext = Number(JSON.parse(data || "{}").failNext ?? 0);
        res.end(JSON.stringify({ ok: true }));
      } else if (url.pathname === "/received") {
        res.end(JSON.stringify(received.filter((r) => r.path.startsWith(url.searchParams.get("prefix") ?? "/"))));
      } else if (failNext > 0) {
        failNext--;
        res.statusCode = 503;
        res.end(JSON.stringify({ error: "unavailable" }));
      } else {
        received.push({ path: url.pathname, headers: req.headers, body: data ? JSON.parse(data) : null });
        res.end(JSON.stringify({ ok: true }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  project.provide("partnerPort", typeof address === "object" && address ? address.port : 0);
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}

declare module "vitest" {
  export interface ProvidedContext {
    partnerPort: number;
  }
}
