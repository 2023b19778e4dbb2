// The digest of the console's sources that the build records in its manifest, and that
// app/console/assets.py recomputes to tell a stale build from a current one: every file under
// src/, the lock file and the two build scripts, in path order, each as "path NUL bytes NUL".
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const here = new URL(".", import.meta.url).pathname;

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

export function digest() {
  const hash = createHash("sha256");
  const inputs = [...files(join(here, "src")), ...["package-lock.json", "build.mjs", "digest.mjs"].map((f) => join(here, f))];
  for (const path of inputs.map((p) => relative(here, p)).sort()) {
    hash.update(path + "\0");
    hash.update(readFileSync(join(here, path)));
    hash.update("\0");
  }
  return hash.digest("hex");
}
