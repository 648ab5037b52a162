/**
 * A real HTTP server standing in for partner systems (an HTTP coupon center, a notification receiver, an identity
 * provider's JWKS, third-party benefit partners). It records what it receives; `POST /control` sets how many of the
 * next requests fail with 503 and the JWKS it serves. Runs in Node beside workerd.
 *
 * Benefit partners live under `/partners/{partnerId}/…`, each with its own state (so test files running at once do
 * not meet): `POST …/setup {secrets, answers}` gives it the Standard Webhooks secrets Fanfare issued and the answers
 * to its next deliveries (`{status, body}`, then 200 with a reference); `POST …/deliveries` is its delivery endpoint,
 * which verifies Fanfare's signature with the standardwebhooks library against each secret (401 when none matches)
 * and records which key verified; `GET …/received` lists the deliveries; `POST …/sign {secret?, id, timestamp?,
 * body}` signs a callback as the partner would send it (the test relays it to the worker, which this server cannot
 * reach inside the Workers test runtime).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Webhook } from "standardwebhooks";
import type { TestProject } from "vitest/node";

interface BenefitPartner {
  secrets: string[];
  answers: { status: number; body?: unknown }[];
  received: { headers: Record<string, unknown>; body: unknown; verifiedBy: number | null }[];
  served: number;
}

const benefitPartners = new Map<string, BenefitPartner>();

function partnerRoute(id: string, action: string, req: IncomingMessage, data: string, res: ServerResponse) {
  const p = benefitPartners.get(id) ?? { secrets: [], answers: [], received: [], served: 0 };
  benefitPartners.set(id, p);
  if (action === "setup") {
    const control = JSON.parse(data || "{}");
    if (control.secrets) p.secrets = control.secrets;
    if (control.answers) p.answers = control.answers;
    return res.end(JSON.stringify({ ok: true }));
  }
  if (action === "received") return res.end(JSON.stringify(p.received));
  if (action === "sign") {
    const { secret, id: webhookId, timestamp, body } = JSON.parse(data);
    const text = typeof body === "string" ? body : JSON.stringify(body);
    const at = new Date((timestamp ?? Math.floor(Date.now() / 1000)) * 1000);
    const signature = new Webhook(secret ?? p.secrets[0]).sign(webhookId, at, text);
    const headers = { "webhook-id": webhookId, "webhook-timestamp": String(Math.floor(at.getTime() / 1000)), "webhook-signature": signature };
    return res.end(JSON.stringify({ headers, body: text }));
  }
  // A delivery: verified against each secret the partner holds, with the same library Fanfare signs with.
  const verifiedBy = p.secrets.findIndex((secret) => {
    try {
      new Webhook(secret).verify(data, req.headers as Record<string, string>);
      return true;
    } catch {
      return false;
    }
  });
  p.received.push({ headers: req.headers, body: data ? JSON.parse(data) : null, verifiedBy: verifiedBy < 0 ? null : verifiedBy });
  if (verifiedBy < 0) {
    res.statusCode = 401;
    return res.end(JSON.stringify({ error: "bad signature" }));
  }
  const next = p.answers.shift() ?? { status: 200, body: { reference: `${id}-ref-${++p.served}` } };
  res.statusCode = next.status;
  res.end(JSON.stringify(next.body ?? {}));
}

// ---- The test risk engine (src/risk/engine.ts): answers by the user id's first word, and records what it was asked. ----
// `deny…` → deny, `blacklist…` → deny confirming the abuser, `challenge…` → challenge, `slow…` → allow after 1.5 s
// (past every test scene's timeout), anything else → allow. `GET /risk-engine/asked?user=…` lists the questions.

const riskQuestions: { headers: Record<string, unknown>; body: string }[] = [];

function riskEngineRoute(req: IncomingMessage, url: URL, data: string, res: ServerResponse) {
  if (req.method === "GET") {
    const user = url.searchParams.get("user");
    return res.end(JSON.stringify(riskQuestions.filter((q) => user === null || JSON.parse(q.body).user === user)));
  }
  riskQuestions.push({ headers: req.headers, body: data });
  const user = String(JSON.parse(data || "{}").user ?? "");
  const answer = (body: unknown) => res.end(JSON.stringify(body));
  if (user.startsWith("deny")) return answer({ decision: "deny", reason: "scripted deny" });
  if (user.startsWith("blacklist")) return answer({ decision: "deny", reason: "confirmed abuser", blacklist: true });
  if (user.startsWith("challenge")) return answer({ decision: "challenge" });
  if (user.startsWith("slow")) return void setTimeout(() => answer({ decision: "allow" }), 1500);
  return answer({ decision: "allow" });
}

// ---- end of the test risk engine ----

// ---- User segments (src/segments): a crowd service and a right-ranking strategy, one state per name ----
// `POST /segments/{name}/setup {members?, ranking?, delayMs?, status?}` sets who is in the crowd, the ranking to answer,
// a delay before answering and an HTTP status to answer with; `…/crowd` answers {member}, `…/rank` {ranking};
// `GET …/stats` counts the calls each received.
interface SegmentService {
  members: Set<string>;
  ranking: string[];
  delayMs: number;
  status: number;
  crowdCalls: number;
  rankCalls: number;
}
const segmentServices = new Map<string, SegmentService>();

function segmentRoute(name: string, action: string, data: string, res: ServerResponse) {
  const s = segmentServices.get(name) ?? { members: new Set(), ranking: [], delayMs: 0, status: 200, crowdCalls: 0, rankCalls: 0 };
  segmentServices.set(name, s);
  if (action === "setup") {
    const c = JSON.parse(data || "{}");
    if (c.members) s.members = new Set(c.members);
    if (c.ranking) s.ranking = c.ranking;
    if (c.delayMs !== undefined) s.delayMs = c.delayMs;
    if (c.status !== undefined) s.status = c.status;
    return res.end(JSON.stringify({ ok: true }));
  }
  if (action === "stats") return res.end(JSON.stringify({ crowdCalls: s.crowdCalls, rankCalls: s.rankCalls }));
  const body = data ? JSON.parse(data) : {};
  if (action === "crowd") s.crowdCalls++;
  else s.rankCalls++;
  setTimeout(() => {
    res.statusCode = s.status;
    res.end(JSON.stringify(action === "crowd" ? { member: s.members.has(body.userId) } : { ranking: s.ranking }));
  }, s.delayMs);
}

let server: Server;

export default async function setup(project: TestProject) {
  const received: { path: string; headers: Record<string, unknown>; body: unknown }[] = [];
  let failNext = 0;
  let jwks = { keys: [] as unknown[] };
  server = createServer((req, res) => {
    let data = "";
    req.on("data", (chunk) => (data += chunk));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://partner");
      res.setHeader("content-type", "application/json");
      const partner = /^\/partners\/([^/]+)\/(setup|received|sign|deliveries)$/.exec(url.pathname);
      const segments = /^\/segments\/([^/]+)\/(setup|stats|crowd|rank)$/.exec(url.pathname);
      if (partner) {
        partnerRoute(partner[1]!, partner[2]!, req, data, res);
      } else if (url.pathname === "/risk-engine") {
        riskEngineRoute(req, url, data, res);
      } else if (segments) {
        segmentRoute(segments[1]!, segments[2]!, data, res);
      } else if (url.pathname === "/control") {
        const control = JSON.parse(data || "{}");
        failNext = Number(control.failNext ?? 0);
        if (control.jwks) jwks = control.jwks;
        res.end(JSON.stringify({ ok: true }));
      } else if (url.pathname === "/.well-known/jwks.json") {
        res.end(JSON.stringify(jwks));
      } else if (url.pathname === "/received") {
        res.end(JSON.stringify(received.filter((r) => r.path.startsWith(url.searchParams.get("prefix") ?? "/"))));
      } else if (failNext > 0) {
        failNext--;
        res.statusCode = 503;
        res.end(JSON.stringify({ error: "unavailable" }));
      } else {
        received.push({ path: url.pathname, headers: req.headers, body: data ? JSON.parse(data) : null });
        res.end(JSON.stringify({ ok: true }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  project.provide("partnerPort", typeof address === "object" && address ? address.port : 0);
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}

declare module "vitest" {
  export interface ProvidedContext {
    partnerPort: number;
  }
}
