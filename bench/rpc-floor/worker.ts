/**
 * The floor under every route that calls a Durable Object: a health route, a route making one RPC that does
 * nothing, and one making one RPC that inserts a row (the least a grab, a draw or a commit does), into one object, into
 * one of 5,000 (a user's account, as users come and go) and into a new object each time (a user's first run).
 */
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject {
  async nothing(): Promise<number> {
    return 1;
  }

  async insert(): Promise<number> {
    this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, at INTEGER NOT NULL)");
    this.ctx.storage.sql.exec("INSERT INTO rows (at) VALUES (?)", Date.now());
    return 1;
  }
}

/** Objects the spread route picks from: each is idle (and evicted, after 10 s) most of the time, as accounts are. */
const SPREAD = 5000;

interface Env {
  COUNTER: DurableObjectNamespace<Counter>;
}

export default {
  async fetch(req: Request, env: Env): Promise<Response> {
    const path = new URL(req.url).pathname;
    if (path === "/health") return Response.json({ ok: true });
    const counter = env.COUNTER.get(env.COUNTER.idFromName("floor"));
    if (path === "/rpc") return Response.json({ ok: true, n: await counter.nothing() });
    if (path === "/rpc-insert") return Response.json({ ok: true, n: await counter.insert() });
    if (path === "/rpc-insert-spread" || path === "/rpc-insert-new") {
      const name = path === "/rpc-insert-new" ? crypto.randomUUID() : `user-${Math.floor(Math.random() * SPREAD)}`;
      return Response.json({ ok: true, n: await env.COUNTER.get(env.COUNTER.idFromName(name)).insert() });
    }
    return new Response("not found", { status: 404 });
  },
};
