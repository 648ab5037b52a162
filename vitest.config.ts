import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

const root = import.meta.dirname;
const taskConfigs = readdirSync(join(root, "task-configs"))
  .filter((f) => /\.ya?ml$/.test(f))
  .map((f) => ({ name: `task-configs/${f}`, source: readFileSync(join(root, "task-configs", f), "utf8") }));

export default defineConfig({
  plugins: [
    cloudflareTest(async ({ inject }) => ({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        bindings: {
          JWT_SECRET: "test-secret-0123456789abcdef",
          ADMIN_TOKEN: "test-operator-token",
          CONFIG_REFRESH_MS: "0",
          ALLOW_CLOCK_OVERRIDE: "true",
          TEST_MIGRATIONS: await readD1Migrations(join(root, "migrations")),
          TEST_TASK_CONFIGS: taskConfigs,
          TEST_PARTNER_URL: `http://127.0.0.1:${inject<number>("partnerPort")}`,
        },
      },
    })),
  ],
  test: {
    include: ["test/**/*.test.ts", "src/**/*.test.ts"],
    setupFiles: ["./test/setup.ts"],
    globalSetup: ["./test/partner-server.ts"],
    testTimeout: 30_000,
    // Components log JSON lines (the `log` command); show them only for failing tests.
    silent: "passed-only",
  },
});
