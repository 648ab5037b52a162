/**
 * Whom risk control judges: the signed-in user, the device (`X-Device-Id`) and the client's address (Cloudflare's
 * CF-Connecting-IP, never X-Forwarded-For, which any client can write), each as one list key (`u:…`, `d:…`, `ip:…`).
 */
import type { Context } from "hono";
import type { RunClient } from "../engine/run";
import type { AppEnv } from "../http";
import type { SubjectKind } from "./scene-definition";

/** The client of a grant request as risk control sees it; absent parts are null. */
export interface RiskClient {
  user: string | null;
  device: string | null;
  ip: string | null;
}

const PREFIX: Record<SubjectKind, string> = { user: "u", device: "d", ip: "ip" };

/** The list key of a subject, e.g. `u:alice`. */
export const subjectKey = (kind: SubjectKind, value: string) => `${PREFIX[kind]}:${value}`;

/** A list key read back as its kind and value (undefined for a key no subject makes). */
export function parseSubjectKey(key: string): { type: SubjectKind; value: string } | undefined {
  const at = key.indexOf(":");
  const kind = (Object.keys(PREFIX) as SubjectKind[]).find((k) => PREFIX[k] === key.slice(0, at));
  return kind ? { type: kind, value: key.slice(at + 1) } : undefined;
}

export function riskClient(c: Context<AppEnv>, userId: string | null): RiskClient {
  return riskClientOf(userId, { deviceId: c.req.header("x-device-id"), ip: c.req.header("cf-connecting-ip") });
}

/** The client of a run as risk control sees it, from what its request carried (a queued run's, as seen at intake). */
export function riskClientOf(userId: string | null, client: RunClient | undefined): RiskClient {
  return { user: userId, device: client?.deviceId?.slice(0, 128) || null, ip: client?.ip ?? null };
}

/** The client's subjects that are known, as list keys. */
export function subjectKeys(client: RiskClient): string[] {
  return (["user", "device", "ip"] as const).flatMap((k) => (client[k] ? [subjectKey(k, client[k]!)] : []));
}
