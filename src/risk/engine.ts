/**
 * The pluggable risk engine: asked over HTTP (RISK_ENGINE_URL, signed per Standard Webhooks) about a grant in a risk
 * scene, it answers allow, deny or challenge. Per scene a timeout and a failure mode (open allows, closed denies);
 * suspects are always asked, others only in a scene that asks `always`. Every decision says how it was reached, and
 * task runs keep it in their request record.
 */
import type { Env } from "../env";
import type { Rejection } from "../engine/define";
import { log } from "../platform/log";
import { vars } from "../platform/vars";
import { signatureHeaders } from "../records/deliver";
import { raiseRiskAlerts } from "./alerts";
import { addToList, listed } from "./lists";
import type { RiskScene } from "./scene-definition";
import { type RiskClient, subjectKey, subjectKeys } from "./subjects";

export type RiskVerdict = "allow" | "deny" | "challenge";

/** A risk decision as records keep it. */
export interface RiskDecision {
  scene: string;
  decision: RiskVerdict;
  /** `engine`: its answer; `not-asked`: no suspect in a scene that asks only about suspects; `failure`: the scene's failure mode. */
  by: "engine" | "not-asked" | "failure";
  /** The client's subject on the suspected list, if any. */
  suspected: string | null;
  /** The engine's reason, or what failed. */
  reason?: string;
  /** How long the engine took, in ms. */
  ms?: number;
  /** A challenge the run answered with a valid activity code (used up in its commit). */
  challengeAnswered?: true;
}

/** What the engine is asked about. */
export interface RiskQuestion {
  requestId: string;
  client: RiskClient;
  activity: string | null;
  task: string | null;
  /** The flash sale of a grab. */
  sale?: string;
  /** What the grant would give: the task's reward codes, or the sale's SKU. */
  reward: string[];
}

interface EngineAnswer {
  decision: RiskVerdict;
  reason?: string;
  /** With deny: the engine confirms the user is an abuser (blacklisted when the scene allows it). */
  blacklist?: boolean;
}

function engineAnswer(value: unknown): EngineAnswer | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const a = value as Record<string, unknown>;
  if (a.decision !== "allow" && a.decision !== "deny" && a.decision !== "challenge") return undefined;
  return { decision: a.decision, reason: typeof a.reason === "string" ? a.reason.slice(0, 200) : undefined, blacklist: a.blacklist === true };
}

export async function judge(
  env: Env,
  waitUntil: (p: Promise<unknown>) => void,
  scene: RiskScene,
  q: RiskQuestion,
  now: number,
): Promise<RiskDecision> {
  const suspected = (await listed(env, "suspected", subjectKeys(q.client), now)) ?? null;
  const base = { scene: scene.id, suspected };
  if (!suspected && scene.engine.ask === "suspected") return { ...base, decision: "allow", by: "not-asked" };
  const failed = (reason: string): RiskDecision => {
    log.warn("risk engine failed; the scene's failure mode decides", { scene: scene.id, requestId: q.requestId, reason });
    return { ...base, decision: scene.engine.onFailure === "open" ? "allow" : "deny", by: "failure", reason };
  };
  const url = vars(env).RISK_ENGINE_URL;
  if (!url) return failed("RISK_ENGINE_URL is not set");
  const body = JSON.stringify({
    scene: scene.id,
    user: q.client.user,
    device: q.client.device,
    ip: q.client.ip,
    activity: q.activity,
    task: q.task,
    ...(q.sale && { sale: q.sale }),
    reward: q.reward,
    suspected: suspected !== null,
  });
  const started = Date.now();
  let answer: EngineAnswer | undefined;
  try {
    const headers = { "content-type": "application/json", ...signatureHeaders(env, url, `risk_${q.requestId}`, body, new Date()) };
    const res = await fetch(url, { method: "POST", headers, body, signal: AbortSignal.timeout(scene.engine.timeoutMs) });
    if (!res.ok) return failed(`HTTP ${res.status}`);
    answer = engineAnswer(await res.json());
  } catch (e) {
    return failed((e as Error).name === "TimeoutError" ? `no answer within ${scene.engine.timeoutMs} ms` : String(e));
  }
  if (!answer) return failed("an answer without a decision of allow, deny or challenge");
  const decision: RiskDecision = {
    ...base,
    decision: answer.decision,
    by: "engine",
    ms: Date.now() - started,
    ...(answer.reason && { reason: answer.reason }),
  };
  consequences(env, waitUntil, scene, q, answer, now);
  return decision;
}

/** What an engine's deny or challenge sets off besides the refusal: its alerts, and a confirmed abuser's blacklisting. */
function consequences(env: Env, waitUntil: (p: Promise<unknown>) => void, scene: RiskScene, q: RiskQuestion, a: EngineAnswer, now: number) {
  if (a.decision === "allow") return;
  const subject = subjectKeys(q.client)[0];
  if (!subject) return;
  const detail = { activity: q.activity, task: q.task, ...(q.sale && { sale: q.sale }), ...(a.reason && { reason: a.reason }) };
  raiseRiskAlerts(env, waitUntil, scene, { event: a.decision === "deny" ? "denied" : "challenged", subject, detail }, now);
  if (a.decision !== "deny" || !a.blacklist || !scene.engine.confirmBlacklist || !q.client.user) return;
  const user = subjectKey("user", q.client.user);
  waitUntil(
    addToList(
      env,
      "blacklist",
      {
        subject: user,
        reason: a.reason ?? "confirmed by the risk engine",
        actor: `risk-engine:${scene.id}`,
        scene: scene.id,
        evidence: { requestId: q.requestId, ...detail },
      },
      now,
    )
      .then(() => raiseRiskAlerts(env, waitUntil, scene, { event: "blacklisted", subject: user, detail }, now))
      .catch((e: unknown) => log.error("blacklisting by the risk engine failed", { subject: user, error: String(e) })),
  );
}

/** The refusal a decision answers with, if any. */
export function refusalOf(d: RiskDecision): Rejection | undefined {
  if (d.decision === "allow") return undefined;
  if (d.decision === "deny") return { code: "RISK_REJECTED", message: "this request was refused by risk control" };
  // A task run carrying a valid X-Activity-Code passes its challenge (src/engine/validators/risk.ts); a grab cannot.
  return { code: "CHALLENGE_REQUIRED", message: "prove this is a real client: fetch an activity code and send it as X-Activity-Code" };
}
