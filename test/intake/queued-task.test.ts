/**
 * A task declared `intake: queue`: the request answers 202 with a ticket, and the ticket ends with the answer a
 * direct run would have got, committed once however often the run's message is delivered.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { TICKETS_NAMESPACE } from "../../src/intake/intake-mode";
import type { IntakeMessage } from "../../src/intake/messages";
import { account, accountRows, answeredTickets, call, consume, pushConfigs, readTicket, records, runTask, unique } from "../helpers";

const ACTIVITY = `queued-${unique()}`;
const NOW = "2026-11-22T10:00:00+08:00";

// `signIn` is queued; `signInNow` is the same task answered in the request, to compare with.
const signIn = `validator: [login, { limit: { perUser: 1, message: Signed in already } }]
    reward: [{ chances: { chance: draw, amount: 1 } }]`;
const config = `
id: ${ACTIVITY}
name: Queued tasks
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
chances:
  draw: { initial: 0 }
tasks:
  signIn:
    intake: queue
    ${signIn}
  signInNow:
    ${signIn}
  earn:
    intake: queue
    validator: [login]
    reward: [{ chances: { chance: draw, amount: 1 } }]
  packet:
    intake: queue
    validator: [login]
    reward: [{ redPacket: { amount: 1, stock: 3, stockKey: queued, stockField: packets } }]
  withPhone:
    intake: queue
    request: [{ field: phone, rule: required, message: a phone number is needed }]
    validator: [login]
`;

beforeAll(async () => {
  await pushConfigs({ "test/queued.yaml": config });
});

/** Queues a run and waits for its ticket's answer. */
async function queued(task: string, user: string, now = NOW) {
  const accepted = await runTask(ACTIVITY, task, { user, now });
  expect(accepted.status, JSON.stringify(accepted.json)).toBe(202);
  expect(accepted.headers.get("location")).toBe(`/v1/tickets/${accepted.json.ticket.id}`);
  const id: string = accepted.json.ticket.id;
  return { id, ticket: (await answeredTickets([{ id, user }])).get(id) };
}

/** What an answer says, without the ids that differ between runs. */
const gist = (status: number, body: any) =>
  body.ok ? { status, rewards: body.rewards.map(({ grantId: _, ...r }: any) => r) } : { status, error: body.error };

const draws = async (user: string) => (await call(`/v1/activities/${ACTIVITY}/me`, { method: "GET", user, now: NOW })).json.chances.draw.balance;

/** The intake message of a queued `earn` run of `user` under `ticketId`, as the intake sends it. */
const earnMessage = (user: string, ticketId: string, requestId: string): IntakeMessage => ({
  kind: "task",
  ticketId,
  activityId: ACTIVITY,
  taskId: "earn",
  method: "POST",
  user: { id: user, groups: [] },
  query: {},
  body: {},
  now: Date.parse(NOW),
  requestId,
});

