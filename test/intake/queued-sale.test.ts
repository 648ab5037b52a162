/**
 * A flash sale declared `intake: queue`: every grab answers 202 with a ticket, the intake consumer runs the grabs,
 * and every ticket ends with a token or the refusal a direct grab would have got, once, however often its message is
 * delivered.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { SaleStock } from "../../durable-objects/sale-stock";
import { saleShard } from "../../durable-objects/support/stubs";
import { describe, expect, it } from "vitest";
import { TICKETS_NAMESPACE } from "../../src/intake/intake-mode";
import type { IntakeMessage } from "../../src/intake/messages";
import { account, answeredTickets, call, consume, eventually, readTicket, rows, unique } from "../helpers";

const BEGIN = Date.parse("2026-11-11T00:00:00Z");
const at = (minutes: number) => new Date(BEGIN + minutes * 60_000).toISOString();
const adminHeaders = { authorization: `Bearer ${env.ADMIN_TOKEN}` };

async function queuedSale(fields: Record<string, unknown>) {
  const id = `q-${unique()}`;
  const res = await call("/v1/admin/flash-sales", {
    body: { id, sku: `SKU-${id}`, beginTime: at(0), endTime: at(60), intake: "queue", ...fields },
    headers: adminHeaders,
  });
  expect(res.status, JSON.stringify(res.json)).toBe(201);
  return id;
}

const stats = async (sale: string) => (await call(`/v1/admin/flash-sales/${sale}`, { method: "GET", headers: adminHeaders, now: at(3) })).json;

/** The message the intake queued for a grab, as the consumer received it. */
const grabMessage = (sale: string, user: string, ticketId: string): IntakeMessage => ({
  kind: "grab",
  saleId: sale,
  userId: user,
  ticketId,
  now: Date.parse(at(1)),
  requestId: `redelivery-${ticketId}`,
});

/** Runs the consumer again on messages, in batches as the queue makes them; every one is acked. */
async function redeliver(messages: IntakeMessage[]) {
  for (let i = 0; i < messages.length; i += 100) {
    const batch = messages.slice(i, i + 100).map((body, j) => ({ id: `again-${i + j}`, body }));
    const result = await consume(batch, "fanfare-intake");
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks.length).toBe(batch.length);
  }
}

