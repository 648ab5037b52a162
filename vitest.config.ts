import { spawnSync } from "node:child_process";
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
        ROUTE_RATE_LIMITS: JSON.stringify({
          "flash-sale.status": { requests: 100000, windowSeconds: 60, by: "global" },
          // The preview suite's users preview at most 5 times each; one user's sixth shows the limit.
          preview: { requests: 5, windowSeconds: 60, by: "user" },
        }),
        ALLOW_CLOCK_OVERRIDE: "true",
        // Crash tests make runs fail between their steps (X-Fanfare-Fault), and wait for reservations to come back.
        ALLOW_FAULT_INJECTION: "true",
        RESERVATION_HOLD_MS: "5000",
        TEST_MIGRATIONS: await readD1Migrations(join(root, "migrations")),
        TEST_TASK_CONFIGS: taskConfigs,
        TEST_PARTNER_URL: `http://127.0.0.1:${inject("partnerPort")}`,
        // Operator alerts (a partner's reused webhook-id) go to the test partner server, signed like every call.
        OPERATOR_ALERT_URL: `http://127.0.0.1:${inject("partnerPort")}/alerts/operator`,
        // The test partner's Standard Webhooks secret: outbound calls are signed, and the tests verify them.
        WEBHOOK_SECRETS: JSON.stringify({ [`http://127.0.0.1:${inject("partnerPort")}`]: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }),
        // Partners' signing secrets are encrypted with a key derived from this (32 bytes, base64).
        PARTNER_SECRETS_KEY: "dGVzdC1wYXJ0bmVyLXNlY3JldHMta2V5LTAxMjM0NTY3ODk=",
        // The test risk engine (a block of the partner server), signed with the partner origin's secret above.
        RISK_ENGINE_URL: `http://127.0.0.1:${inject("partnerPort")}/risk-engine`,
        // Activity codes are signed with this; Turnstile tokens are checked by the local verifier (test/turnstile-server.ts).
        ACTIVITY_CODE_SECRET: "test-activity-code-secret-0123456789abcdef",
        TURNSTILE_VERIFY_URL: `http://127.0.0.1:${inject("turnstilePort")}/siteverify`,
        TURNSTILE_SECRET: inject("turnstileSecret"),
        TURNSTILE_TIMEOUT_MS: "1000",
        ...extra(inject),
      },
    },
  }));

// The Upstash project needs a real redis-server. A fresh machine without one still runs everything else, and says how to
// get the rest; CI must run the whole suite, so there the project stays and its setup fails on the missing server.
// (Asked here with node:child_process alone: vite's config loader wants no relative imports.)
const redisFound = spawnSync("redis-server", ["--version"]).status === 0;
const upstash = redisFound || process.env.CI === "true";
// Vitest evaluates this file for the run and again for each project, all in one process: the notice goes out once.
const noticed = globalThis as { fanfareUpstashNotice?: true };
if (!upstash && !noticed.fanfareUpstashNotice) {
  noticed.fanfareUpstashNotice = true;
  console.warn("upstash suite skipped: redis-server not found; apt-get install redis-server to run it");
}

const shared = {
  setupFiles: ["./test/setup.ts"],
  testTimeout: 30_000,
  // Components log JSON lines (the `log` command); show them only for failing tests.
  silent: "passed-only" as const,
};

export default defineConfig({
  test: {
    // A real HTTP partner (coupon center, JWKS) and a local Turnstile siteverify for every project.
    globalSetup: ["./test/partner-server.ts", "./test/turnstile-server.ts"],
    projects: [
      {
        plugins: [worker()],
        test: { name: "worker", include: ["test/**/*.test.ts", "src/**/*.test.ts"], ...shared },
      },
      ...(upstash
        ? [
            {
              // The rate-limit suite again, with @upstash/ratelimit against a real redis-server behind an Upstash REST
              // gateway instead of the Durable Object limiter. Its own setup, so the other project never needs Redis.
              plugins: [
                worker((inject) => ({
                  UPSTASH_REDIS_REST_URL: inject("upstashUrl"),
                  UPSTASH_REDIS_REST_TOKEN: inject("upstashToken"),
                  UPSTASH_TIMEOUT_MS: "300",
                })),
              ],
              test: { name: "upstash", include: ["test/rate-limit/**/*.test.ts"], globalSetup: ["./test/upstash-setup.ts"], ...shared },
            },
          ]
        : []),
    ],
  },
});
