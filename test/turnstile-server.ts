/**
 * A local Turnstile siteverify: a real HTTP server that answers as https://challenges.cloudflare.com/turnstile/v0/
 * siteverify does (JSON `{success, "error-codes", challenge_ts, hostname, action}`), so the worker's verifier is
 * tested over HTTP without a browser widget. Runs in Node beside workerd; the worker reaches it at
 * TURNSTILE_VERIFY_URL.
 *
 * What a token does is in its prefix, as Turnstile's documented test keys fix an outcome: `pass-…` passes once (a
 * second verification answers `timeout-or-duplicate`, as real tokens are single-use), `fail-…` answers
 * `invalid-input-response`, `down-…` answers 503, `slow-…` answers after 5 s. A request without the expected secret
 * answers `invalid-input-secret`. `GET /verifications?token=…` lists what the worker sent for a token.
 */
import { createServer, type Server } from "node:http";
import type { TestProject } from "vitest/node";

/** The secret the worker is given as TURNSTILE_SECRET (provided to vitest.config.ts as `turnstileSecret`). */
const TURNSTILE_TEST_SECRET = "0x-local-turnstile-secret-for-tests";

let server: Server;

export default async function setup(project: TestProject) {
  const used = new Set<string>();
  const verifications = new Map<string, unknown[]>();
  server = createServer((req, res) => {
    let data = "";
    req.on("data", (chunk) => (data += chunk));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://turnstile");
      res.setHeader("content-type", "application/json");
      if (req.method === "GET" && url.pathname === "/verifications") {
        return res.end(JSON.stringify(verifications.get(url.searchParams.get("token") ?? "") ?? []));
      }
      if (req.method !== "POST" || url.pathname !== "/siteverify") {
        res.statusCode = 404;
        return res.end(JSON.stringify({ error: "not found" }));
      }
      // Siteverify takes JSON or a form; the worker sends JSON.
      const form = (req.headers["content-type"] ?? "").includes("json")
        ? (JSON.parse(data || "{}") as Record<string, string | undefined>)
        : Object.fromEntries(new URLSearchParams(data));
      const token = form.response ?? "";
      verifications.set(token, [
        ...(verifications.get(token) ?? []),
        { secret: form.secret, remoteip: form.remoteip, idempotency_key: form.idempotency_key },
      ]);
      const answer = (success: boolean, errorCodes: string[] = []) =>
        res.end(
          JSON.stringify({
            success,
            "error-codes": errorCodes,
            ...(success && { challenge_ts: new Date().toISOString(), hostname: "fanfare.test", action: "", cdata: "" }),
          }),
        );
      if (form.secret !== TURNSTILE_TEST_SECRET) return answer(false, [form.secret ? "invalid-input-secret" : "missing-input-secret"]);
      if (!token) return answer(false, ["missing-input-response"]);
      if (token.startsWith("down-")) {
        res.statusCode = 503;
        return res.end(JSON.stringify({ error: "unavailable" }));
      }
      if (token.startsWith("slow-")) return void setTimeout(() => answer(true), 5000);
      if (!token.startsWith("pass-")) return answer(false, ["invalid-input-response"]);
      if (used.has(token)) return answer(false, ["timeout-or-duplicate"]);
      used.add(token);
      return answer(true);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  project.provide("turnstilePort", typeof address === "object" && address ? address.port : 0);
  project.provide("turnstileSecret", TURNSTILE_TEST_SECRET);
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}

declare module "vitest" {
  export interface ProvidedContext {
    turnstilePort: number;
    turnstileSecret: string;
  }
}
