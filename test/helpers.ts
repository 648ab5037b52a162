/** Test helpers: push configs the way `tasks:push` does, mint tokens, and call the real worker. */
import { createExecutionContext, createMessageBatch, getQueueResult, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { SignJWT } from "jose";
import worker from "../src/index";
import type { QueueMessage } from "../src/records/messages";
import type { IntakeMessage } from "../src/intake/messages";
import { bundleHash, type ConfigFile } from "../src/config/compile";
import { activationSql } from "../src/config/store";
import { checkResponse } from "./openapi/conformance";
import { userAccount } from "../durable-objects/support/stubs";
import { counterTotals } from "../src/counters/counters";

/** Pushes the shipped task-configs plus `extra` files as the active version (through the same SQL as the CLI). */
export async function pushConfigs(extra: Record<string, string> = {}, includeShipped = true): Promise<string> {
  const files: ConfigFile[] = [
    ...(includeShipped ? env.TEST_TASK_CONFIGS : []),
    ...Object.entries(extra).map(([name, source]) => ({ name, source })),
  ];
  const hash = await bundleHash(files);
  const sql = activationSql(hash, { files }, Date.now(), "test");
  await env.DB.batch(sql.map((s) => env.DB.prepare(s)));
  return hash;
}

export async function token(userId: string, opts: { groups?: string[]; claims?: Record<string, unknown>; secret?: string; expiresIn?: number } = {}) {
  return new SignJWT({ ...opts.claims, groups: opts.groups ?? [] })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (opts.expiresIn ?? 3600))
    .sign(new TextEncoder().encode(opts.secret ?? env.JWT_SECRET!));
}

export interface CallOptions {
  user?: string;
  groups?: string[];
  /** Claims of the user's token besides sub and groups (profile attributes). */
  claims?: Record<string, unknown>;
  method?: string;
  body?: unknown;
  rawBody?: string;
  query?: Record<string, string>;
  now?: string | number;
  headers?: Record<string, string>;
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  json: any;
}

export async function call(path: string, opts: CallOptions = {}): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.user) headers.authorization = `Bearer ${await token(opts.user, { groups: opts.groups, claims: opts.claims })}`;
  if (opts.now !== undefined) headers["x-fanfare-now"] = String(opts.now);
  const method = opts.method ?? "POST";
  let body: string | undefined = opts.rawBody;
  if (body === undefined && (method === "POST" || opts.body !== undefined)) body = JSON.stringify(opts.body ?? {});
  if (body !== undefined) headers["content-type"] ??= "application/json";
  const url = new URL(`https://fanfare.test${path}`);
  for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
  const res = await exports.default.fetch(new Request(url, { method, headers, body }));
  const text = await res.text();
  // Every answer of the suite is also held to the OpenAPI document.
  const mismatch = await checkResponse(method, url, res, text);
  if (mismatch) throw new Error(`OpenAPI mismatch: ${mismatch}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, headers: res.headers, json };
}

/** A new service key with `scopes`, made through the operator API (its secret, shown once). */
export async function serviceKey(scopes: string[]): Promise<string> {
  const res = await call("/v1/admin/service-keys", {
    headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
    body: { name: `test-${unique()}`, scopes },
  });
  if (res.status !== 201) throw new Error(`service key not made: ${res.status} ${JSON.stringify(res.json)}`);
  return res.json.secret as string;
}

export const runTask = (activity: string, task: string, opts: CallOptions = {}) => call(`/v1/activities/${activity}/tasks/${task}`, opts);

/** Rows of a table for one namespace (records are asserted on, not mocks). */
export async function rows<T = Record<string, unknown>>(sql: string, ...bind: unknown[]): Promise<T[]> {
  return (
    await env.DB.prepare(sql)
      .bind(...bind)
      .all<T>()
  ).results;
}

/** Polls until `check` returns a truthy value (work done by the queue consumer), or fails after `ms`. */
export async function eventually<T>(check: () => Promise<T>, ms = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A user's account (the Durable Object that holds the user's counters, locks and keys in every namespace). */
export function account(userId: string) {
  return userAccount(env, userId);
}

/** Row counts of a user's account tables, read from its storage (a refusal must leave them as they were). */
export function accountRows(userId: string) {
  return runInDurableObject(account(userId), (_: unknown, state: DurableObjectState) => {
    const n = (table: string) => state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table}`).one().n;
    return {
      counters: n("counters"),
      locks: n("locks"),
      idempotencyKeys: n("idempotency_keys"),
      reservations: n("reservations"),
      pendingRecords: n("outbox"),
      profile: n("profile"),
    };
  });
}

