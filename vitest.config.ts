import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

const root = import.meta.dirname;
const taskConfigs = readdirSync(join(root, "task-configs"))
  .filter((f) => /\.ya?ml$/.test(f))
  .map((f) => ({ name: `task-configs/${f}`, source: readFileSync(join(root, "task-configs", f), "utf8") }));

/** The worker under test, with the test bindings; `extra` switches backends (e.g. Upstash for rate limits). */
const worker = (extra: (inject: <K extends "upstashUrl" | "upstashToken">(key: K) => string) => Record<string, string> = () => ({})) =>
  cloudflareTest(async ({ inject }) => ({
    wrangler: { configPath: "./wrangler.toml" },
    miniflare: {
      bindings: {
        JWT_SECRET: "test-secret-0123456789abcdef",
        ADMIN_TOKEN: "test-operator-token",
        CONFIG_REFRESH_MS: "0",
        SALE_STATUS_CACHE_MS: "0",
        // A route's own limit (high enough never to refuse the other suites): the rate-limit suite checks it counts.
        ROUTE_RATE_LIMITS: JSON.stringify({ "flash-sale.status": { requests: 100000, windowSeconds: 60, by: "global" } }),
        ALLOW_CLOCK_OVERRIDE: "true",
        TEST_MIGRATIONS: await readD1Migrations(join(root, "migrations")),
        TEST_TASK_CONFIGS: taskConfigs,
        TEST_PARTNER_URL: `http://127.0.0.1:${inject("partnerPort")}`,
        // The test partner's Standard Webhooks secret: outbound calls are signed, and the tests verify them.
        WEBHOOK_SECRETS: JSON.stringify({ [`http://127.0.0.1:${inject("partnerPort")}`]: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }),
        ...extra(inject),
      },
    },
  }));

const shared = {
  setupFiles: ["./test/setup.ts"],
  testTimeout: 30_000,
  // Components log JSON lines (the `log` command); show them only for failing tests.
  silent: "passed-only" as const,
};

export default defineConfig({
  test: {
    // A real HTTP partner (coupon center, JWKS), and a real redis-server behind an Upstash REST gateway.
    globalSetup: ["./test/partner-server.ts", "./test/upstash-setup.ts"],
    projects: [
      {
        plugins: [worker()],
        test: { name: "worker", include: ["test/**/*.test.ts", "src/**/*.test.ts"], ...shared },
      },
      {
        // The rate-limit suite again, with @upstash/ratelimit against Redis instead of the Durable Object limiter.
        plugins: [
          worker((inject) => ({ UPSTASH_REDIS_REST_URL: inject("upstashUrl"), UPSTASH_REDIS_REST_TOKEN: inject("upstashToken"), UPSTASH_TIMEOUT_MS: "300" })),
        ],
        test: { name: "upstash", include: ["test/rate-limit/**/*.test.ts"], ...shared },
      },
    ],
  },
});
