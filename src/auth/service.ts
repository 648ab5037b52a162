/**
 * Business systems' credentials on service routes: `requireService(scope)` takes only `Authorization: Bearer fsk_…`
 * (src/service-keys), checks the key's scope, and puts the key (`{id, name}`) on the context as `serviceKey`, so
 * the request is attributed to it in its log line and records. A consumer token or the operator token is refused
 * with WRONG_CREDENTIALS, as a service key is on consumer and admin routes: no credential passes another's route.
 *
 * Verified keys are cached per isolate for SERVICE_KEY_CACHE_MS (30 s), so a busy caller does not cost a D1 read
 * per request: a revocation or rotation takes effect at once in the isolate that made it, and within that window
 * everywhere else.
 */
import type { Context, MiddlewareHandler } from "hono";
import { AppError } from "../errors";
import { database, type AppEnv } from "../http";
import { log } from "../platform/log";
import { vars } from "../platform/vars";
import { findServiceKey, isServiceKey, noteServiceKeyUse, parseServiceKey, secretHash, type ServiceKeyRow } from "../service-keys/keys";
import type { ServiceScope } from "../service-keys/scopes";
import { bearerToken, invalidToken } from "./bearer";

/** The key a service request was made with: what records and logs name it by. */
export interface ServiceCaller {
  id: string;
  name: string;
}

/** Keys read from D1 (null: no such key), by key id, with when the entry was read. */
const cache = new Map<string, { row: ServiceKeyRow | null; readAt: number }>();
/** Enough for every caller a deployment has; past it the cache starts over rather than grow with guessed ids. */
const CACHE_ENTRIES = 10_000;

/** Drops a key from this isolate's cache: the admin API calls it after a rotation or revocation. */
export function forgetServiceKey(id: string): void {
  cache.delete(id);
}

async function cachedKey(c: Context<AppEnv>, id: string): Promise<ServiceKeyRow | null> {
  const ttl = vars(c.env).SERVICE_KEY_CACHE_MS;
  const hit = cache.get(id);
  if (hit && Date.now() - hit.readAt < ttl) return hit.row;
  const row = (await findServiceKey(database(c.env), id)) ?? null;
  if (cache.size >= CACHE_ENTRIES) cache.clear();
  cache.set(id, { row, readAt: Date.now() });
  // Last use is noted once per read from D1 (at most once per cache window and isolate): cheap, and close enough.
  if (row && row.revokedAt === null) c.executionCtx.waitUntil(noteServiceKeyUse(database(c.env), id, Date.now()).catch(() => {}));
  return row;
}

/** Equal hex digests, compared in constant time. */
function sameHash(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  return x.byteLength === y.byteLength && crypto.subtle.timingSafeEqual(x, y);
}

/** The key a request presents, verified: its secret is the current one, or the previous one within its grace. */
async function verifiedKey(c: Context<AppEnv>, token: string): Promise<ServiceKeyRow> {
  const parsed = parseServiceKey(token);
  if (!parsed) throw invalidToken("a service key is fsk_<keyId>_<secret>");
  const row = await cachedKey(c, parsed.id);
  if (!row || row.revokedAt !== null) throw invalidToken("unknown or revoked service key");
  const hash = await secretHash(parsed.secret);
  if (sameHash(hash, row.secretHash)) return row;
  const inGrace = row.previousHash !== null && row.previousExpiresAt !== null && c.get("now") < row.previousExpiresAt;
  // Compared even when out of grace, so the answer's timing does not tell whether a previous secret exists.
  if (sameHash(hash, row.previousHash ?? row.secretHash) && inGrace) return row;
  throw invalidToken("unknown, expired or revoked service key");
}

export function requireService(scope: ServiceScope): MiddlewareHandler<AppEnv> {
  return async function requireService(c, next) {
    const token = bearerToken(c.req.header("authorization"));
    if (token === undefined) throw new AppError("UNAUTHENTICATED", "this route takes a service key: Authorization: Bearer fsk_…");
    if (!isServiceKey(token)) throw new AppError("WRONG_CREDENTIALS", "this route takes a service key (fsk_…), not a user's or the operator's token");
    const row = await verifiedKey(c, token);
    if (!(JSON.parse(row.scopes) as string[]).includes(scope)) {
      throw new AppError("MISSING_SCOPE", `service key '${row.name}' lacks the scope '${scope}'`);
    }
    const caller: ServiceCaller = { id: row.id, name: row.name };
    c.set("serviceKey", caller);
    await next();
    log.info("service request", { requestId: c.get("requestId"), serviceKey: caller, method: c.req.method, path: c.req.path, status: c.res.status });
  };
}

/** The key that requireService let through; calling it on a route without requireService is a bug of ours. */
export function serviceCaller(c: Context<AppEnv>): ServiceCaller {
  const caller = c.get("serviceKey");
  if (!caller) throw new Error("serviceCaller: the route is not behind requireService");
  return caller;
}
