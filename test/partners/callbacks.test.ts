import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { beforeAll, describe, expect, it } from "vitest";
import { account, call, eventually, pushConfigs, rows, serviceKey, unique } from "../helpers";
import {
  definePartner as defineRegistered,
  operator,
  partnerCallback,
  partnerSetup,
  redirect as redirectTo,
  ticketClaims,
} from "../support/partners";

const u = unique();
const PROGRAM = `partnerpts_${u}`;

/** The benefits center's catalog: a redirect goes only to a thirdParty benefit it declares, for a member. */
const declared: { benefit: string; partner: string }[] = [];
async function pushCatalog() {
  const materials = declared.map((d) => `  ${d.benefit}: { type: thirdParty, supplier: P, faceValue: 0, issuance: monthly, partner: ${d.partner} }`);
  const benefits = declared.map((d) => `  ${d.benefit}: { material: ${d.benefit}, title: ${d.benefit}, entitles: { identityTypes: [member] } }`);
  await pushConfigs(
    {
      [`test/partner-points-${u}.yaml`]: `pointPrograms:\n  ${PROGRAM}: { name: Partner points, expiry: never }\n`,
      [`test/partner-membership-${u}.yaml`]:
        "membership:\n  timezone: Asia/Shanghai\n  identityTypes:\n    member: { rank: 1 }\n  skus:\n    member-month: { identityType: member, duration: P1M }\n" +
        (declared.length > 0 ? `materials:\n${materials.join("\n")}\nbenefits:\n${benefits.join("\n")}\n` : ""),
    },
    false,
  );
}

/** A partner supplying `benefits`, each declared in the catalog as that partner's. */
async function definePartner(fields: Record<string, unknown> & { benefits: string[] }) {
  const p = await defineRegistered(fields);
  declared.push(...fields.benefits.map((benefit) => ({ benefit, partner: p.id })));
  await pushCatalog();
  return p;
}

let members = "";
const entitled = new Set<string>();
/** The user's redirect, as a member since yesterday (so a redirect replayed hours back is entitled too). */
async function redirect(user: string, benefit: string, now?: number | string) {
  if (!entitled.has(user)) {
    const g = await call("/v1/membership/grants", {
      body: { userId: user, sku: "member-month", externalRef: `member-${user}` },
      headers: { authorization: `Bearer ${members}` },
      now: Date.now() - 86_400_000,
    });
    expect(g.status).toBe(201);
    entitled.add(user);
  }
  return redirectTo(user, benefit, now);
}

beforeAll(async () => {
  await pushCatalog();
  members = await serviceKey(["membership:write"]);
});

const balance = async (user: string) => (await call("/v1/me/points", { method: "GET", user, query: { program: PROGRAM } })).json.balance as number;

const ticketState = (user: string, ticketId: string) => account(user).partnerTicket(ticketId);

const callbackRow = async (partnerId: string, webhookId: string) =>
  (
    await rows<any>(
      "SELECT status, http_status, code, ticket_id FROM partner_callbacks WHERE partner_id = ? AND webhook_id = ?",
      partnerId,
      webhookId,
    )
  )[0];

/** A partner supplying one benefit, whose completions credit 1..500 points. */
async function setUp() {
  const benefit = `vip-${unique()}`;
  const p = await definePartner({ benefits: [benefit], program: PROGRAM, pointsDelta: { min: 1, max: 500 }, ticketTtlSeconds: 600 });
  return { ...p, benefit };
}

const completed = (ticket: string, pointsDelta: number) => ({ type: "completed", ticket, pointsDelta, occurredAt: new Date().toISOString() });

