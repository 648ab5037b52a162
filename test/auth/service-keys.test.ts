/** Service keys: made, used, rotated with a grace period and revoked through the admin API, and held to their scopes. */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/sharding";
import { call, eventually, pushConfigs, rows, token, unique, type CallOptions } from "../helpers";

const operator = { authorization: `Bearer ${env.ADMIN_TOKEN}` };
const admin = (path: string, opts: CallOptions = {}) => call(path, { ...opts, headers: { ...operator, ...opts.headers } });
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

async function makeKey(scopes: string[], name = "order-service"): Promise<{ id: string; secret: string }> {
  const res = await admin("/v1/admin/service-keys", { body: { name, scopes } });
  expect(res.status).toBe(201);
  return { id: res.json.serviceKey.id, secret: res.json.secret };
}

/** A call of the attributes route (a service route needing users:write) with a key, at an optional time. */
const setCity = (key: string, user = `u-${unique()}`, now?: number) =>
  call(`/v1/users/${user}/attributes`, { body: { attributes: { city: "Hangzhou" } }, headers: bearer(key), now });

beforeAll(async () => {
  await pushConfigs();
});

describe("a service key's life", () => {
  it("is made with its secret shown once, and then works on the routes its scopes allow", async () => {
    const res = await admin("/v1/admin/service-keys", { body: { name: "crm", scopes: ["users:write", "events:write"] } });
    expect(res.status).toBe(201);
    expect(res.json.secret).toMatch(/^fsk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(res.json.serviceKey).toMatchObject({ name: "crm", scopes: ["users:write", "events:write"], rotatedAt: null, revokedAt: null });
    const ok = await setCity(res.json.secret);
    expect(ok.status).toBe(200);
    expect(ok.json.attributes).toEqual({ city: "Hangzhou" });
  });

  it("is listed without its secret, and D1 holds only a hash of it", async () => {
    const { id, secret } = await makeKey(["users:write"], "cashier");
    await setCity(secret);
    const list = await admin("/v1/admin/service-keys", { method: "GET" });
    expect(list.status).toBe(200);
    const listed = list.json.serviceKeys.find((k: { id: string }) => k.id === id);
    expect(Object.keys(listed).sort()).toEqual(["createdAt", "id", "lastUsedAt", "name", "revokedAt", "rotatedAt", "scopes"]);
    const secretPart = secret.split("_").slice(2).join("_");
    expect(JSON.stringify(list.json)).not.toContain(secretPart);
    const [row] = await rows<Record<string, unknown>>("SELECT * FROM service_keys WHERE id = ?", id);
    expect(Object.values(row!).some((v) => typeof v === "string" && v.includes(secretPart))).toBe(false);
    expect(row!.secret_hash).toBe(await sha256Hex(secretPart));
    // Its use is noted (once per cache window and isolate).
    await eventually(
      async () => (await rows<{ last_used_at: number | null }>("SELECT last_used_at FROM service_keys WHERE id = ?", id))[0]?.last_used_at,
    );
  });

  it("rotates: the old secret works during the grace period beside the new one, and is refused after it", async () => {
    const { id, secret: old } = await makeKey(["users:write"]);
    const t0 = Date.now();
    const rotated = await admin(`/v1/admin/service-keys/${id}/rotate`, { body: { graceSeconds: 600 }, now: t0 });
    expect(rotated.status).toBe(200);
    const fresh: string = rotated.json.secret;
    expect(fresh).not.toBe(old);
    expect(rotated.json.previousValidUntil).toBe(new Date(t0 + 600_000).toISOString());
    expect(rotated.json.serviceKey.rotatedAt).toBe(new Date(t0).toISOString());
    expect((await setCity(old, undefined, t0 + 599_000)).status).toBe(200);
    expect((await setCity(fresh, undefined, t0 + 599_000)).status).toBe(200);
    const late = await setCity(old, undefined, t0 + 600_000);
    expect(late.status).toBe(401);
    expect(late.json.error.code).toBe("UNAUTHENTICATED");
    expect((await setCity(fresh, undefined, t0 + 600_000)).status).toBe(200);
  });

  it("rotates with an hour's grace by default, and a second rotation ends the first secret at once", async () => {
    const { id, secret: first } = await makeKey(["users:write"]);
    const t0 = Date.now();
    const r1 = await admin(`/v1/admin/service-keys/${id}/rotate`, { now: t0 });
    expect(r1.status).toBe(200);
    expect(r1.json.previousValidUntil).toBe(new Date(t0 + 3_600_000).toISOString());
    const r2 = await admin(`/v1/admin/service-keys/${id}/rotate`, { body: { graceSeconds: 60 }, now: t0 });
    expect((await setCity(first, undefined, t0)).status).toBe(401);
    expect((await setCity(r1.json.secret, undefined, t0)).status).toBe(200);
    expect((await setCity(r2.json.secret, undefined, t0)).status).toBe(200);
  });

  it("is refused at once once revoked (in the isolate that revoked it), and stays revoked", async () => {
    const { id, secret } = await makeKey(["users:write"]);
    expect((await setCity(secret)).status).toBe(200);
    const revoked = await admin(`/v1/admin/service-keys/${id}`, { method: "DELETE" });
    expect(revoked.status).toBe(200);
    expect(revoked.json.serviceKey.revokedAt).toEqual(expect.any(String));
    const refused = await setCity(secret);
    expect(refused.status).toBe(401);
    expect(refused.json.error.code).toBe("UNAUTHENTICATED");
    const again = await admin(`/v1/admin/service-keys/${id}`, { method: "DELETE" });
    expect(again.json.serviceKey.revokedAt).toBe(revoked.json.serviceKey.revokedAt);
    const rotate = await admin(`/v1/admin/service-keys/${id}/rotate`, { body: {} });
    expect(rotate.status).toBe(404);
    expect(rotate.json.error.code).toBe("NOT_FOUND");
  });

  it("is trusted from the isolate's cache for its window, without reading D1 on every request", async () => {
    const { id, secret } = await makeKey(["users:write"]);
    expect((await setCity(secret)).status).toBe(200);
    // Gone from D1 behind the isolate's back (as a revocation made by another isolate is unseen): still served.
    await env.DB.prepare("DELETE FROM service_keys WHERE id = ?").bind(id).run();
    expect((await setCity(secret)).status).toBe(200);
  });

  it("answers NOT_FOUND for an unknown key id, and UNKNOWN_SCOPE with the pointer of each unknown scope", async () => {
    for (const res of [
      await admin("/v1/admin/service-keys/0123456789abcdef/rotate", { body: {} }),
      await admin("/v1/admin/service-keys/0123456789abcdef", { method: "DELETE" }),
      await admin("/v1/admin/service-keys/not-a-key-id", { method: "DELETE" }),
    ]) {
      expect(res.status).toBe(404);
      expect(res.json.error.code).toBe("NOT_FOUND");
    }
    const before = (await rows("SELECT id FROM service_keys")).length;
    const bad = await admin("/v1/admin/service-keys", { body: { name: "x", scopes: ["users:write", "users:delete", "points:give"] } });
    expect(bad.status).toBe(422);
    expect(bad.json.error.code).toBe("UNKNOWN_SCOPE");
    expect(bad.json.error.details.map((d: { pointer: string }) => d.pointer)).toEqual(["/scopes/1", "/scopes/2"]);
    expect(bad.json.error.message).toContain("unknown scope 'users:delete'");
    const none = await admin("/v1/admin/service-keys", { body: { name: "x", scopes: [] } });
    expect(none.status).toBe(400);
    const grace = await admin("/v1/admin/service-keys/0123456789abcdef/rotate", { body: { graceSeconds: 8 * 24 * 3600 } });
    expect(grace.status).toBe(400);
    expect((await rows("SELECT id FROM service_keys")).length).toBe(before);
  });
});

describe("each kind of credential passes only its own routes", () => {
  it("refuses a key without the route's scope with MISSING_SCOPE naming it", async () => {
    const { secret } = await makeKey(["events:write", "points:adjust"]);
    const res = await setCity(secret);
    expect(res.status).toBe(403);
    expect(res.json.error.code).toBe("MISSING_SCOPE");
    expect(res.json.error.message).toContain("'users:write'");
  });

  it("refuses a user's token and the operator token on a service route with WRONG_CREDENTIALS", async () => {
    for (const key of [await token("u1"), env.ADMIN_TOKEN!]) {
      const res = await setCity(key);
      expect(res.status).toBe(403);
      expect(res.json.error.code).toBe("WRONG_CREDENTIALS");
    }
  });

  it("refuses a service route without credentials (401), and a malformed, unknown or forged key (401)", async () => {
    const missing = await call("/v1/users/u1/attributes", { body: { attributes: {} } });
    expect(missing.status).toBe(401);
    expect(missing.json.error.code).toBe("UNAUTHENTICATED");
    const { secret } = await makeKey(["users:write"]);
    const forged = `${secret.slice(0, -4)}AAAA`;
    for (const key of ["fsk_nope", `fsk_0123456789abcdef_${"A".repeat(43)}`, forged]) {
      const res = await setCity(key);
      expect(res.status).toBe(401);
      expect(res.json.error.code).toBe("UNAUTHENTICATED");
    }
  });

  it("refuses a service key on consumer routes and on admin routes with WRONG_CREDENTIALS", async () => {
    const { secret } = await makeKey(["users:write", "events:write", "points:adjust", "membership:write"]);
    const refused = [
      await call("/v1/me/profile", { method: "GET", headers: bearer(secret) }),
      await call("/v1/activities/double11/me", { method: "GET", headers: bearer(secret) }),
      await call("/v1/activities/double11/tasks/signIn", { headers: bearer(secret) }),
      await call("/v1/admin/service-keys", { method: "GET", headers: bearer(secret) }),
    ];
    for (const res of refused) {
      expect(res.status).toBe(403);
      expect(res.json.error.code).toBe("WRONG_CREDENTIALS");
    }
  });
});
