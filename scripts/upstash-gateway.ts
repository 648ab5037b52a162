/** A throw-away real `redis-server` plus an HTTP gateway speaking Upstash's REST protocol (as serverless-redis-http does) for `@upstash/redis`, for tests and benchmarks. */
import { spawn, spawnSync } from "node:child_process";
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, createServer as createNetServer, type Socket } from "node:net";

export interface RedisServer {
  port: number;
  stop(): Promise<void>;
}

export interface Gateway {
  url: string;
  stop(): Promise<void>;
  setStall(ms: number): void;
  commands(): Promise<number>;
}

export interface GatewayOptions {
  redisPort: number;
  token: string;
  port?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// A minimal RESP2 client. Own code rather than ioredis: replies stay raw bytes (exact base64), no per-command reply
// transformers (ioredis turns HGETALL into an object), and MULTI…EXEC goes out as one write on one connection.

class ReplyError {
  constructor(readonly message: string) {}
}

type Reply = Buffer | bigint | null | ReplyError | Reply[];

// Explicit guards: Buffer.isBuffer / Array.isArray do not narrow this union cleanly.
const isBytes = (r: Reply | undefined): r is Buffer => r instanceof Uint8Array;
const isList = (r: Reply | undefined): r is Reply[] => Array.isArray(r) && !(r instanceof Uint8Array);

function parseReply(buf: Buffer, start: number): { value: Reply; end: number } | undefined {
  const lineEnd = buf.indexOf("\r\n", start);
  if (lineEnd < 0) return undefined;
  const next = lineEnd + 2;
  switch (buf[start]) {
    case 0x2b: // '+'
      return { value: buf.subarray(start + 1, lineEnd), end: next };
    case 0x2d: // '-'
      return { value: new ReplyError(buf.toString("utf8", start + 1, lineEnd)), end: next };
    case 0x3a: // ':' — bigint: Redis integers are 64-bit
      return { value: BigInt(buf.toString("latin1", start + 1, lineEnd)), end: next };
    case 0x24: {
      // '$'
      const length = Number(buf.toString("latin1", start + 1, lineEnd));
      if (length < 0) return { value: null, end: next };
      if (buf.length < next + length + 2) return undefined;
      return { value: buf.subarray(next, next + length), end: next + length + 2 };
    }
    case 0x2a: {
      // '*'
      const count = Number(buf.toString("latin1", start + 1, lineEnd));
      if (count < 0) return { value: null, end: next };
      const items: Reply[] = [];
      let pos = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, pos);
        if (!item) return undefined;
        items.push(item.value);
        pos = item.end;
      }
      return { value: items, end: pos };
    }
    default:
      throw new Error(`unexpected RESP type byte ${String(buf[start])}`);
  }
}

function encodeCommand(args: readonly Buffer[], out: Buffer[]): void {
  out.push(Buffer.from(`*${args.length}\r\n`));
  for (const arg of args) out.push(Buffer.from(`$${arg.length}\r\n`), arg, Buffer.from("\r\n"));
}

class RespConnection {
  closed = false;
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting: { resolve(reply: Reply): void; reject(error: Error): void }[] = [];
  private head = 0;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (e) => this.fail(e));
    socket.on("close", () => this.fail(new Error("redis connection closed")));
  }

  static open(port: number): Promise<RespConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: "127.0.0.1" });
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new RespConnection(socket));
      });
    });
  }

  get pending(): number {
    return this.waiting.length - this.head;
  }

  /** Sends all commands in one write; resolves with their replies in order. */
  send(commands: readonly (readonly Buffer[])[]): Promise<Reply[]> {
    if (this.closed) return Promise.reject(new Error("redis connection closed"));
    const parts: Buffer[] = [];
    const replies = commands.map((args) => {
      encodeCommand(args, parts);
      return new Promise<Reply>((resolve, reject) => this.waiting.push({ resolve, reject }));
    });
    this.socket.write(Buffer.concat(parts));
    return Promise.all(replies);
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let pos = 0;
    for (;;) {
      let parsed: { value: Reply; end: number } | undefined;
      try {
        parsed = parseReply(this.buf, pos);
      } catch (e) {
        this.fail(e instanceof Error ? e : new Error(String(e)));
        this.socket.destroy();
        return;
      }
      if (!parsed) break;
      pos = parsed.end;
      const waiter = this.waiting[this.head++];
      waiter?.resolve(parsed.value);
    }
    this.buf = pos === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(pos);
    // Compact the queue now and then instead of shift()ing on every reply.
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
  }

  private fail(error: Error): void {
    if (this.closed) return;
    this.closed = true;
    const waiters = this.waiting.splice(this.head);
    this.waiting.length = 0;
    this.head = 0;
    for (const w of waiters) w.reject(error);
  }
}

