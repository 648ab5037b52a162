/**
 * A real `redis-server` behind an Upstash-REST-compatible gateway (scripts/upstash-gateway.ts), running in Node beside
 * workerd. Provides `upstashUrl`, `upstashToken` and `redisPort`. Tests in workerd control the gateway over HTTP with
 * the same Bearer token: `POST {upstashUrl}/__control` with `{"stallMs": n}` delays every following response by n ms
 * (0 turns it off); `GET {upstashUrl}/__control/commands` returns `{"commands": n}`, Redis's total_commands_processed
 * (compare two readings).
 */
import { randomBytes } from "node:crypto";
import type { TestProject } from "vitest/node";
import { startGateway, startRedis } from "../scripts/upstash-gateway";

export default async function setup(project: TestProject) {
  const redis = await startRedis();
  const token = randomBytes(24).toString("hex");
  const gateway = await startGateway({ redisPort: redis.port, token }).catch(async (e: unknown) => {
    await redis.stop();
    throw e;
  });
  project.provide("upstashUrl", gateway.url);
  project.provide("upstashToken", token);
  project.provide("redisPort", redis.port);
  return async () => {
    await gateway.stop();
    await redis.stop();
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    upstashUrl: string;
    upstashToken: string;
    redisPort: number;
  }
}
