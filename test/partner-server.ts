/**
 * A real HTTP server standing in for partner systems (an HTTP coupon center, a notification receiver, an identity
 * provider's JWKS). It records what it receives; `POST /control` sets how many of the next requests fail with 503
 * and the JWKS it serves. Runs in Node beside workerd.
 */
import { createServer, type Server } from "node:http";
import type { TestProject } from "vitest/node";

let server: Server;

export default async function setup(project: TestProject) {
  const received: { path: string; headers: Record<string, unknown>; body: unknown }[] = [];
  let failNext = 0;
  let jwks = { keys: [] as unknown[] };
  server = createServer((req, res) => {
    let data = "";
    req.on("data", (chunk) => (data += chunk));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://partner");
      res.setHeader("content-type", "application/json");
      if (url.pathname === "/control") {
        const control = JSON.parse(data || "{}");
        failNext = Number(control.failNext ?? 0);
        if (control.jwks) jwks = control.jwks;
        res.end(JSON.stringify({ ok: true }));
      } else if (url.pathname === "/.well-known/jwks.json") {
        res.end(JSON.stringify(jwks));
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
