/** A real Redis server for the benchmark (Debian's redis-server), spoken to over RESP on a socket. */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { connect, type Socket } from "node:net";

export interface RedisServer {
  port: number;
  command(args: (string | number)[]): Promise<unknown>;
  pipeline(commands: (string | number)[][]): Promise<void>;
  stop(): void;
}

function encode(args: (string | number)[]): string {
  return `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join("");
}

export function haveRedis(): boolean {
  return spawnSync("sh", ["-c", "command -v redis-server"]).status === 0;
}

export async function startRedis(port: number): Promise<RedisServer> {
  const child: ChildProcess = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  let socket: Socket | undefined;
  for (let i = 0; i < 50 && !socket; i++) {
    await new Promise((r) => setTimeout(r, 100));
    socket = await new Promise<Socket | undefined>((resolve) => {
      const s = connect(port, "127.0.0.1", () => resolve(s));
      s.on("error", () => resolve(undefined));
    });
  }
  if (!socket) throw new Error("redis-server did not start");
  let buffer = "";
  const waiting: ((reply: string) => void)[] = [];
  socket.setEncoding("utf8");
  socket.on("data", (d) => {
    buffer += d;
    // Replies used here are single lines (+OK, :n) or one bulk string; split them off in order.
    for (;;) {
      const line = buffer.indexOf("\r\n");
      if (line === -1 || waiting.length === 0) break;
      if (buffer[0] === "$") {
        const len = Number(buffer.slice(1, line));
        const end = len < 0 ? line + 2 : line + 2 + len + 2;
        if (buffer.length < end) break;
        waiting.shift()!(buffer.slice(0, end));
        buffer = buffer.slice(end);
      } else {
        waiting.shift()!(buffer.slice(0, line));
        buffer = buffer.slice(line + 2);
      }
    }
  });
  const send = (args: (string | number)[]) =>
    new Promise<string>((resolve) => {
      waiting.push(resolve);
      socket!.write(encode(args));
    });
  return {
    port,
    async command(args) {
      const reply = await send(args);
      if (reply.startsWith(":")) return Number(reply.slice(1));
      if (reply.startsWith("-")) throw new Error(reply);
      return reply;
    },
    async pipeline(commands) {
      const replies = commands.map((c) => send(c));
      await Promise.all(replies);
    },
    stop() {
      socket!.destroy();
      child.kill("SIGTERM");
    },
  };
}