/**
 * A shared counter's totals over its shards (src/counters), as the shards count them: `used` by commits, `reserved`
 * by runs not yet settled, `remaining`. `capacity` and `shards` as the config declares them.
 */
export async function shared(namespace: string, key: string, capacity: number, shards = 1) {
  const def = { id: `${namespace}/${key}`, capacity, shards, holdMs: 0, revision: 0 };
  return counterTotals(env, def);
}

/** One of a user's counters in a namespace (undefined if never written). */
export async function counter(namespace: string, userId: string, key: string): Promise<number | undefined> {
  const found = await account(userId).counters(namespace, [key]);
  return Object.hasOwn(found, key) ? found[key] : undefined;
}

/**
 * D1 rows forwarded from the outboxes, once there are `count` of them; then a moment more, to see that no extra
 * row follows.
 */
export async function records<T = Record<string, unknown>>(count: number, sql: string, ...bind: unknown[]): Promise<T[]> {
  // Generous: after a burst of thousands of commits (one queue message each) records trail by many seconds here.
  await eventually(async () => (await rows(sql, ...bind)).length >= count, 120_000);
  await new Promise((r) => setTimeout(r, 300));
  return rows<T>(sql, ...bind);
}

/** A unique suffix so each test's activity lives in its own namespace. */
export const unique = () => crypto.randomUUID().slice(0, 8);

/** Runs the worker's queue handler on messages, as the queue would (at-least-once: possibly again). */
export async function consume(messages: { id: string; body: QueueMessage | IntakeMessage; attempts?: number }[], queue = "fanfare-events") {
  const batch = createMessageBatch<QueueMessage | IntakeMessage>(
    queue,
    messages.map((m) => ({ id: m.id, timestamp: Date.now(), attempts: m.attempts ?? 1, body: m.body })),
  );
  const ctx = createExecutionContext();
  await worker.queue!(batch as MessageBatch<QueueMessage | IntakeMessage>, env, ctx);
  return getQueueResult(batch, ctx);
}

/** A ticket of a queued run, as its owner reads it (`wait`: seconds to hold the call while it is pending). */
export const readTicket = (user: string, id: string, wait = 0) => call(`/v1/tickets/${id}`, { method: "GET", user, query: { wait: String(wait) } });

/**
 * The answered tickets, once none of them is pending: each pending one is read with a long-poll (held until it is
 * answered, up to 25 s), again until all are done, or fails after `ms`.
 */
export async function answeredTickets(tickets: { id: string; user: string }[], ms = 300_000): Promise<Map<string, any>> {
  const done = new Map<string, any>();
  const deadline = Date.now() + ms;
  for (;;) {
    const pending = tickets.filter((t) => !done.has(t.id));
    const reads = await Promise.all(pending.map((t) => readTicket(t.user, t.id, 25)));
    reads.forEach((r, i) => {
      if (r.status !== 200) throw new Error(`ticket ${pending[i]!.id}: ${r.status} ${JSON.stringify(r.json)}`);
      if (r.json.ticket.status === "done") done.set(pending[i]!.id, r.json.ticket);
    });
    if (done.size === tickets.length) return done;
    if (Date.now() > deadline) throw new Error(`${tickets.length - done.size} of ${tickets.length} tickets still pending`);
  }
}
