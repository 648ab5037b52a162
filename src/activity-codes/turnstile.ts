/**
 * Cloudflare Turnstile: a client proves it passed the challenge with a token, which we check with Turnstile's
 * siteverify API before issuing an activity code. The verifier is an interface so the check can be served by another
 * endpoint (TURNSTILE_VERIFY_URL: a local verifier in tests, a proxy) without touching the route.
 */
import type { Env } from "../env";
import { AppError } from "../errors";
import { log } from "../platform/log";
import { vars } from "../platform/vars";

/** Siteverify's answer, as far as we read it. */
export interface TurnstileVerdict {
  success: boolean;
  /** Siteverify's error codes (`invalid-input-response`, `timeout-or-duplicate`, …). */
  errorCodes: string[];
}

export interface TurnstileVerifier {
  /** Asks whether `token` is a fresh pass; throws TURNSTILE_UNAVAILABLE when no answer can be had. */
  verify(token: string, remoteIp: string | undefined, idempotencyKey: string): Promise<TurnstileVerdict>;
}

/** Error codes that mean our side is wrong (the secret) or Turnstile's is: not the client's fault, so not a 403. */
const NOT_THE_CLIENTS = new Set(["missing-input-secret", "invalid-input-secret", "internal-error", "bad-request"]);

const unavailable = (why: string) =>
  new AppError("TURNSTILE_UNAVAILABLE", `the Turnstile check could not be made (${why}): please retry shortly`, { "retry-after": "5" });

/** Siteverify over HTTP at TURNSTILE_VERIFY_URL with TURNSTILE_SECRET (JSON body, as Turnstile's docs show). */
export function siteverify(env: Env): TurnstileVerifier {
  const v = vars(env);
  return {
    async verify(token, remoteIp, idempotencyKey) {
      if (!v.TURNSTILE_SECRET) throw new AppError("UNAVAILABLE", "Turnstile is not configured: set TURNSTILE_SECRET");
      let res: Response;
      try {
        res = await fetch(v.TURNSTILE_VERIFY_URL, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ secret: v.TURNSTILE_SECRET, response: token, remoteip: remoteIp, idempotency_key: idempotencyKey }),
          signal: AbortSignal.timeout(v.TURNSTILE_TIMEOUT_MS),
        });
      } catch (e) {
        log.warn("turnstile siteverify unreachable", { error: String(e) });
        throw unavailable(e instanceof Error && e.name === "TimeoutError" ? "no answer in time" : "unreachable");
      }
      const body = (await res.json().catch(() => undefined)) as { success?: unknown; "error-codes"?: unknown } | undefined;
      if (!res.ok || typeof body?.success !== "boolean") {
        log.warn("turnstile siteverify failed", { status: res.status });
        throw unavailable(`siteverify answered ${res.status}`);
      }
      const errorCodes = Array.isArray(body["error-codes"]) ? body["error-codes"].map(String) : [];
      return { success: body.success, errorCodes };
    },
  };
}

/** Refuses the request unless `token` passes the verifier: TURNSTILE_REQUIRED, TURNSTILE_FAILED or TURNSTILE_UNAVAILABLE. */
export async function requireTurnstile(verifier: TurnstileVerifier, token: string | undefined, remoteIp: string | undefined, requestId: string) {
  if (!token) throw new AppError("TURNSTILE_REQUIRED", "this task asks for a Turnstile check first: send its token as turnstileToken");
  const verdict = await verifier.verify(token, remoteIp, requestId);
  if (verdict.success) return;
  const ours = verdict.errorCodes.filter((c) => NOT_THE_CLIENTS.has(c));
  if (ours.length > 0) {
    log.error("turnstile siteverify refused our request", { errorCodes: ours });
    throw unavailable(ours.join(", "));
  }
  throw new AppError("TURNSTILE_FAILED", `the Turnstile check failed (${verdict.errorCodes.join(", ") || "not a valid pass"}): solve it again`);
}