describe("a partner redirect and its signed callbacks", () => {
  it("sends the user to the partner with a signed ticket that names them only by a pseudonym", async () => {
    const { id, benefit } = await setUp();
    const other = await definePartner({ benefits: [`other-${unique()}`] });
    const user = `alice-${u}`;
    const r = await redirect(user, benefit);
    expect(r.status).toBe(302);
    expect(r.location).toMatch(new RegExp(`^https://${id}\\.example/landing\\?src=fanfare&ticket=pt1\\.`));
    const claims = ticketClaims(r.ticket!);
    expect(claims).toMatchObject({ par: id, ben: benefit, tid: expect.stringMatching(/^pt_/), nonce: expect.any(String) });
    expect(claims.exp as number).toBeGreaterThan(Date.now() / 1000 + 590);
    expect(r.ticket).not.toContain(user);
    expect(JSON.stringify(claims)).not.toContain(user);
    // The same user has the same pseudonym with this partner (on every ticket), another with another partner.
    const again = ticketClaims((await redirect(user, benefit)).ticket!);
    expect(again.sub).toBe(claims.sub);
    expect(again.nonce).not.toBe(claims.nonce);
    const elsewhere = ticketClaims((await redirect(user, other.partner.benefits[0])).ticket!);
    expect(elsewhere.sub).not.toBe(claims.sub);
    expect(await ticketState(user, claims.tid as string)).toEqual({ state: "redirected", pointsDelta: null });
  });

  it("refuses a redirect to a benefit no partner supplies, and an anonymous one", async () => {
    expect((await redirect(`bob-${u}`, `nobody-${u}`)).status).toBe(404);
    const anonymous = await call(`/v1/benefits/anything/redirect`, { method: "GET" });
    expect(anonymous.status).toBe(401);
  });

  it("credits a completion once; a replayed webhook-id changes nothing; a cancellation reverses the credit", async () => {
    const { id, benefit } = await setUp();
    const user = `carol-${u}`;
    const { ticket } = await redirect(user, benefit);
    const tid = ticketClaims(ticket!).tid as string;
    const body = completed(ticket!, 120);

    const first = await partnerCallback(id, { webhookId: "msg_1", body });
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ ok: true, webhookId: "msg_1", replayed: false, ticket: { id: tid, status: "completed" } });
    expect(await balance(user)).toBe(120);

    const replay = await partnerCallback(id, { webhookId: "msg_1", body });
    expect(replay.status).toBe(200);
    expect(replay.json).toMatchObject({ replayed: true, ticket: { id: tid, status: "completed" } });
    expect(await balance(user)).toBe(120);

    // Completing it again under another id is a conflict of state, recorded; nothing more is credited.
    const twice = await partnerCallback(id, { webhookId: "msg_2", body });
    expect(twice.status).toBe(409);
    expect(twice.json.error.code).toBe("TICKET_STATE");
    expect(await balance(user)).toBe(120);
    expect(await callbackRow(id, "msg_2")).toMatchObject({ status: "refused", code: "TICKET_STATE", ticket_id: tid });

    const cancel = await partnerCallback(id, { webhookId: "msg_3", body: { type: "cancelled", ticket, occurredAt: new Date().toISOString() } });
    expect(cancel.status).toBe(200);
    expect(cancel.json.ticket.status).toBe("cancelled");
    expect(await balance(user)).toBe(0);
    expect(await ticketState(user, tid)).toEqual({ state: "cancelled", pointsDelta: 120 });
    const entries = (await call("/v1/me/points", { method: "GET", user, query: { program: PROGRAM } })).json.entries;
    expect(entries.map((e: any) => [e.type, e.delta])).toEqual([
      ["reverse", -120],
      ["earn", 120],
    ]);
    expect(await callbackRow(id, "msg_1")).toMatchObject({ status: "applied", http_status: 200 });
  });

  it("refuses a stale timestamp, a bad signature and a missing one with 401, changing nothing", async () => {
    const { id, benefit } = await setUp();
    const user = `dave-${u}`;
    const { ticket } = await redirect(user, benefit);
    const body = completed(ticket!, 50);
    const stale = await partnerCallback(id, { webhookId: "stale", body, timestamp: Math.floor(Date.now() / 1000) - 6 * 60 });
    expect(stale.status).toBe(401);
    expect(stale.json.error.message).toMatch(/5 minutes/);
    const future = await partnerCallback(id, { webhookId: "future", body, timestamp: Math.floor(Date.now() / 1000) + 6 * 60 });
    expect(future.status).toBe(401);
    const forged = await partnerCallback(id, { webhookId: "forged", body, secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" });
    expect(forged.status).toBe(401);
    expect(forged.json.error.message).toMatch(/signature/);
    const unsigned = await call(`/v1/partners/${id}/callbacks`, { body });
    expect(unsigned.status).toBe(401);
    // The signature is checked before the body: an unsigned malformed body is 401, a signed one 400.
    expect((await call(`/v1/partners/${id}/callbacks`, { body: { nonsense: true } })).status).toBe(401);
    const malformed = await partnerCallback(id, { webhookId: "malformed", body: { type: "finished", ticket } });
    expect([malformed.status, malformed.json.error.code]).toEqual([400, "INVALID_PARAMS"]);
    expect(await balance(user)).toBe(0);
    expect(await rows("SELECT * FROM partner_callbacks WHERE partner_id = ?", id)).toEqual([]);
    // The same callback, signed now, goes through.
    expect((await partnerCallback(id, { webhookId: "fresh", body })).status).toBe(200);
    expect(await balance(user)).toBe(50);
  });

  it("answers the same webhook-id with another body with 409 and an operator alert", async () => {
    const { id, benefit } = await setUp();
    const user = `erin-${u}`;
    const { ticket } = await redirect(user, benefit);
    expect((await partnerCallback(id, { webhookId: "dup", body: completed(ticket!, 10) })).status).toBe(200);
    const other = await partnerCallback(id, { webhookId: "dup", body: completed(ticket!, 400) });
    expect(other.status).toBe(409);
    expect(other.json.error.code).toBe("WEBHOOK_ID_REUSED");
    expect(await balance(user)).toBe(10);
    const alerts = await call(`/v1/admin/partners/${id}/alerts`, { method: "GET", headers: operator });
    expect(alerts.json.alerts).toEqual([
      expect.objectContaining({ kind: "webhook-id-reused", detail: expect.objectContaining({ webhookId: "dup" }) }),
    ]); // And a signed webhook to OPERATOR_ALERT_URL under the alert's id, verified with the same library.
    const received = async (prefix: string) =>
      (await (await fetch(`${env.TEST_PARTNER_URL}/received?prefix=${prefix}`)).json()) as { headers: Record<string, string>; body: unknown }[];
    const alertId = alerts.json.alerts[0].id;
    await eventually(async () => (await received("/alerts/operator")).some((r) => r.headers["webhook-id"] === alertId));
    const sent = (await received("/alerts/operator")).find((r) => r.headers["webhook-id"] === alertId)!;
    const verified = new Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").verify(JSON.stringify(sent.body), sent.headers);
    expect(verified).toMatchObject({ kind: "partnerAlert", partnerId: id, alert: "webhook-id-reused", webhookId: "dup" });
  });

  it("refuses and records an unknown ticket and a delta outside the range (422); a replay answers the same", async () => {
    const { id, benefit } = await setUp();
    const user = `frank-${u}`;
    const { ticket } = await redirect(user, benefit);
    const [prefix, payload, sig] = ticket!.split(".");
    const tampered = `${prefix}.${payload}.${sig!.startsWith("A") ? "B" : "A"}${sig!.slice(1)}`;
    const unknown = await partnerCallback(id, { webhookId: "u1", body: completed(tampered, 10) });
    expect(unknown.status).toBe(422);
    expect(unknown.json.error.code).toBe("UNKNOWN_TICKET");
    // A ticket issued to another partner is unknown to this one.
    const other = await setUp();
    const foreign = (await redirect(user, other.benefit)).ticket!;
    expect((await partnerCallback(id, { webhookId: "u2", body: completed(foreign, 10) })).json.error.code).toBe("UNKNOWN_TICKET");
    const tooBig = completed(ticket!, 501);
    const big = await partnerCallback(id, { webhookId: "r1", body: tooBig });
    expect(big.status).toBe(422);
    expect(big.json.error.code).toBe("DELTA_OUT_OF_RANGE");
    const again = await partnerCallback(id, { webhookId: "r1", body: tooBig });
    expect(again.status).toBe(422);
    expect(again.json.error.code).toBe("DELTA_OUT_OF_RANGE");
    expect(await balance(user)).toBe(0);
    expect(await rows("SELECT webhook_id, status, http_status, code FROM partner_callbacks WHERE partner_id = ? ORDER BY webhook_id", id)).toEqual([
      { webhook_id: "r1", status: "refused", http_status: 422, code: "DELTA_OUT_OF_RANGE" },
      { webhook_id: "u1", status: "refused", http_status: 422, code: "UNKNOWN_TICKET" },
      { webhook_id: "u2", status: "refused", http_status: 422, code: "UNKNOWN_TICKET" },
    ]);
    expect(await ticketState(user, ticketClaims(ticket!).tid as string)).toEqual({ state: "redirected", pointsDelta: null });
  });

  it("expires a ticket not completed in time", async () => {
    const { id, benefit } = await setUp();
    const user = `gina-${u}`;
    const { ticket } = await redirect(user, benefit);
    const late = await partnerCallback(id, { webhookId: "late", body: completed(ticket!, 10), now: Date.now() + 601_000 });
    expect(late.status).toBe(422);
    expect(late.json.error.code).toBe("TICKET_EXPIRED");
    expect(await ticketState(user, ticketClaims(ticket!).tid as string)).toEqual({ state: "expired", pointsDelta: null });
    expect((await partnerCallback(id, { webhookId: "later", body: completed(ticket!, 10) })).json.error.code).toBe("TICKET_EXPIRED");
    expect(await balance(user)).toBe(0);
  });

  it("expires a ticket by the account's alarm when no callback comes", async () => {
    const { benefit } = await setUp();
    const user = `gus-${u}`;
    // Redirected two hours ago (the clock override): its ten minutes are over.
    const { ticket } = await redirect(user, benefit, Date.now() - 2 * 3600_000);
    const tid = ticketClaims(ticket!).tid as string;
    // The redirect set the alarm for its expiry, now: run it (if the runtime has not already). Reading a ticket's state
    // never expires it, so `expired` is the alarm's doing.
    await runDurableObjectAlarm(account(user));
    expect(await ticketState(user, tid)).toEqual({ state: "expired", pointsDelta: null });
  });

  it("applies one webhook-id once when it is delivered many times at once", async () => {
    const { id, benefit } = await setUp();
    const user = `hal-${u}`;
    const { ticket } = await redirect(user, benefit);
    const body = completed(ticket!, 77);
    const answers = await Promise.all(Array.from({ length: 12 }, () => partnerCallback(id, { webhookId: "burst", body })));
    expect(answers.map((a) => a.status)).toEqual(Array(12).fill(200));
    expect(answers.filter((a) => !a.json.replayed)).toHaveLength(1);
    expect(await balance(user)).toBe(77);
  });

  it("moves no points for a partner without a program", async () => {
    const benefit = `plain-${unique()}`;
    const { id } = await definePartner({ benefits: [benefit] });
    const user = `ivy-${u}`;
    const { ticket } = await redirect(user, benefit);
    const ok = await partnerCallback(id, { webhookId: "p1", body: { type: "completed", ticket, occurredAt: new Date().toISOString() } });
    expect(ok.json.ticket.status).toBe("completed");
    expect(await balance(user)).toBe(0);
  });
});

