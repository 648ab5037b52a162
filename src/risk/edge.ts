/**
 * Risk control at the edge of a grant route (task runs, flash-sale grabs), before any work: a blacklisted user,
 * device or address is refused with RISK_REJECTED, then the scene's detectors count the request per subject on the
 * rate-limit backend's sliding windows; a crossing flags the subject onto the suspected list, refuses it, or both.
 */
import type { Context } from "hono";
import { countRequest } from "../accounts/request-records";
import { AppError } from "../errors";
import type { AppEnv } from "../http";
import { log } from "../platform/log";
import { rateLimiter } from "../rate-limit";
import { raiseRiskAlerts } from "./alerts";
import { addToList, listed } from "./lists";
import type { Detector, RiskScene } from "./scene-definition";
import { type RiskClient, riskClient, subjectKey, subjectKeys } from "./subjects";

/** Subjects this isolate is flagging now: concurrent crossings of one subject write once. */
const flagging = new Set<string>();

/**
 * Guards a grant request of `userId` in `scene` (none: the blacklist alone). Returns the client as risk control
 * sees it, for the engine's question later in the request.
 */
export async function guardGrant(c: Context<AppEnv>, userId: string | null, scene: RiskScene | undefined, route: string) {
  const client = riskClient(c, userId);
  const now = Date.now();
  const waitUntil = (p: Promise<unknown>) => c.executionCtx.waitUntil(p);
  const blacklisted = await listed(c.env, "blacklist", subjectKeys(client), now);
  if (blacklisted) {
    countRequest(c.env, waitUntil, route, "RISK_REJECTED");
    throw new AppError("RISK_REJECTED", "this request was refused by risk control");
  }
  if (scene && scene.detectors.length > 0) await detect(c, scene, client, route, now);
  return client;
}

async function detect(c: Context<AppEnv>, scene: RiskScene, client: RiskClient, route: string, now: number) {
  const limiter = await rateLimiter(c.env);
  const waitUntil = (p: Promise<unknown>) => c.executionCtx.waitUntil(p);
  const counted = scene.detectors.flatMap((d) => {
    const value = client[d.by];
    return value ? [{ d, subject: subjectKey(d.by, value) }] : [];
  });
  const results = await Promise.all(
    counted.map(({ d, subject }) =>
      limiter.limit(`risk:${scene.id}/${d.id}:${subject}`, { requests: d.requests, windowSeconds: d.windowSeconds, by: d.by }, waitUntil),
    ),
  );
  let refusal: { d: Detector; resetAt: number } | undefined;
  for (const [i, r] of results.entries()) {
    if (r.allowed) continue;
    const { d, subject } = counted[i]!;
    if (d.action !== "refuse") await flag(c, scene, d, subject, route, now);
    if (d.action !== "flag") refusal ??= { d, resetAt: r.resetAt };
  }
  if (refusal) {
    countRequest(c.env, waitUntil, route, "RATE_LIMITED");
    const { d, resetAt } = refusal;
    throw new AppError("RATE_LIMITED", `too many requests: at most ${d.requests} per ${d.windowSeconds} s`, {
      "retry-after": String(Math.max(1, Math.ceil((resetAt - Date.now()) / 1000))),
    });
  }
}

/** Puts a subject that crossed a detector on the suspected list (once: a subject already suspected is left as it is). */
async function flag(c: Context<AppEnv>, scene: RiskScene, d: Detector, subject: string, route: string, now: number) {
  if (flagging.has(subject) || (await listed(c.env, "suspected", [subject], now))) return;
  flagging.add(subject);
  const evidence = { detector: d.id, by: d.by, requests: d.requests, windowSeconds: d.windowSeconds, route, crossedAt: new Date(now).toISOString() };
  try {
    await addToList(
      c.env,
      "suspected",
      {
        subject,
        reason: `more than ${d.requests} requests in ${d.windowSeconds} s`,
        actor: `detector:${scene.id}/${d.id}`,
        scene: scene.id,
        evidence,
        expiresAt: now + d.suspectForSeconds * 1000,
      },
      now,
    );
    log.warn("risk: subject flagged", { scene: scene.id, subject, ...evidence });
    raiseRiskAlerts(c.env, (p) => c.executionCtx.waitUntil(p), scene, { event: "flagged", subject, detail: evidence }, now);
  } catch (e) {
    // Not flagged this time: the next crossing tries again. The request itself is not failed for it.
    log.error("risk: flagging failed", { subject, error: String(e) });
  } finally {
    flagging.delete(subject);
  }
}
