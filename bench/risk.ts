/**
 * Issue 13's risk figure: one grant route (a red-packet task run: login, a daily limit, a shared stock, the user's
 * commit) with risk control on, against the same route without it, as a throughput ratio (goal ≥ 0.8). "On": the
 * blacklist holding 1,000 entries (every request is checked against it), the task in a risk scene with detectors per
 * user and per device (two sliding-window counts per request), and 1 % of the users on the suspected list, so those
 * requests wait for the risk engine (a real local HTTP server here, answering allow). Each side runs twice,
 * alternating, on a worker of its own started with the engine's URL and signing secret.
 */
import { spawn } from "node:child_process";
import { load, type LoadResult } from "./load";
import { BENCH_ADMIN_TOKEN, DEFAULT_STATE_DIR, pushBesideShipped, startWorker, tokens } from "./local-worker";

const SCENE = `riskScenes:
  benchScene:
    engine: { ask: suspected, timeoutMs: 2000, onFailure: open }
    detectors:
      perUser: { by: user, requests: 100, windowSeconds: 10, action: flag }
      perDevice: { by: device, requests: 100, windowSeconds: 10, action: flagAndRefuse }
`;

const TASKS = `id: benchRisk
name: Risk control against none
timeWindow: { beginTime: "2026-01-01 00:00:00", endTime: "2027-12-31 23:59:59" }
tasks:
  plain:
    validator: [login, { limit: { perUserPerDay: 1000000 } }]
    reward: [ { redPacket: { amount: 1, stock: 100000000 } } ]
  guarded:
    params: { riskScene: benchScene }
    validator: [login, { limit: { perUserPerDay: 1000000 } }]
    reward: [ { redPacket: { amount: 1, stock: 100000000, stockKey: guarded } } ]
`;

const SECRET = "whsec_YmVuY2gtcmlzay1lbmdpbmUtc2VjcmV0LTAxMjM=";

/**
 * The risk engine: a node HTTP server in a process of its own (in this one, the load generator's event loop would
 * delay its answers past the scene's timeout), answering allow and counting the questions (GET answers the count).
 */
const ENGINE = `
let asked = 0;
const server = require("node:http").createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.setHeader("content-type", "application/json");
    if (req.method === "GET") return res.end(JSON.stringify({ asked }));
    asked++;
    res.end('{"decision":"allow"}');
  });
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
`;

async function startEngine(): Promise<{ url: string; asked(): Promise<number>; stop(): void }> {
  const child = spawn(process.execPath, ["-e", ENGINE], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once("data", (d) => resolve(Number(String(d).trim())));
    child.once("exit", (code) => reject(new Error(`the bench risk engine exited (${code})`)));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    asked: async () => ((await (await fetch(url)).json()) as { asked: number }).asked,
    stop: () => child.kill(),
  };
}

export async function riskFigures(seconds: number, connections: number, port: number, say: (s: string) => void): Promise<boolean> {
  const engine = await startEngine();
  const engineUrl = engine.url;
  const worker = await startWorker(port, {
    // Beside the first worker's state, never inside it (each worker's start wipes its own).
    state: `${process.env.BENCH_STATE_DIR ?? DEFAULT_STATE_DIR}-risk`,
    vars: { RISK_ENGINE_URL: `${engineUrl}/judge`, WEBHOOK_SECRETS: JSON.stringify({ [engineUrl]: SECRET }) },
  });
  try {
    pushBesideShipped(worker.state, { "bench-risk-scene.yaml": SCENE, "bench-risk.yaml": TASKS });
    await new Promise((r) => setTimeout(r, 7_000));
    const prefix = `risk-${Date.now()}`;
    const users = await tokens(Math.max(seconds * 3000, 30_000), prefix);
    const admin = async (list: string, type: string, value: string) => {
      const res = await fetch(`${worker.url}/v1/admin/risk/${list}`, {
        method: "POST",
        headers: { authorization: `Bearer ${BENCH_ADMIN_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ subject: { type, value }, reason: "bench", actor: "bench" }),
      });
      if (res.status !== 201) throw new Error(`admin ${list} ${res.status}: ${await res.text()}`);
    };
    // 1,000 others blacklisted (the isolates' copy holds them all), every 100th bench user suspected.
    for (let i = 0; i < 1000; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => admin("blacklist", "user", `banned-${i + k}`)));
    for (let i = 0; i < users.length; i += 100) await admin("suspected", "user", `${prefix}-${i}`);

    const asUser = (i: number) => ({
      headers: {
        authorization: `Bearer ${users[i % users.length]}`,
        "content-type": "application/json",
        "x-device-id": `device-${i % users.length}`,
        "x-fanfare-now": "2026-11-22T10:00:00+08:00",
      },
      body: "{}",
    });
    const url = (task: string) => `${worker.url}/v1/activities/benchRisk/tasks/${task}`;
    const run = (task: string, label: string) => load({ name: label, url: url(task), method: "POST", seconds, connections, next: asUser });
    // Warm both paths (config, stubs, the lists' copy, the users' accounts) before measuring.
    for (const task of ["plain", "guarded"])
      await load({ name: "warm-up", url: url(task), method: "POST", seconds: 0, amount: 500, connections, next: asUser });
    const plain: LoadResult[] = [];
    const guarded: LoadResult[] = [];
    const askedBefore = await engine.asked();
    for (let round = 0; round < 2; round++) {
      plain.push(await run("plain", "POST plain task run"));
      guarded.push(await run("guarded", "POST guarded task run"));
    }
    const mean = (rs: LoadResult[]) => rs.reduce((s, r) => s + r.rps, 0) / rs.length;
    const line = (label: string, rs: LoadResult[]) =>
      `${label}: ${mean(rs).toFixed(0)} req/s (rounds ${rs.map((r) => r.rps.toFixed(0)).join(", ")}), p50 ${rs.map((r) => r.p50).join("/")} ms, p99 ${rs
        .map((r) => r.p99)
        .join("/")} ms, answers ${rs.map((r) => JSON.stringify(r.statuses)).join(" ")}, ${rs.reduce((s, r) => s + r.errors, 0)} errors`;
    say(line("red-packet task run, no risk control", plain));
    say(line("the same with blacklist (1,000 entries), 2 detectors and a risk scene (1 % suspects asked)", guarded));
    // The worker logs each question the engine did not answer in time (a warn line).
    const unanswered = worker.output().split("risk engine failed").length - 1;
    say(
      `risk engine asked ${(await engine.asked()) - askedBefore} times during the guarded runs; ${unanswered} questions unanswered in time (all runs)`,
    );
    say(`guarded / plain throughput ratio: ${(mean(guarded) / mean(plain)).toFixed(2)} (goal ≥ 0.8)`);
    return [...plain, ...guarded].every((r) => r.errors === 0 && r.non2xx === 0);
  } finally {
    await worker.stop();
    engine.stop();
  }
}
