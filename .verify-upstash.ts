import { createHash } from "node:crypto";
import { Redis } from "@upstash/redis";
import { Ratelimit } from "@upstash/ratelimit";
import { startGateway, startRedis } from "./scripts/upstash-gateway";

const redisSrv = await startRedis();
const token = "tok-" + Math.random().toString(36).slice(2);
const gw = await startGateway({ redisPort: redisSrv.port, token });
console.log("redis port", redisSrv.port, "gateway", gw.url);
const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
const post = async (path: string, body: unknown, headers: Record<string, string> = auth) => {
  const r = await fetch(gw.url + path, { method: "POST", headers, body: JSON.stringify(body) });
  return `${r.status} ${await r.text()}`;
};
try {
  console.log("no token:", await post("/", ["ping"], { "content-type": "application/json" }));
  console.log("bad token:", await post("/", ["ping"], { authorization: "Bearer nope" }));
  console.log("ping:", await post("/", ["ping"]));
  console.log("ping b64:", await post("/", ["ping"], { ...auth, "upstash-encoding": "base64" }));
  console.log("set:", await post("/", ["set", "k", "héllo", "EX", 100]));
  console.log("get b64:", await post("/", ["get", "k"], { ...auth, "upstash-encoding": "base64" }));
  console.log("bad cmd:", await post("/", ["nosuchcmd"]));
  console.log("wrongtype:", await post("/", ["lpush", "k", "x"]));
  console.log("bigint:", await post("/", ["incrby", "big", "9007199254740993"]));
  console.log("pipeline:", await post("/pipeline", [["set", "a", 1], ["incr", "k"], ["mget", "a", "nope"], ["subscribe", "x"]]));
  console.log("multi runtime err:", await post("/multi-exec", [["set", "b", 1], ["lpush", "b", "x"], ["get", "b"]]));
  console.log("multi execabort:", await post("/multi-exec", [["set", "b", 1], ["set"]]));
  console.log("multi bad:", await post("/multi-exec", [["set", "b", 1], ["exec"]]));
  console.log("single multi:", await post("/", ["multi"]));
  console.log("404:", await post("/get/k", []));
  const c0 = await gw.commands();
  const c1 = await gw.commands();
  console.log("commands() twice with nothing between: delta", c1 - c0);
  const r = await fetch(gw.url + "/__control/commands");
  console.log("GET /__control/commands:", r.status, await r.text());

  const redis = new Redis({ url: gw.url, token });
  console.log("client set:", await redis.set("x", { a: 1, s: "ü" }), "get:", await redis.get("x"));
  console.log("incr:", await redis.incr("n"), await redis.incr("n"));
  console.log("ping:", await redis.ping(), "echo:", await redis.echo("hi"));
  await redis.hset("h", { f1: "v1", f2: 2 });
  console.log("hgetall:", await redis.hgetall("h"));
  const p = redis.pipeline();
  p.set("p1", "v").get("p1").incr("p2").lrange("nolist", 0, -1);
  console.log("pipeline:", JSON.stringify(await p.exec()));
  const m = redis.multi();
  m.set("m1", "v").get("m1").incr("m2").incr("m2");
  console.log("multi:", JSON.stringify(await m.exec()));
  try { await redis.lpush("m1", "x"); } catch (e) { console.log("client error:", String(e).slice(0, 120)); }
  const pe = redis.pipeline(); pe.set("z", 1).lpush("z", "x");
  try { await pe.exec(); } catch (e) { console.log("pipeline error:", String(e).slice(0, 120)); }
  const s = redis.createScript<number>("#!lua flags=allow-key-locking\nreturn redis.call('incr', KEYS[1])");
  console.log("createScript exec:", await s.exec(["sc"], []), await s.exec(["sc"], []));
  console.log("scriptLoad returns client sha:", (await redis.scriptLoad("#!lua flags=allow-key-locking\nreturn 1")) === createHash("sha1").update("#!lua flags=allow-key-locking\nreturn 1").digest("hex"));
  console.log("scriptExists:", await redis.scriptExists(createHash("sha1").update("#!lua flags=allow-key-locking\nreturn 1").digest("hex")));

  // Ratelimit with ephemeral cache
  const rl = new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(5, "10 s"), ephemeralCache: new Map(), prefix: "rl-cache" });
  const costs: string[] = [];
  for (let i = 0; i < 20; i++) {
    const before = await gw.commands();
    const res = await rl.limit("k");
    const after = await gw.commands();
    costs.push(`${res.success ? "ok" : "block"}${res.reason ? "/" + res.reason : ""}:${after - before}`);
  }
  console.log("ephemeralCache Map:", costs.join(" "));
  const rl2 = new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(5, "10 s"), ephemeralCache: false, prefix: "rl-nocache" });
  const costs2: string[] = [];
  for (let i = 0; i < 20; i++) {
    const before = await gw.commands();
    const res = await rl2.limit("k");
    const after = await gw.commands();
    costs2.push(`${res.success ? "ok" : "block"}${res.reason ? "/" + res.reason : ""}:${after - before}`);
  }
  console.log("ephemeralCache false:", costs2.join(" "));

  // Fail-open on stall
  const rl3 = new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(5, "10 s"), ephemeralCache: false, timeout: 200, prefix: "rl-stall" });
  gw.setStall(2000);
  const t0 = Date.now();
  const res3 = await rl3.limit("k");
  console.log("stall 2000 / timeout 200:", JSON.stringify({ success: res3.success, reason: res3.reason }), "after", Date.now() - t0, "ms");
  gw.setStall(0);
  // stall via HTTP control
  console.log("control stall:", await post("/__control", { stallMs: 300 }));
  const t1 = Date.now();
  await redis.get("k");
  console.log("get under 300ms stall took", Date.now() - t1, "ms");
  console.log("control unstall:", await post("/__control", { stallMs: 0 }));
  console.log("control no token:", await post("/__control", { stallMs: 0 }, { "content-type": "application/json" }));
} finally {
  await gw.stop();
  await redisSrv.stop();
}
console.log("stopped");
