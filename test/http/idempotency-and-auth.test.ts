import { env } from "cloudflare:workers";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { authenticate } from "../../src/auth/token";
import { pushConfigs, records, runTask } from "../helpers";

const NOW = "2026-11-22T10:00:00+08:00";

const repeatable = `
id: idem
name: Idempotency
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
tasks:
  give:
    request: [ { field: n, rule: integer, message: n must be an integer } ]
    validator: [login]
    reward: [ { redPacket: { amount: { min: 1, max: 1000 } } } ]
`;

beforeAll(async () => {
  await pushConfigs({ "test/idem.yaml": repeatable });
});

describe("Idempotency-Key", () => {
  it("replays the first response for the same user, key and body, granting once", async () => {
    const first = await runTask("idem", "give", { user: "payer", body: { n: 1 }, headers: { "idempotency-key": "k-1" }, now: NOW });
    const again = await runTask("idem", "give", { user: "payer", body: { n: 1 }, headers: { "idempotency-key": "k-1" }, now: NOW });
    expect(first.status).toBe(200);
    expect(again.json).toEqual(first.json);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await records(1, "SELECT * FROM reward_records WHERE user_id = 'payer'")).toHaveLength(1);
  });

  it("refuses the same key with a different body with 422", async () => {
    await runTask("idem", "give", { user: "changer", body: { n: 1 }, headers: { "idempotency-key": "k-2" }, now: NOW });
    const other = await runTask("idem", "give", { user: "changer", body: { n: 2 }, headers: { "idempotency-key": "k-2" }, now: NOW });
    expect(other.status).toBe(422);
    expect(other.json.error.code).toBe("IDEMPOTENCY_MISMATCH");
  });

  it("scopes keys by user: another user's same key runs on its own", async () => {
    await runTask("idem", "give", { user: "alice", body: { n: 1 }, headers: { "idempotency-key": "shared" }, now: NOW });
    const bob = await runTask("idem", "give", { user: "bob", body: { n: 1 }, headers: { "idempotency-key": "shared" }, now: NOW });
    expect(bob.status).toBe(200);
    expect(bob.headers.get("idempotent-replayed")).toBeNull();
  });

  it("replays refusals too", async () => {
    const bad = await runTask("idem", "give", { user: "refused", body: { n: "x" }, headers: { "idempotency-key": "k-3" }, now: NOW });
    const again = await runTask("idem", "give", { user: "refused", body: { n: "x" }, headers: { "idempotency-key": "k-3" }, now: NOW });
    expect(bad.status).toBe(400);
    expect(again.status).toBe(400);
    expect(again.json).toEqual(bad.json);
  });

  it("gives 10 concurrent retries with one key exactly one grant", async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, () => runTask("idem", "give", { user: "retrier", body: { n: 1 }, headers: { "idempotency-key": "k-4" }, now: NOW })),
    );
    expect(await records(1, "SELECT * FROM reward_records WHERE user_id = 'retrier'")).toHaveLength(1);
    const grants = new Set(results.filter((r) => r.status === 200).map((r) => r.json.rewards[0].grantId));
    expect(grants.size).toBe(1);
    for (const r of results.filter((r) => r.status !== 200)) expect(r.json.error.code).toBe("LOCKED");
  });

  it("rejects a malformed key", async () => {
    const res = await runTask("idem", "give", { user: "u", body: {}, headers: { "idempotency-key": "has space" }, now: NOW });
    expect(res.json.error.code).toBe("INVALID_PARAMS");
  });
});

describe("production tokens from a JWKS", () => {
  it("fetches the key set from JWKS_URL and verifies issuer and audience", async () => {
    const { publicKey, privateKey } = await generateKeyPair("RS256");
    const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: "remote-1", alg: "RS256" }] };
    await fetch(`${env.TEST_PARTNER_URL}/control`, { method: "POST", body: JSON.stringify({ jwks }) });
    const prod = {
      ...env,
      JWT_SECRET: undefined,
      JWKS_URL: `${env.TEST_PARTNER_URL}/.well-known/jwks.json`,
      JWT_ISSUER: "https://idp.test/",
      JWT_AUDIENCE: "fanfare",
    };
    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: "RS256", kid: "remote-1" })
      .setSubject("remote-user")
      .setIssuer("https://idp.test/")
      .setAudience("fanfare")
      .setExpirationTime("5m")
      .sign(privateKey);
    expect(await authenticate(prod, `Bearer ${jwt}`)).toEqual({ id: "remote-user", groups: [], claims: {} });
    // An HS256 token signed with a guessable secret is never accepted once a JWKS is configured.
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("x")
      .setIssuer("https://idp.test/")
      .setAudience("fanfare")
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode("x".repeat(32)));
    await expect(authenticate(prod, `Bearer ${forged}`)).rejects.toMatchObject({ code: "UNAUTHENTICATED" });
  });

  it("accepts a token signed by a key in the set with the right issuer and audience, and nothing else", async () => {
    const { publicKey, privateKey } = await generateKeyPair("ES256");
    const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" };
    const prod = {
      ...env,
      JWT_SECRET: undefined,
      JWKS_JSON: JSON.stringify({ keys: [jwk] }),
      JWT_ISSUER: "https://auth.test/",
      JWT_AUDIENCE: "fanfare",
    };
    const sign = (claims: { iss: string; aud: string }) =>
      new SignJWT({ groups: ["vip"] })
        .setProtectedHeader({ alg: "ES256", kid: "k1" })
        .setSubject("prod-user")
        .setIssuer(claims.iss)
        .setAudience(claims.aud)
        .setExpirationTime("5m")
        .sign(privateKey);
    const user = await authenticate(prod, `Bearer ${await sign({ iss: "https://auth.test/", aud: "fanfare" })}`);
    expect(user).toEqual({ id: "prod-user", groups: ["vip"], claims: {} });
    await expect(authenticate(prod, `Bearer ${await sign({ iss: "https://evil.test/", aud: "fanfare" })}`)).rejects.toMatchObject({
      code: "UNAUTHENTICATED",
    });
    await expect(authenticate(prod, `Bearer ${await sign({ iss: "https://auth.test/", aud: "other" })}`)).rejects.toMatchObject({
      code: "UNAUTHENTICATED",
    });
  });
});
