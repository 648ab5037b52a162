/** drizzle-kit's view of the D1 database: the schema in src/db/schema.ts, which `npm run db:check` holds to the SQL in migrations/. */
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "sqlite",
  schema: "./src/db/schema.ts",
  out: "./migrations",
});
