/**
 * Activity codes: short-lived, single-use proofs that a real client asked to run one task just now (seed 002). A code
 * names its user, activity, task, device and expiry and is signed with ACTIVITY_CODE_SECRET (HMAC-SHA256), so issuing
 * one writes nothing; its use is written in the run's commit, in the user's account (the one writer of the user's
 * state), which remembers the code until it expires. A run refused before or at its commit leaves the code unused.
 *
 * Form: `ac1.<claims, base64url JSON>.<HMAC-SHA256 of "ac1.<claims>", base64url>`.
 */
import { z } from "zod";
import { userAccount } from "../../durable-objects/support/stubs";
import { IDEMPOTENCY_TTL_MS } from "../accounts/account-plan";
import type { Rejection } from "../engine/define";
import type { TaskRun } from "../engine/run";
import type { Env } from "../env";
import { AppError } from "../errors";
import { fromBase64, toBase64Url } from "../partners/secrets";
import { vars } from "../platform/vars";
import { randomId } from "../random";

/** The longest a code lives: a task's `activityCode` guard may ask for less. */
export const MAX_CODE_TTL_SECONDS = 300;

const PREFIX = "ac1";

/** What a code says. */
const ClaimsSchema = z
  .object({
    /** The code's id: what the user's account remembers once it was used. */
    id: z.string().min(16).max(64),
    usr: z.string(),
    act: z.string(),
    tsk: z.string(),
    /** The device it was issued to, or null: then any device may use it. */
    dev: z.string().nullable(),
    /** Expiry, epoch ms. */
    exp: z.number().int(),
  })
  .strict();

export type ActivityCodeClaims = z.infer<typeof ClaimsSchema>;

/** Whom and what a code must be for: the run's user, activity and task, and the device the request came from. */
export interface CodeSubject {
  userId: string;
  activityId: string;
  taskId: string;
  deviceId: string | undefined;
}

/** A request's code judged: its claims, or the refusal to answer. */
export type ActivityCodeCheck = { ok: true; claims: ActivityCodeClaims } | { ok: false; rejection: Rejection };

let cachedKey: { secret: string; key: Promise<CryptoKey> } | undefined;

/** The signing key, imported once per isolate (and again if the secret changes). */
function signingKey(env: Env): Promise<CryptoKey> {
  const secret = vars(env).ACTIVITY_CODE_SECRET;
  if (!secret) throw new AppError("UNAVAILABLE", "activity codes are not configured: set ACTIVITY_CODE_SECRET");
  if (cachedKey?.secret !== secret) {
    const key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    cachedKey = { secret, key };
  }
  return cachedKey.key;
}

/** Issues a code for one run of `taskId` by `userId` (on `deviceId`, when given), valid for `ttlSeconds` from `now`. */
export async function issueActivityCode(
  env: Env,
  c: { userId: string; activityId: string; taskId: string; deviceId: string | null; now: number; ttlSeconds: number },
): Promise<{ code: string; claims: ActivityCodeClaims }> {
  const claims: ActivityCodeClaims = {
    id: randomId(16),
    usr: c.userId,
    act: c.activityId,
    tsk: c.taskId,
    dev: c.deviceId,
    exp: c.now + Math.min(c.ttlSeconds, MAX_CODE_TTL_SECONDS) * 1000,
  };
  const signed = `${PREFIX}.${toBase64Url(new TextEncoder().encode(JSON.stringify(claims)))}`;
  const sig = await crypto.subtle.sign("HMAC", await signingKey(env), new TextEncoder().encode(signed));
  return { code: `${signed}.${toBase64Url(new Uint8Array(sig))}`, claims };
}

/** A code's claims if we signed it, else undefined (malformed, forged, signed with another secret). */
async function readActivityCode(env: Env, code: string): Promise<ActivityCodeClaims | undefined> {
  const key = await signingKey(env);
  const [prefix, payload, signature, ...rest] = code.split(".");
  if (prefix !== PREFIX || !payload || !signature || rest.length > 0) return undefined;
  try {
    const sig = fromBase64(signature.replaceAll("-", "+").replaceAll("_", "/"));
    if (!(await crypto.subtle.verify("HMAC", key, sig, new TextEncoder().encode(`${prefix}.${payload}`)))) return undefined;
    const claims = ClaimsSchema.safeParse(JSON.parse(new TextDecoder().decode(fromBase64(payload.replaceAll("-", "+").replaceAll("_", "/")))));
    return claims.success ? claims.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether `code` is a valid, unused activity code for `subject` at `now`: signed by us, bound to this user, activity,
 * task and device (a code issued without a device passes any), not expired, and not used by the user before (a read
 * of the user's account; the use itself is decided in the commit, see consumeActivityCode).
 */
export async function verifyActivityCode(env: Env, code: string | undefined, subject: CodeSubject, now: number): Promise<ActivityCodeCheck> {
  if (code === undefined || code === "") {
    return {
      ok: false,
      rejection: { code: "CODE_REQUIRED", message: `an activity code is required: get one from POST /v1/activities/${subject.activityId}/codes` },
    };
  }
  const claims = code.length <= 2048 ? await readActivityCode(env, code) : undefined;
  const invalid = (why: string): ActivityCodeCheck => ({ ok: false, rejection: { code: "CODE_INVALID", message: `invalid activity code: ${why}` } });
  if (!claims) return invalid("not a code issued by this service");
  if (claims.usr !== subject.userId) return invalid("issued to another user");
  if (claims.act !== subject.activityId || claims.tsk !== subject.taskId) return invalid("issued for another activity or task");
  if (claims.dev !== null && claims.dev !== subject.deviceId) return invalid("issued to another device (X-Device-Id)");
  if (now >= claims.exp) return { ok: false, rejection: { code: "CODE_EXPIRED", message: "the activity code has expired: get a new one" } };
  if (await userAccount(env, subject.userId).activityCodeUsed(claims.id)) return { ok: false, rejection: USED };
  return { ok: true, claims };
}

const USED: Rejection = { code: "CODE_USED", message: "this activity code was already used: get a new one" };

/** The run's activity code (its `X-Activity-Code`) judged for the run's user, activity, task and device. */
export function checkActivityCode(run: TaskRun): Promise<ActivityCodeCheck> {
  const user = run.requireUser();
  const subject = { userId: user.id, activityId: run.activity.id, taskId: run.task.id, deviceId: run.init.client?.deviceId };
  return verifyActivityCode(run.init.env, run.init.client?.activityCode, subject, run.now);
}

/**
 * Marks a checked code to be used up by the run's commit: of concurrent runs with one code, only the first to commit
 * passes (the others are refused CODE_USED), and a run refused at its commit leaves the code unused. The account
 * remembers it while a run could still accept it: until it expires, or for a queued task (whose runs are judged as of
 * their request and may commit until their ticket expires) that much longer.
 */
export function consumeActivityCode(run: TaskRun, claims: ActivityCodeClaims): void {
  if (run.plan.activityCodes.some((c) => c.id === claims.id)) return;
  const keepMs = claims.exp - run.now + (run.task.intake === "queue" ? IDEMPOTENCY_TTL_MS : 0);
  run.plan.activityCodes.push({ id: claims.id, keepMs, rejection: USED });
}
