/**
 * The benchmark's baseline: a flash sale the naive way (the design a first flash sale usually has), stock as a D1 row that each grab
 * reads, checks and writes back. Two grabs that read the same count both sell: this is the oversell ours must not have.
 */
interface Env {
  DB: D1Database;
}

export default {
  async fetch(req: Request, env: Env): Promise<Response> {
    const url = new URL(req.url);
    const sale = url.searchParams.get("sale") ?? "s";
    if (url.pathname === "/health") return Response.json({ ok: true });
    if (url.pathname === "/setup") {
      const stock = Number(url.searchParams.get("stock") ?? 100);
      await env.DB.batch([
        env.DB.prepare("CREATE TABLE IF NOT EXISTS stock (sale TEXT PRIMARY KEY, remaining INTEGER NOT NULL)"),
        env.DB.prepare("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY AUTOINCREMENT, sale TEXT NOT NULL, user_id TEXT NOT NULL)"),
        env.DB.prepare("INSERT OR REPLACE INTO stock (sale, remaining) VALUES (?, ?)").bind(sale, stock),
      ]);
      return Response.json({ ok: true });
    }
    if (url.pathname === "/grab") {
      const row = await env.DB.prepare("SELECT remaining FROM stock WHERE sale = ?").bind(sale).first<{ remaining: number }>();
      if (!row || row.remaining <= 0) return Response.json({ error: "SOLD_OUT" }, { status: 409 });
      await env.DB.prepare("UPDATE stock SET remaining = ? WHERE sale = ?")
        .bind(row.remaining - 1, sale)
        .run();
      await env.DB.prepare("INSERT INTO orders (sale, user_id) VALUES (?, ?)")
        .bind(sale, url.searchParams.get("user") ?? "?")
        .run();
      return Response.json({ ok: true });
    }
    if (url.pathname === "/orders") {
      const n = await env.DB.prepare("SELECT count(*) AS n FROM orders WHERE sale = ?").bind(sale).first<{ n: number }>();
      return Response.json({ orders: n?.n ?? 0 });
    }
    return new Response("not found", { status: 404 });
  },
};
