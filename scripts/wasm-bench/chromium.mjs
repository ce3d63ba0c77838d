// The page's CPU engine (dist/, wasm SIMD, one thread) against onnxruntime-web's wasm backend
// (SIMD, one thread) on the same ONNX model, both inside headless Chromium (Debian's, driven
// by playwright-core from tests/browser), timed in the page. One JSON line per measurement.
//
//   node scripts/wasm-bench/chromium.mjs ONNX_DIR [--sizes 480x360,640x360] [--frames 20]
//
// Needs `trunk build --release` (dist/), `npm ci` here and in tests/browser.
import { createServer } from "node:http";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const { chromium } = await import(pathToFileURL(join(root, "tests/browser/node_modules/playwright-core/index.mjs")).href);
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const dir = args[0];
if (!dir || dir.startsWith("--")) {
  console.error("usage: chromium.mjs ONNX_DIR [--sizes 480x360,640x360] [--frames 20]");
  process.exit(2);
}
const sizes = opt("--sizes", "480x360,640x360").split(",").map((s) => s.split("x").map(Number));
const frames = Number(opt("--frames", "20"));

// What the page may fetch: the engine's build, onnxruntime-web's files, the ONNX models.
const roots = { "/dist/": join(root, "dist"), "/ort/": join(here, "node_modules/onnxruntime-web/dist"), "/onnx/": resolve(dir) };
const MIME = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm" };
const page = `<!doctype html><meta charset="utf-8"><title>wasm bench</title><script type="module">
import init, { CpuApp } from "/dist/enet-wgpu.js";
import * as ort from "/ort/ort.wasm.min.mjs";
const median = (v) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)];
async function time(run, frames) {
  for (let i = 0; i < 3; i++) await run();
  const t = [];
  for (let i = 0; i < frames; i++) { const s = performance.now(); await run(); t.push(performance.now() - s); }
  return median(t);
}
window.bench = async (sizes, frames) => {
  await init({ module_or_path: "/dist/enet-wgpu_bg.wasm" });
  const weights = new Uint8Array(await (await fetch("/dist/assets/enet-camvid.safetensors")).arrayBuffer());
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = "/ort/";
  const out = [];
  for (const [w, h] of sizes) {
    const app = new CpuApp(weights);
    app.set_size(Math.min(w, h));
    const rgba = new Uint8Array(w * h * 4).map((_, i) => (i * 31) % 251);
    // As the page's worker runs a frame: the pixels copied in, the classes out.
    const engine = await time(() => {
      app.frame_input(rgba.length).set(rgba);
      return app.segment(w, h, 0, false);
    }, frames);
    const [nw, nh] = app.net_size();
    if (nw !== w || nh !== h) throw new Error("the engine ran at " + nw + "x" + nh);
    out.push({ peer: "enet-wasm", describe: app.describe(), what: "frame in to classes out", size: w + "x" + h, threads: 1, ms_per_frame: engine, frames });
    app.free();
    const model = new Uint8Array(await (await fetch("/onnx/enet-" + w + "x" + h + ".onnx")).arrayBuffer());
    const input = new Float32Array(await (await fetch("/onnx/enet-" + w + "x" + h + ".input.bin")).arrayBuffer());
    const session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
    const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", input, [1, 3, h, w]) };
    const peer = await time(() => session.run(feeds), frames);
    out.push({ peer: "onnxruntime-web", version: ort.env.versions.web, what: "network on a prepared tensor", size: w + "x" + h, threads: 1, ms_per_frame: peer, frames });
    await session.release();
  }
  return out;
};
</script>`;
const server = createServer((req, res) => {
  const url = decodeURIComponent(new URL(req.url, "http://x").pathname);
  if (url === "/") return res.writeHead(200, { "content-type": "text/html" }), res.end(page);
  const prefix = Object.keys(roots).find((p) => url.startsWith(p));
  const path = prefix && join(roots[prefix], url.slice(prefix.length));
  if (!path || !path.startsWith(roots[prefix]) || !existsSync(path) || !statSync(path).isFile()) return res.writeHead(404), res.end();
  res.writeHead(200, { "content-type": MIME[extname(path)] || "application/octet-stream" });
  res.end(readFileSync(path));
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
});
try {
  const tab = await browser.newPage();
  tab.on("console", (m) => console.error(`page: ${m.text()}`));
  await tab.goto(`http://127.0.0.1:${server.address().port}/`);
  await tab.waitForFunction(() => typeof window.bench === "function");
  const version = await tab.evaluate(() => navigator.userAgent.match(/Chrome\/[\d.]+/)?.[0]);
  console.error(`headless ${version}`);
  const rows = await tab.evaluate(([s, f]) => window.bench(s, f), [sizes, frames]);
  for (const r of rows) console.log(JSON.stringify({ ...r, browser: version }));
} finally {
  await browser.close();
  server.close();
}
