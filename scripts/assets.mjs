// Copies Scalar's standalone bundle into the worker's static assets (public/scalar/), where /docs loads it from:
// the reference page then needs no CDN. Run by wrangler before `dev` and `deploy` (wrangler.toml [build]).
import { copyFileSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const from = join(root, "node_modules", "@scalar", "api-reference", "dist", "browser", "standalone.js");
const to = join(root, "public", "scalar", "standalone.js");

const size = (path) => {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
};
// Unchanged: leave the file alone, so `wrangler dev` (which runs this on every source change) does not reload assets.
if (size(from) !== size(to)) {
  mkdirSync(join(root, "public", "scalar"), { recursive: true });
  copyFileSync(from, to);
  console.log(`copied ${from} to ${to}`);
}