describe("key rotation", () => {
  it("verifies with both keys during a rotation, signs with the newest, and no longer accepts a retired key", async () => {
    const { id, benefit, key: oldKey } = await setUp();
    const added = await call(`/v1/admin/partners/${id}/keys`, { headers: operator });
    expect(added.status).toBe(201);
    const newKey = added.json.key as { keyId: string; secret: string };
    expect(newKey.secret).toMatch(/^whsec_/);
    expect(newKey.secret).not.toBe(oldKey.secret);
    await partnerSetup(id, { secrets: [oldKey.secret, newKey.secret] });

    const user = `jay-${u}`;
    const t1 = (await redirect(user, benefit)).ticket!;
    const t2 = (await redirect(user, benefit)).ticket!;
    const t3 = (await redirect(user, benefit)).ticket!;
    expect((await partnerCallback(id, { webhookId: "old", body: completed(t1, 5), secret: oldKey.secret })).status).toBe(200);
    expect((await partnerCallback(id, { webhookId: "new", body: completed(t2, 5), secret: newKey.secret })).status).toBe(200);

    // A third key is refused while two are active.
    const third = await call(`/v1/admin/partners/${id}/keys`, { headers: operator });
    expect(third.status).toBe(409);
    expect(third.json.error.code).toBe("TOO_MANY_KEYS");

    const retired = await call(`/v1/admin/partners/${id}/keys/${oldKey.keyId}`, { method: "DELETE", headers: operator });
    expect(retired.status).toBe(200);
    expect(retired.json.partner.keys).toEqual([
      expect.objectContaining({ id: oldKey.keyId, retiredAt: expect.any(String) }),
      expect.objectContaining({ id: newKey.keyId, retiredAt: null }),
    ]);
    expect(JSON.stringify(retired.json)).not.toContain(newKey.secret);
    const refused = await partnerCallback(id, { webhookId: "old-again", body: completed(t3, 5), secret: oldKey.secret });
    expect(refused.status).toBe(401);
    expect((await partnerCallback(id, { webhookId: "new-again", body: completed(t3, 5), secret: newKey.secret })).status).toBe(200);
    expect(await balance(user)).toBe(15);

    const last = await call(`/v1/admin/partners/${id}/keys/${newKey.keyId}`, { method: "DELETE", headers: operator });
    expect(last.status).toBe(409);
    expect(last.json.error.code).toBe("LAST_KEY");
  });
});

