// `npm run dev`: local D1 migrated, task-configs pushed, then `wrangler dev` (local D1, Durable Objects, Queues).
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const env = { ...process.env, WRANGLER_SEND_METRICS: "false" };

function step(title, cmd, args) {
  console.log(`\n> ${title}`);
  const res = spawnSync(cmd, args, { cwd: root, stdio: "inherit", env: { ...env, CI: "true" } });
  if (res.status !== 0) process.exit(res.status ?? 1);
}

if (!existsSync(join(root, ".dev.vars"))) {
  copyFileSync(join(root, ".dev.vars.example"), join(root, ".dev.vars"));
  console.log("created .dev.vars from .dev.vars.example");
}
step("applying D1 migrations (local)", bin("wrangler"), ["d1", "migrations", "apply", "DB", "--local"]);
step("pushing task-configs/ (local)", bin("tsx"), ["scripts/tasks.ts", "push", "--local", "--note", "npm run dev"]);
console.log("\n> starting the worker: mint a token with `npm run token -- alice`, see README.md\n");
const dev = spawn(bin("wrangler"), ["dev", ...process.argv.slice(2)], { cwd: root, stdio: "inherit", env });
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => dev.kill(sig));
dev.on("exit", (code) => process.exit(code ?? 0));
