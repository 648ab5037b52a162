/** Prints a dev token: `npm run token -- <userId> [--groups vip,new] [--ttl seconds]`, signed with JWT_SECRET. */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SignJWT } from "jose";

const args = process.argv.slice(2);
const userId = args.find((a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--"));
const option = (name: string) => {
  const i = args.indexOf(name);
  return i === -1 ? undefined : args[i + 1];
};
if (!userId) {
  console.error("usage: npm run token -- <userId> [--groups vip,new] [--ttl seconds]");
  process.exit(2);
}

function devSecret(): string | undefined {
  if (process.env.JWT_SECRET) return process.env.JWT_SECRET;
  const root = join(import.meta.dirname, "..");
  const file = [".dev.vars", ".dev.vars.example"].map((f) => join(root, f)).find(existsSync);
  return file ? /^JWT_SECRET=(.*)$/m.exec(readFileSync(file, "utf8"))?.[1]?.trim() : undefined;
}

const secret = devSecret();
if (!secret) {
  console.error("JWT_SECRET is not set in the environment or .dev.vars");
  process.exit(1);
}
const groups = option("--groups")?.split(",").filter(Boolean) ?? [];
const ttl = Number(option("--ttl") ?? 3600);
const token = await new SignJWT({ groups })
  .setProtectedHeader({ alg: "HS256" })
  .setSubject(userId)
  .setIssuedAt()
  .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
  .sign(new TextEncoder().encode(secret));
console.log(token);