describe("a queued flash sale", () => {
  it("answers 5,000 concurrent grabs of 100 units with 5,000 tickets, each ending once: exactly 100 tokens and 4,900 SOLD_OUT, " +
    "and a redelivery of every message changes nothing", async () => {
    const sale = await queuedSale({ stock: 100 });
    const users = Array.from({ length: 5000 }, (_, i) => `flood-${sale}-${i}`);
    const answers = await Promise.all(users.map((user) => call(`/v1/flash-sales/${sale}/grab`, { user, now: at(1) })));
    expect(answers.filter((r) => r.status !== 202).map((r) => r.json)).toEqual([]);
    for (const r of answers) {
      expect(r.json.ticket.status).toBe("pending");
      expect(r.headers.get("location")).toBe(`/v1/tickets/${r.json.ticket.id}`);
    }
    const tickets = answers.map((r, i) => ({ id: r.json.ticket.id as string, user: users[i]! }));
    expect(new Set(tickets.map((t) => t.id)).size).toBe(5000);

    const done = await answeredTickets(tickets);
    const outcomes = [...done.values()];
    const won = outcomes.filter((t) => t.httpStatus === 200);
    expect(won).toHaveLength(100);
    expect(new Set(won.map((t) => t.answer.token)).size).toBe(100);
    expect(won.every((t) => t.answer.saleId === sale && t.answer.ok === true)).toBe(true);
    const refused = outcomes.filter((t) => t.httpStatus !== 200);
    expect(refused).toHaveLength(4900);
    expect(refused.every((t) => t.httpStatus === 409 && t.answer.error.code === "SOLD_OUT")).toBe(true);
    const before = await stats(sale);
    expect(before).toMatchObject({ held: 100, sold: 0, remaining: 0, state: "sold-out" });
    // Every grab was made once: one grab record each.
    const grabs = () => rows("SELECT id FROM flash_sale_grabs WHERE sale_id = ?", sale);
    await eventually(async () => (await grabs()).length >= 5000, 120_000);
    expect(await grabs()).toHaveLength(5000);

    await redeliver(tickets.map((t) => grabMessage(sale, t.user, t.id)));
    const again = await answeredTickets(tickets);
    for (const t of tickets) expect(again.get(t.id)).toEqual(done.get(t.id));
    expect(await stats(sale)).toEqual({ ...before, requestId: expect.any(String) });
    await new Promise((r) => setTimeout(r, 2000));
    expect(await grabs()).toHaveLength(5000);
  }, 600_000);

  it("takes one token for a grab delivered twice at once before its ticket was answered", async () => {
    const sale = await queuedSale({ stock: 5 });
    const user = `twice-${sale}`;
    const ticketId = `t_${crypto.randomUUID()}`;
    // A ticket opened as the intake opens one, its message not yet run.
    await account(user).claimIdempotency(TICKETS_NAMESPACE, ticketId, "", Date.now());
    const body = grabMessage(sale, user, ticketId);
    await Promise.all([consume([{ id: "first", body }], "fanfare-intake"), consume([{ id: "second", body }], "fanfare-intake")]);
    const ticket = (await readTicket(user, ticketId)).json.ticket;
    expect(ticket).toMatchObject({ status: "done", httpStatus: 200, answer: { saleId: sale } });
    expect(await stats(sale)).toMatchObject({ held: 1, remaining: 4 });
  });

  it("leaves a ticket pending and retries its message when the shard cannot serve the grab now", async () => {
    const sale = await queuedSale({ stock: 5 });
    const user = `retried-${sale}`;
    // The shard holds another stock than the sale's definition (a config changed after the sale opened): it answers
    // every grab "changed", UNAVAILABLE, until an operator sorts it out.
    const stub = saleShard(env, sale, 0);
    await runInDurableObject(stub, (_: SaleStock, state: DurableObjectState) => {
      state.storage.sql.exec("UPDATE meta SET v = json_set(v, '$.stock', 6) WHERE k = 'definition'");
      state.storage.sql.exec("DELETE FROM meta WHERE k = 'definition_hash' OR k LIKE 'accepted:%'");
    });
    await evictDurableObject(stub);
    const ticketId = `t_${crypto.randomUUID()}`;
    await account(user).claimIdempotency(TICKETS_NAMESPACE, ticketId, "", Date.now());
    const result = await consume([{ id: "busy", body: grabMessage(sale, user, ticketId), attempts: 3 }], "fanfare-intake");
    expect(result.retryMessages).toEqual([{ msgId: "busy" }]);
    expect(result.explicitAcks).toEqual([]);
    expect((await readTicket(user, ticketId)).json.ticket).toEqual({ id: ticketId, status: "pending" });
  });

  it("answers a repeat of a queued grab with the same Idempotency-Key with the same ticket", async () => {
    const sale = await queuedSale({ stock: 5 });
    const headers = { "idempotency-key": `grab-${sale}` };
    const first = await call(`/v1/flash-sales/${sale}/grab`, { user: "keyed-buyer", now: at(1), headers });
    const second = await call(`/v1/flash-sales/${sale}/grab`, { user: "keyed-buyer", now: at(1), headers });
    expect([first.status, second.status]).toEqual([202, 202]);
    expect(second.json.ticket.id).toBe(first.json.ticket.id);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    // The replay points at the ticket, as the first answer did.
    expect(first.headers.get("location")).toBe(`/v1/tickets/${first.json.ticket.id}`);
    expect(second.headers.get("location")).toBe(first.headers.get("location"));
    const done = await answeredTickets([{ id: first.json.ticket.id, user: "keyed-buyer" }]);
    expect(done.get(first.json.ticket.id)).toMatchObject({ httpStatus: 200 });
    expect(await stats(sale)).toMatchObject({ held: 1, remaining: 4 });
  });

  it("decides a grab as of its arrival: one queued before the sale opens ends NOT_STARTED", async () => {
    const sale = await queuedSale({ stock: 5 });
    const early = await call(`/v1/flash-sales/${sale}/grab`, { user: "early-bird", now: at(-1) });
    expect(early.status).toBe(202);
    const done = await answeredTickets([{ id: early.json.ticket.id, user: "early-bird" }]);
    expect(done.get(early.json.ticket.id)).toMatchObject({ httpStatus: 403, answer: { ok: false, error: { code: "NOT_STARTED" } } });
  });
});
