// Builds the console into ../app/console/static: one minified ES module (Preact, uPlot, the YAML
// parser and the JSON Schema validator bundled with the pages), one stylesheet, uPlot's own
// IIFE build for the self-contained HTML report, and a manifest naming the sources' digest so
// the test suite can tell a stale build from a current one without npm.
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import { digest } from "./digest.mjs";

const here = new URL(".", import.meta.url).pathname;
const out = join(here, "..", "app", "console", "static");
mkdirSync(out, { recursive: true });

// Chunks split off (the plan editor with its YAML parser and schema validator) are named by
// their content; the previous build's are removed first.
for (const name of readdirSync(out)) if (name.startsWith("chunk-")) rmSync(join(out, name));
await build({
  entryPoints: { console: join(here, "src", "main.jsx") },
  bundle: true,
  splitting: true,
  outdir: out,
  entryNames: "[name]",
  chunkNames: "chunk-[hash]",
  minify: true,
  format: "esm",
  target: ["chrome110", "firefox110", "safari16"],
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "eof",
  logLevel: "warning",
});
// The boot script, inlined in the HTML (app/console/router.py hashes it for the CSP): a
// classic script, so it runs while the page is parsed, before the module has arrived.
await build({
  entryPoints: [join(here, "src", "boot.js")],
  bundle: true,
  outfile: join(out, "boot.js"),
  minify: true,
  format: "iife",
  target: ["chrome110", "firefox110", "safari16"],
  legalComments: "none",
  logLevel: "warning",
});
const css = [
  readFileSync(join(here, "node_modules", "uplot", "dist", "uPlot.min.css"), "utf8"),
  readFileSync(join(here, "src", "console.css"), "utf8"),
].join("\n");
writeFileSync(join(out, "console.css"), css);
// uPlot as it ships, for pages other than the console (the HTML report inlines it): in core,
// which every feature may read, so the report does not reach into the console's package.
const vendor = join(here, "..", "app", "core", "vendor");
mkdirSync(vendor, { recursive: true });
copyFileSync(join(here, "node_modules", "uplot", "dist", "uPlot.iife.min.js"), join(vendor, "uplot.iife.min.js"));
copyFileSync(join(here, "node_modules", "uplot", "dist", "uPlot.min.css"), join(vendor, "uplot.min.css"));
copyFileSync(join(here, "node_modules", "uplot", "LICENSE"), join(vendor, "uplot.LICENSE"));
const pkg = JSON.parse(readFileSync(join(here, "package-lock.json"), "utf8"));
const versions = Object.fromEntries(
  Object.entries(pkg.packages)
    .filter(([path]) => path.startsWith("node_modules/") && !path.includes("@esbuild"))
    .map(([path, info]) => [path.slice("node_modules/".length), info.version]),
);
writeFileSync(
  join(out, "manifest.json"),
  JSON.stringify({ sources_sha256: digest(), packages: versions }, null, 2) + "\n",
);
