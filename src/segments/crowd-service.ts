/**
 * External segments and the external right strategy: a crowd service and a ranking service asked over HTTP, each
 * within its timeout. A crowd answer is kept in the isolate for the segment's TTL; a failure (timeout, error, an
 * answer of another shape) is never cached and answers the configured fallback, so a slow service slows no request
 * past its timeout and a recovered one is asked again at once.
 */
import type { Env } from "../env";
import { vars } from "../platform/vars";
import { signedWith } from "../records/deliver";
import { log } from "../platform/log";
import type { UserSegment } from "./segment-definition";

type ExternalSegment = Extract<UserSegment, { kind: "external" }>;

/** How a membership was known: asked now, from the isolate's cache, or the fallback after a failure. */
export type CrowdSource = "service" | "cache" | "fallback";

/** The most crowd answers an isolate keeps (oldest dropped first). */
const CACHED_ANSWERS = 100_000;
const answers = new Map<string, { member: boolean; until: number }>();

/** POSTs `body` as JSON, signed when WEBHOOK_SECRETS holds the origin's secret; the parsed answer, or undefined on any failure. */
async function ask(env: Env, url: string, body: Record<string, unknown>, timeoutMs: number, what: string): Promise<unknown> {
  const text = JSON.stringify(body);
  const headers: Record<string, string> = { "content-type": "application/json" };
  const secret = vars(env).WEBHOOK_SECRETS?.[new URL(url).origin];
  if (secret) Object.assign(headers, signedWith(secret, `q_${crypto.randomUUID()}`, text, new Date()));
  try {
    const res = await fetch(url, { method: "POST", headers, body: text, signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) {
      await res.body?.cancel();
      log.warn(`${what} answered HTTP ${res.status}`, { url });
      return undefined;
    }
    return await res.json();
  } catch (e) {
    log.warn(`${what} failed`, { url, error: String(e) });
    return undefined;
  }
}

/** Whether the crowd service counts the user in `segment` (its cached answer within the TTL; the fallback on failure). */
export async function crowdMember(
  env: Env,
  segment: ExternalSegment,
  userId: string,
  now = Date.now(),
): Promise<{ member: boolean; source: CrowdSource }> {
  const key = `${segment.id}\n${segment.url}\n${userId}`;
  const hit = answers.get(key);
  if (hit && hit.until > now) return { member: hit.member, source: "cache" };
  const answer = await ask(env, segment.url, { segment: segment.id, userId }, segment.timeoutMs, `crowd service of segment '${segment.id}'`);
  const member = (answer as { member?: unknown } | undefined)?.member;
  if (typeof member !== "boolean") return { member: segment.fallback, source: "fallback" };
  if (segment.ttlMs > 0) {
    answers.delete(key);
    answers.set(key, { member, until: now + segment.ttlMs });
    if (answers.size > CACHED_ANSWERS) answers.delete(answers.keys().next().value!);
  }
  return { member, source: "service" };
}

/**
 * The ranking service's order of the rights (ids it named that exist, best first), or undefined when it failed,
 * timed out or named none: the caller then draws by weight.
 */
export async function rankedRights(
  env: Env,
  strategy: { url: string; timeoutMs: number },
  question: { activityId: string; taskId: string; userId: string; segment: string | null; rights: { id: string; weight: number }[] },
): Promise<string[] | undefined> {
  const answer = await ask(env, strategy.url, question, strategy.timeoutMs, "right strategy");
  const ranking = (answer as { ranking?: unknown } | undefined)?.ranking;
  if (!Array.isArray(ranking)) return undefined;
  const known = new Set(question.rights.map((r) => r.id));
  const ids = [...new Set(ranking.filter((id): id is string => typeof id === "string" && known.has(id)))];
  return ids.length > 0 ? ids : undefined;
}
