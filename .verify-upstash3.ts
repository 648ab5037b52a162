import { execFileSync } from "node:child_process";
import { startRedis } from "./scripts/upstash-gateway";
const list = () => execFileSync("sh", ["-c", "ps -eo pid,args | grep '[r]edis-server' || true"]).toString().trim() || "(none)";
const r = await startRedis();
console.log("running:", list());
await r.stop();
console.log("after stop:", list());
