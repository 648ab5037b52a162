/** Test bindings (from vitest.config.ts) on top of the worker's own. */
import type { D1Migration } from "cloudflare:test";
import type { Env as WorkerEnv } from "../src/env";
import type { ConfigFile } from "../src/config/compile";

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {
      TEST_MIGRATIONS: D1Migration[];
      TEST_TASK_CONFIGS: ConfigFile[];
      TEST_PARTNER_URL: string;
    }
    interface GlobalProps {
      mainModule: typeof import("../src/index");
    }
  }
}
