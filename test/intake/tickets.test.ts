/**
 * GET /v1/tickets/{id}: only the ticket's owner reads it, a long-poll returns as soon as the ticket is answered, and a
 * run that failed every retry still ends its ticket (UNAVAILABLE) when it is dead-lettered.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { TICKETS_NAMESPACE } from "../../src/intake/intake-mode";
import type { IntakeMessage } from "../../src/intake/messages";
import { account, call, consume, readTicket, rows, unique } from "../helpers";

/** A ticket opened as the intake opens one, its run not made yet (nothing is queued for it). */
async function pendingTicket(user: string): Promise<string> {
  const id = `t_${crypto.randomUUID()}`;
  await account(user).claimIdempotency(TICKETS_NAMESPACE, id, "", Date.now());
  return id;
}

const refusal = { ok: false, requestId: "r-1", error: { code: "SOLD_OUT", message: "sold out" } };

describe("a ticket", () => {
  it("reads pending at once without wait, and done with the stored answer", async () => {
    const user = `reader-${unique()}`;
    const id = await pendingTicket(user);
    const pending = await readTicket(user, id);
    expect(pending.status).toBe(200);
    expect(pending.json).toEqual({ ok: true, requestId: expect.any(String), ticket: { id, status: "pending" } });
    await account(user).completeIdempotency(TICKETS_NAMESPACE, id, 409, JSON.stringify(refusal));
    expect((await readTicket(user, id)).json.ticket).toEqual({ id, status: "done", httpStatus: 409, answer: refusal });
  });

  it("held by a long-poll returns as soon as it is answered, and pending when the wait runs out", async () => {
    const user = `poller-${unique()}`;
    const id = await pendingTicket(user);
    const started = Date.now();
    const held = readTicket(user, id, 20);
    await new Promise((r) => setTimeout(r, 500));
    await account(user).completeIdempotency(TICKETS_NAMESPACE, id, 409, JSON.stringify(refusal));
    const answered = await held;
    expect(answered.json.ticket).toMatchObject({ status: "done", httpStatus: 409 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    expect(Date.now() - started).toBeLessThan(5000);

    const other = await pendingTicket(user);
    const waitedFrom = Date.now();
    expect((await readTicket(user, other, 1)).json.ticket).toEqual({ id: other, status: "pending" });
    expect(Date.now() - waitedFrom).toBeGreaterThanOrEqual(900);
  });

  it("is another user's: 404, as an unknown id; a malformed id is 404, a bad wait 400, no token 401", async () => {
    const owner = `owner-${unique()}`;
    const id = await pendingTicket(owner);
    const stranger = await readTicket(`stranger-${unique()}`, id);
    expect(stranger.status).toBe(404);
    expect(stranger.json.error.code).toBe("NOT_FOUND");
    expect((await readTicket(owner, `t_${crypto.randomUUID()}`)).status).toBe(404);
    const malformed = await call("/v1/tickets/not-a-ticket", { method: "GET", user: owner });
    expect(malformed.status).toBe(404);
    expect(malformed.json.error.code).toBe("NOT_FOUND");
    const tooLong = await readTicket(owner, id, 26);
    expect(tooLong.status).toBe(400);
    expect(tooLong.json.error.code).toBe("INVALID_PARAMS");
    expect((await call(`/v1/tickets/${id}`, { method: "GET" })).status).toBe(401);
  });

  it("of a run that failed every retry ends UNAVAILABLE when the message is dead-lettered, and a replay changes nothing", async () => {
    const user = `dead-${unique()}`;
    const ticketId = await pendingTicket(user);
    const body: IntakeMessage = { kind: "grab", saleId: "no-such-sale", userId: user, ticketId, now: Date.now(), requestId: "r" };
    const letterId = `dl-intake-${unique()}`;
    const result = await consume([{ id: letterId, body, attempts: 11 }], "fanfare-intake-dlq");
    expect(result.ackAll).toBe(true);
    expect(await rows("SELECT queue FROM dead_letters WHERE id = ?", letterId)).toEqual([{ queue: "fanfare-intake" }]);
    const ended = (await readTicket(user, ticketId)).json.ticket;
    expect(ended).toMatchObject({ status: "done", httpStatus: 503, answer: { ok: false, error: { code: "UNAVAILABLE" } } });

    const replay = await call(`/v1/admin/dead-letters/${letterId}/replay`, { headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` } });
    expect(replay.json).toMatchObject({ ok: true, queue: "fanfare-intake" });
    await new Promise((r) => setTimeout(r, 2500));
    expect((await readTicket(user, ticketId)).json.ticket).toEqual(ended);
  });
});