describe("a queued task", () => {
  it("answers each ticket as the direct run answers its request: a sign-in, then NOT_ELIGIBLE past the per-user limit", async () => {
    const user = `signer-${unique()}`;
    const first = await queued("signIn", user);
    const second = await queued("signIn", user);
    const direct = [await runTask(ACTIVITY, "signInNow", { user, now: NOW }), await runTask(ACTIVITY, "signInNow", { user, now: NOW })];

    expect(first.ticket).toMatchObject({ status: "done", httpStatus: 200, answer: { ok: true, activityId: ACTIVITY, taskId: "signIn" } });
    expect(gist(first.ticket.httpStatus, first.ticket.answer)).toEqual(gist(direct[0]!.status, direct[0]!.json));
    expect(second.ticket).toMatchObject({ httpStatus: 403, answer: { ok: false, error: { code: "NOT_ELIGIBLE", message: "Signed in already" } } });
    expect(gist(second.ticket.httpStatus, second.ticket.answer)).toEqual(gist(direct[1]!.status, direct[1]!.json));
  });

  it("gives a red packet of stock 3 to exactly 3 of 20 concurrent queued users; the others' tickets end SOLD_OUT", async () => {
    const users = Array.from({ length: 20 }, (_, i) => `packet-${unique()}-${i}`);
    const accepted = await Promise.all(users.map((user) => runTask(ACTIVITY, "packet", { user, now: NOW })));
    expect(accepted.every((r) => r.status === 202)).toBe(true);
    const done = [...(await answeredTickets(accepted.map((r, i) => ({ id: r.json.ticket.id, user: users[i]! })))).values()];
    const granted = done.filter((t) => t.httpStatus === 200);
    expect(granted).toHaveLength(3);
    expect(granted.every((t) => t.answer.rewards[0].granted === true)).toBe(true);
    expect(done.filter((t) => t.httpStatus === 409 && t.answer.error.code === "SOLD_OUT")).toHaveLength(17);
    const rewards = await records(3, "SELECT id FROM reward_records WHERE namespace = ? AND task_id = 'packet'", ACTIVITY);
    expect(rewards).toHaveLength(3);
  });

  it("runs a redelivered message once: the ticket keeps its answer and the grant is not made again", async () => {
    const user = `again-${unique()}`;
    const { id, ticket } = await queued("earn", user);
    expect(ticket.httpStatus).toBe(200);
    const body = earnMessage(user, id, "redelivery");
    const result = await consume([{ id: "again", body }], "fanfare-intake");
    expect(result.explicitAcks).toEqual(["again"]);
    expect((await readTicket(user, id)).json.ticket).toEqual(ticket);
    expect(await draws(user)).toBe(1);
    expect(await records(1, "SELECT id FROM participations WHERE user_id = ?", user)).toHaveLength(1);
  });

  it("does not run a message whose ticket is gone (released after a failed send, or expired), and no commit can use it", async () => {
    const user = `gone-${unique()}`;
    const ticketId = `t_${crypto.randomUUID()}`;
    const body = earnMessage(user, ticketId, "gone");
    const result = await consume([{ id: "gone", body }], "fanfare-intake");
    expect(result.explicitAcks).toEqual(["gone"]);
    expect(await draws(user)).toBe(0);
    // Even a run that got past the consumer's look (a read that failed, say) cannot commit under a key nobody claimed.
    const direct = await account(user).commit({
      namespace: ACTIVITY,
      userId: user,
      requestId: "no-claim",
      startedAt: Date.now(),
      committedAt: Date.now(),
      locks: [],
      counters: [{ key: "probe", delta: 1 }],
      requirements: [],
      reservations: [],
      records: { participations: [], rewards: [], deliveries: [] },
      idempotency: { namespace: TICKETS_NAMESPACE, key: ticketId, status: 200, body: "{}" },
    });
    expect(direct).toEqual({ ok: false, rejection: { code: "LOCKED", message: "this request's Idempotency-Key or ticket is no longer open" } });
    expect(await account(user).counters(ACTIVITY, ["probe"])).toEqual({});
  });

  it("gives its ticket up and answers UNAVAILABLE when the queue refuses the run's message: nothing is granted", async () => {
    const user = `refused-${unique()}`;
    // A message over the queue's 128 KB limit (the request's query travels in it): the queue refuses it for real.
    const refused = await runTask(ACTIVITY, "earn", { user, now: NOW, query: { padding: "x".repeat(130_000) } });
    expect(refused.status).toBe(503);
    expect(refused.json.error.code).toBe("UNAVAILABLE");
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(refused.headers.get("location")).toBeNull();
    expect(refused.json.ticket).toBeUndefined();
    // The ticket claimed before the send is gone: the account holds no key, no count, nothing waiting to leave.
    expect(await accountRows(user)).toEqual({ counters: 0, locks: 0, idempotencyKeys: 0, reservations: 0, pendingRecords: 0, profile: 0 });
    expect(await draws(user)).toBe(0);
    // The same run, small enough, is queued and granted once.
    expect((await queued("earn", user)).ticket.httpStatus).toBe(200);
    expect(await draws(user)).toBe(1);
  });

  it("commits once when its message is delivered twice at once before the ticket is answered", async () => {
    const user = `twice-${unique()}`;
    const ticketId = `t_${crypto.randomUUID()}`;
    await account(user).claimIdempotency(TICKETS_NAMESPACE, ticketId, "", Date.now());
    const body = earnMessage(user, ticketId, "twice");
    await Promise.all([consume([{ id: "one", body }], "fanfare-intake"), consume([{ id: "two", body }], "fanfare-intake")]);
    expect((await readTicket(user, ticketId)).json.ticket).toMatchObject({ status: "done", httpStatus: 200 });
    expect(await draws(user)).toBe(1);
    expect(await records(1, "SELECT id FROM participations WHERE user_id = ?", user)).toHaveLength(1);
    // A delivery that reached the commit second was refused there (LOCKED: its ticket was answered), changing nothing.
    const outcomes = (await records(1, "SELECT outcome FROM request_records WHERE user_id = ?", user)).map((r: any) => r.outcome);
    expect(outcomes.filter((o) => o === "OK")).toHaveLength(1);
    expect(outcomes.every((o) => o === "OK" || o === "LOCKED")).toBe(true);
  });

  it("decides a run as of its arrival: one queued outside the activity's window ends OUTSIDE_TIME_WINDOW", async () => {
    const { ticket } = await queued("earn", `late-${unique()}`, "2027-01-02T00:00:00+08:00");
    expect(ticket).toMatchObject({ httpStatus: 403, answer: { error: { code: "OUTSIDE_TIME_WINDOW" } } });
  });

  it("refuses at once, with no ticket, a request its rules refuse, and an anonymous one", async () => {
    const bad = await runTask(ACTIVITY, "withPhone", { user: `rules-${unique()}`, now: NOW });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ code: "INVALID_PARAMS", message: "a phone number is needed" });
    const anonymous = await runTask(ACTIVITY, "earn", { now: NOW });
    expect(anonymous.status).toBe(401);
    expect(anonymous.json.error.code).toBe("UNAUTHENTICATED");
  });

  it("answers a repeat with the same Idempotency-Key with the same ticket", async () => {
    const user = `keyed-${unique()}`;
    const headers = { "idempotency-key": `earn-${user}` };
    const first = await runTask(ACTIVITY, "earn", { user, now: NOW, headers });
    const second = await runTask(ACTIVITY, "earn", { user, now: NOW, headers });
    expect([first.status, second.status]).toEqual([202, 202]);
    expect(second.json.ticket.id).toBe(first.json.ticket.id);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    // The replay points at the ticket, as the first answer did.
    expect(first.headers.get("location")).toBe(`/v1/tickets/${first.json.ticket.id}`);
    expect(second.headers.get("location")).toBe(first.headers.get("location"));
    await answeredTickets([{ id: first.json.ticket.id, user }]);
    expect(await draws(user)).toBe(1);
    const other = await call(`/v1/activities/${ACTIVITY}/tasks/earn`, { user, now: NOW, headers, body: { extra: 1 } });
    expect(other.json.error.code).toBe("IDEMPOTENCY_MISMATCH");
  });
});
