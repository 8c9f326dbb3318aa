// Builds the dashboard that the fan-out embeds (go:embed) into ../dashboard/
// (or the directory given with --out DIR):
//
//   index.html                   references the hashed assets; served no-cache
//   assets/app.<hash>.js         src/main.js bundled with uPlot by esbuild, minified
//   assets/app.<hash>.css        src/style.css and uPlot's stylesheet
//   assets/favicon.<hash>.svg
//   *.gz                         gzip -9 of each of them, served to clients that accept it
//
// <hash> is the first 12 hex digits of the SHA-256 of the file, so a
// changed file gets a new name and hashed assets can be cached forever.
// The output depends only on the sources and the locked package versions:
// a Go test rebuilds into a temporary directory and compares.
import * as esbuild from "esbuild";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const outIdx = args.indexOf("--out");
const out = path.resolve(outIdx >= 0 ? args[outIdx + 1] : path.join(here, "..", "dashboard"));

const uplotPkg = JSON.parse(fs.readFileSync(path.join(here, "node_modules", "uplot", "package.json"), "utf8"));

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: ["src/main.js"],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["chrome109", "firefox115", "safari16"],
  outdir: "out",
  write: false,
  charset: "utf8",
  legalComments: "none",
  sourcemap: false,
  logLevel: "warning",
  banner: {
    js: `/*! Playpulse dashboard. Includes uPlot ${uplotPkg.version} (c) Leon Sorokin, MIT License, https://github.com/leeoniya/uPlot */`,
    css: `/*! Playpulse dashboard. Includes uPlot ${uplotPkg.version} styles (c) Leon Sorokin, MIT License */`,
  },
});

function hashed(base, ext, bytes) {
  const h = createHash("sha256").update(bytes).digest("hex").slice(0, 12);
  return `assets/${base}.${h}.${ext}`;
}

const files = new Map(); // relative path → Buffer
const refs = {};
for (const f of result.outputFiles) {
  const ext = path.extname(f.path).slice(1);
  const bytes = Buffer.from(f.contents);
  const name = hashed("app", ext, bytes);
  files.set(name, bytes);
  refs["app." + ext] = name;
}
const favicon = fs.readFileSync(path.join(here, "src", "favicon.svg"));
refs["favicon.svg"] = hashed("favicon", "svg", favicon);
files.set(refs["favicon.svg"], favicon);

let html = fs.readFileSync(path.join(here, "src", "index.html"), "utf8");
html = html.replace(/\{\{([a-z.]+)\}\}/g, (m, key) => {
  if (!refs[key]) throw new Error(`index.html references unknown asset ${m}`);
  return refs[key];
});
files.set("index.html", Buffer.from(html, "utf8"));

// Pre-compress: the fan-out serves the .gz to clients that accept gzip.
for (const [name, bytes] of [...files]) {
  const gz = gzipSync(bytes, { level: 9 });
  if (gz.length < bytes.length) files.set(name + ".gz", gz);
}

// The output directory is generated: replace what is there.
if (fs.existsSync(out)) {
  const entries = fs.readdirSync(out);
  if (entries.length && !entries.includes("index.html")) {
    throw new Error(`refusing to clean ${out}: it does not look like a dashboard build (no index.html)`);
  }
  for (const e of entries) fs.rmSync(path.join(out, e), { recursive: true, force: true });
}
for (const [name, bytes] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) {
  const p = path.join(out, name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, bytes);
}

const rows = [...files].filter(([n]) => !n.endsWith(".gz")).map(([n, b]) => {
  const gz = files.get(n + ".gz");
  return `  ${n.padEnd(34)} ${String(b.length).padStart(7)} B` + (gz ? `  gzip ${String(gz.length).padStart(6)} B` : "");
});
console.log(`dashboard: wrote ${path.relative(process.cwd(), out) || "."}\n${rows.join("\n")}`);