/** A few connections, each pipelined; a request goes to the least busy one so one blocking command stalls little. */
class RedisPool {
  private conns: RespConnection[] = [];
  private opening = 0;

  constructor(
    private readonly port: number,
    private readonly size: number,
  ) {}

  async acquire(): Promise<RespConnection> {
    this.conns = this.conns.filter((c) => !c.closed);
    let best: RespConnection | undefined;
    for (const c of this.conns) if (!best || c.pending < best.pending) best = c;
    if ((!best || best.pending > 0) && this.conns.length + this.opening < this.size) {
      this.opening++;
      try {
        const conn = await RespConnection.open(this.port);
        this.conns.push(conn);
        return conn;
      } finally {
        this.opening--;
      }
    }
    if (best) return best;
    await new Promise((resolve) => setTimeout(resolve, 5));
    return this.acquire();
  }

  close(): void {
    for (const c of this.conns) c.close();
    this.conns = [];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// redis-server

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function ping(port: number): Promise<boolean> {
  let conn: RespConnection | undefined;
  try {
    conn = await RespConnection.open(port);
    const [reply] = await conn.send([[Buffer.from("PING")]]);
    return isBytes(reply) && reply.toString() === "PONG";
  } catch {
    return false;
  } finally {
    conn?.close();
  }
}

class PortTaken extends Error {}

async function launchRedis(port: number): Promise<RedisServer> {
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  const collect = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000));
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  const exited = new Promise<{ code: number | null; error?: Error }>((resolve) => {
    child.once("error", (error) => resolve({ code: null, error }));
    child.once("exit", (code) => resolve({ code }));
  });
  // A test run that crashes must not leave redis-server behind.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  const deadline = Date.now() + 10_000;
  let gone: { code: number | null; error?: Error } | undefined;
  void exited.then((r) => (gone = r));
  while (!(await ping(port))) {
    if (gone || Date.now() > deadline) {
      process.off("exit", killOnExit);
      if (!gone) child.kill("SIGKILL");
      if (gone?.error && (gone.error as NodeJS.ErrnoException).code === "ENOENT") {
        throw new Error("redis-server is not on PATH; install it (Debian/Ubuntu: apt-get install redis-server)");
      }
      if (output.includes("Address already in use")) throw new PortTaken(output);
      throw new Error(`redis-server on port ${port} did not start${gone ? ` (exit ${gone.code})` : ""}:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }

  return {
    port,
    async stop() {
      process.off("exit", killOnExit);
      if (gone) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Spawns `redis-server` (no persistence, loopback only) on a free port and waits until it answers PING. */
export async function startRedis(): Promise<RedisServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await launchRedis(await freePort());
    } catch (e) {
      // freePort() can race with another process grabbing the port.
      if (!(e instanceof PortTaken) || attempt >= 3) throw e;
    }
  }
}

/** Whether `redis-server` is on the PATH (the benchmark's Redis figures are skipped without it). */
export function haveRedis(): boolean {
  return spawnSync("sh", ["-c", "command -v redis-server"]).status === 0;
}

/** A plain connection for scripts (the benchmark's Redis figures): replies as strings, numbers and arrays. */
export async function openRedis(port: number): Promise<{ command(args: (string | number)[]): Promise<unknown>; close(): void }> {
  const conn = await RespConnection.open(port);
  const plain = (r: Reply): unknown => {
    if (r instanceof ReplyError) throw new Error(r.message);
    if (isBytes(r)) return r.toString("utf8");
    if (isList(r)) return r.map(plain);
    return typeof r === "bigint" ? Number(r) : r;
  };
  return {
    async command(args) {
      const [reply] = await conn.send([args.map((a) => Buffer.from(String(a)))]);
      return plain(reply!);
    },
    close: () => conn.close(),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The REST protocol

// Real Upstash accepts this Lua shebang flag (@upstash/ratelimit ≥ 2.2 sets it on every script); stock Redis rejects
// it ("Unexpected flag in script shebang"). The gateway strips it and maps the client's SHA1 of the original text to
// the SHA1 Redis knows, so EVALSHA hits as it would on Upstash.
const UPSTASH_ONLY_SCRIPT_FLAGS = new Set(["allow-key-locking"]);

function stripUpstashFlags(script: string): string | undefined {
  const match = /^#!lua[^\n]*/.exec(script);
  if (!match) return undefined;
  let changed = false;
  const parts = match[0]
    .split(" ")
    .filter((p) => p !== "")
    .map((part) => {
      if (!part.startsWith("flags=")) return part;
      const flags = part.slice("flags=".length).split(",");
      const kept = flags.filter((f) => !UPSTASH_ONLY_SCRIPT_FLAGS.has(f));
      if (kept.length === flags.length) return part;
      changed = true;
      return kept.length > 0 ? `flags=${kept.join(",")}` : "";
    })
    .filter((p) => p !== "");
  return changed ? parts.join(" ") + script.slice(match[0].length) : undefined;
}

const sha1 = (text: string) => createHash("sha1").update(text).digest("hex");

// These would change the state of a shared pooled connection or break the reply stream; SRH does not support them either.
const UNSUPPORTED = new Set([
  "subscribe",
  "psubscribe",
  "ssubscribe",
  "unsubscribe",
  "punsubscribe",
  "sunsubscribe",
  "monitor",
  "hello",
  "quit",
  "reset",
  "select",
  "multi",
  "exec",
  "discard",
  "watch",
  "unwatch",
]);

type Arg = string | number | boolean;

interface Prepared {
  args: Buffer[];
  fix?: (reply: Reply) => Reply;
}

class BadRequest extends Error {}

function isArgs(value: unknown): value is Arg[] {
  return Array.isArray(value) && value.every((v) => typeof v === "string" || typeof v === "number" || typeof v === "boolean");
}

function resultJson(reply: Reply, base64: boolean): string {
  if (reply === null) return "null";
  if (typeof reply === "bigint") return reply.toString();
  if (isBytes(reply)) return JSON.stringify(base64 ? reply.toString("base64") : reply.toString("utf8"));
  if (reply instanceof ReplyError) return resultJson(Buffer.from(reply.message), base64);
  return `[${reply.map((r) => resultJson(r, base64)).join(",")}]`;
}

function itemJson(reply: Reply, base64: boolean): string {
  return reply instanceof ReplyError ? JSON.stringify({ error: reply.message }) : `{"result":${resultJson(reply, base64)}}`;
}

const json = (value: unknown) => JSON.stringify(value);

/** Starts the HTTP gateway on 127.0.0.1 (`opts.port` or a free port) in front of the Redis at `opts.redisPort`. */
export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const pool = new RedisPool(opts.redisPort, 8);
  const expectedAuth = Buffer.from(`Bearer ${opts.token}`);
  const scriptShas = new Map<string, string>(); // SHA1 the client computed → SHA1 of the text Redis got
  let stallMs = 0;
  const stalls = new Set<{ timer: ReturnType<typeof setTimeout>; resolve(): void }>();

  let statsConn: RespConnection | undefined;
  let infoCalls = 0;
  async function commands(): Promise<number> {
    if (!statsConn || statsConn.closed) statsConn = await RespConnection.open(opts.redisPort);
    const [reply] = await statsConn.send([[Buffer.from("INFO"), Buffer.from("stats")]]);
    const match = isBytes(reply) ? /total_commands_processed:(\d+)/.exec(reply.toString()) : null;
    if (!match?.[1]) throw new Error("INFO stats did not report total_commands_processed");
    // Redis counts an INFO after answering it; leave our own INFOs out so callers' deltas are the traffic alone.
    return Number(match[1]) - infoCalls++;
  }

  function rewriteScript(script: string): string {
    const stripped = stripUpstashFlags(script);
    if (stripped === undefined) return script;
    scriptShas.set(sha1(script), sha1(stripped));
    return stripped;
  }

  function prepare(command: Arg[]): Prepared {
    if (command.length === 0) throw new BadRequest("ERR empty command");
    const args = command.map((a) => String(a));
    const name = args[0]!.toLowerCase();
    const sub = args[1]?.toLowerCase();
    if (UNSUPPORTED.has(name) || (name === "client" && (sub === "reply" || sub === "tracking"))) {
      throw new BadRequest(`ERR command '${args.slice(0, name === "client" ? 2 : 1).join(" ")}' is not supported by this gateway`);
    }
    let fix: Prepared["fix"];
    if ((name === "eval" || name === "eval_ro") && args[1] !== undefined) {
      args[1] = rewriteScript(args[1]);
    } else if ((name === "evalsha" || name === "evalsha_ro") && args[1] !== undefined) {
      args[1] = scriptShas.get(args[1].toLowerCase()) ?? args[1];
    } else if (name === "script" && sub === "load" && args[2] !== undefined) {
      const original = args[2];
      args[2] = rewriteScript(original);
      if (args[2] !== original) {
        const originalSha = Buffer.from(sha1(original));
        fix = (reply) => (reply instanceof ReplyError ? reply : originalSha);
      }
    } else if (name === "script" && sub === "exists") {
      for (let i = 2; i < args.length; i++) args[i] = scriptShas.get(args[i]!.toLowerCase()) ?? args[i]!;
    }
    return { args: args.map((a) => Buffer.from(a, "utf8")), fix };
  }

  const applyFix = (p: Prepared, reply: Reply) => (p.fix ? p.fix(reply) : reply);

  async function single(body: unknown, base64: boolean): Promise<[number, string]> {
    if (!isArgs(body)) throw new BadRequest("ERR expected a JSON array of command arguments");
    const prepared = prepare(body);
    const [reply = null] = await (await pool.acquire()).send([prepared.args]);
    if (reply instanceof ReplyError) return [400, json({ error: reply.message })];
    return [200, `{"result":${resultJson(applyFix(prepared, reply), base64)}}`];
  }

  async function pipeline(body: unknown, base64: boolean): Promise<[number, string]> {
    if (!Array.isArray(body) || !body.every(isArgs)) throw new BadRequest("ERR expected a JSON array of commands");
    const prepared = body.map((command): Prepared | ReplyError => {
      try {
        return prepare(command);
      } catch (e) {
        if (e instanceof BadRequest) return new ReplyError(e.message);
        throw e;
      }
    });
    const toSend = prepared.filter((p): p is Prepared => !(p instanceof ReplyError));
    const replies = toSend.length > 0 ? await (await pool.acquire()).send(toSend.map((p) => p.args)) : [];
    let i = 0;
    const items = prepared.map((p) => (p instanceof ReplyError ? p : applyFix(p, replies[i++] ?? null)));
    return [200, `[${items.map((r) => itemJson(r, base64)).join(",")}]`];
  }

  async function multiExec(body: unknown, base64: boolean): Promise<[number, string]> {
    if (!Array.isArray(body) || !body.every(isArgs)) throw new BadRequest("ERR expected a JSON array of commands");
    const prepared = body.map(prepare);
    const replies = await (await pool.acquire()).send([[Buffer.from("MULTI")], ...prepared.map((p) => p.args), [Buffer.from("EXEC")]]);
    const exec = replies[replies.length - 1] ?? null;
    if (exec instanceof ReplyError) return [400, json({ error: exec.message })];
    if (!isList(exec)) return [400, json({ error: "EXECABORT transaction aborted" })];
    return [200, `[${exec.map((r, i) => itemJson(prepared[i] ? applyFix(prepared[i], r) : r, base64)).join(",")}]`];
  }

  function authorized(req: IncomingMessage): boolean {
    const given = Buffer.from(req.headers.authorization ?? "");
    return given.length === expectedAuth.length && timingSafeEqual(given, expectedAuth);
  }

  function readBody(req: IncomingMessage): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      req.on("error", reject);
    });
  }

  function stall(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          stalls.delete(entry);
          resolve();
        }, ms),
        resolve,
      };
      stalls.add(entry);
    });
  }

  async function respond(res: ServerResponse, status: number, body: string, delayMs = 0): Promise<void> {
    if (delayMs > 0) await stall(delayMs);
    if (res.destroyed || res.headersSent) return;
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const delay = stallMs; // as set when the request arrived
    const path = new URL(req.url ?? "/", "http://gateway").pathname.replace(/\/+$/, "") || "/";
    const body = await readBody(req);
    // Read-only and used for counting from workerd; the token is accepted but not required.
    if (req.method === "GET" && path === "/__control/commands") {
      return respond(res, 200, json({ commands: await commands() }));
    }
    if (!authorized(req)) return respond(res, 401, json({ error: "Unauthorized" }), delay);
    if (req.method !== "POST") return respond(res, 405, json({ error: "ERR method not allowed" }), delay);
    let parsed: unknown;
    try {
      parsed = body === "" ? undefined : JSON.parse(body);
    } catch {
      return respond(res, 400, json({ error: "ERR invalid JSON body" }), delay);
    }
    if (path === "/__control") {
      const ms = (parsed as { stallMs?: unknown } | undefined)?.stallMs;
      if (typeof ms !== "number" || !(ms >= 0)) return respond(res, 400, json({ error: 'expected {"stallMs": n}' }));
      stallMs = ms;
      return respond(res, 200, json({ stallMs }));
    }
    const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";
    const route = path === "/" ? single : path === "/pipeline" ? pipeline : path === "/multi-exec" ? multiExec : undefined;
    if (!route) return respond(res, 404, json({ error: `ERR endpoint ${path} is not supported by this gateway` }), delay);
    let status: number;
    let out: string;
    try {
      [status, out] = await route(parsed, base64);
    } catch (e) {
      [status, out] = e instanceof BadRequest ? [400, json({ error: e.message })] : [500, json({ error: `ERR gateway: ${String(e)}` })];
    }
    return respond(res, status, out, delay);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(json({ error: `ERR gateway: ${String(e)}` }));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;

  return {
    url: `http://127.0.0.1:${port}`,
    setStall(ms: number) {
      stallMs = Math.max(0, ms);
    },
    commands,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of stalls) {
        clearTimeout(s.timer);
        s.resolve();
      }
      stalls.clear();
      server.closeAllConnections();
      await closed;
      pool.close();
      statsConn?.close();
    },
  };
}