describe("the partner registry", () => {
  it("keeps secrets encrypted, refuses a taken id or benefit, and changes fields", async () => {
    const { id, benefit, key } = await setUp();
    const [stored] = await rows<{ ciphertext: string }>("SELECT ciphertext FROM partner_keys WHERE partner_id = ?", id);
    expect(stored!.ciphertext).not.toContain(key.secret.slice(6, 20));
    const list = await call("/v1/admin/partners", { method: "GET", headers: operator });
    expect(list.json.partners.find((p: any) => p.id === id)).toMatchObject({
      benefits: [benefit],
      pointsDelta: { min: 1, max: 500 },
      program: PROGRAM,
    });
    expect(JSON.stringify(list.json)).not.toContain("whsec_");

    const taken = await call("/v1/admin/partners", { headers: operator, body: { id, name: "again", url: "https://x.example/" } });
    expect(taken.status).toBe(409);
    const clash = await call("/v1/admin/partners", {
      headers: operator,
      body: { id: `q-${unique()}`, name: "clash", url: "https://x.example/", benefits: [benefit] },
    });
    expect(clash.status).toBe(409);
    expect(clash.json.error.message).toContain(benefit);

    const changed = await call(`/v1/admin/partners/${id}`, {
      method: "PATCH",
      headers: operator,
      body: { dailyQuota: 3, benefits: [benefit, `${benefit}-2`] },
    });
    expect(changed.status).toBe(200);
    expect(changed.json.partner).toMatchObject({ dailyQuota: 3, benefits: [benefit, `${benefit}-2`] });
    const bad = await call(`/v1/admin/partners/${id}`, { method: "PATCH", headers: operator, body: { pointsDelta: { min: 5, max: 1 } } });
    expect(bad.status).toBe(400);
    expect((await call(`/v1/admin/partners/nope-${u}`, { method: "GET", headers: operator })).status).toBe(404);
    const unknownProgram = await call(`/v1/admin/partners/${id}`, { method: "PATCH", headers: operator, body: { program: `nope_${u}` } });
    expect([unknownProgram.status, unknownProgram.json.error.code]).toEqual([404, "NOT_FOUND"]);
    expect((await call("/v1/admin/partners", { method: "GET" })).status).toBe(401);
  });
});
