// The page's CPU engine (the same wasm the page loads, wasm SIMD, one thread) against
// onnxruntime-web's wasm backend (SIMD, one thread) on the same model and input, in Node's
// V8 (the engine of Chromium). One JSON line per measurement; progress on stderr.
//
//   node scripts/wasm-bench/bench.mjs ONNX_DIR [--sizes 480x360,640x360] [--frames 20]
//
// ONNX_DIR holds enet-WxH.onnx and enet-WxH.input.bin from scripts/onnx_export.py; the
// engine's wasm comes from dist/ (trunk build --release).
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-web";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const dir = args[0];
if (!dir || dir.startsWith("--")) {
  console.error("usage: bench.mjs ONNX_DIR [--sizes 480x360,640x360] [--frames 20]");
  process.exit(2);
}
const sizes = opt("--sizes", "480x360,640x360").split(",").map((s) => s.split("x").map(Number));
const frames = Number(opt("--frames", "20"));
const warmup = 3;

const median = (v) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)];
async function time(run) {
  for (let i = 0; i < warmup; i++) await run();
  const t = [];
  for (let i = 0; i < frames; i++) {
    const s = performance.now();
    await run();
    t.push(performance.now() - s);
  }
  return median(t);
}

const version = readFileSync(join(root, "Cargo.toml"), "utf8").match(/^version = "(.*)"/m)[1];
const glue = await import(join(root, "dist", "enet-wgpu.js"));
await glue.default({ module_or_path: readFileSync(join(root, "dist", "enet-wgpu_bg.wasm")) });
const weights = readFileSync(join(root, "assets", "enet-camvid.safetensors"));
ort.env.wasm.numThreads = 1;

for (const [w, h] of sizes) {
  // The engine takes the frame as RGBA (it does its own resize and normalisation) and gives
  // classes: more work than the network alone, which is all onnxruntime-web runs.
  const app = new glue.CpuApp(weights);
  app.set_size(Math.min(w, h));
  const rgba = new Uint8Array(w * h * 4).map((_, i) => (i * 31) % 251);
  console.error(`engine ${w}x${h}: ${app.describe()}`);
  const engineMs = await time(() => app.segment(rgba, w, h, 0, performance.now()));
  const [nw, nh] = app.net_size();
  if (nw !== w || nh !== h) throw new Error(`the engine ran at ${nw}x${nh}, not ${w}x${h}`);
  app.free();
  console.log(JSON.stringify({ peer: "enet-wasm", version, what: "frame in to classes out", size: `${w}x${h}`, threads: 1, ms_per_frame: engineMs, frames }));

  const model = readFileSync(join(dir, `enet-${w}x${h}.onnx`));
  const input = new Float32Array(readFileSync(join(dir, `enet-${w}x${h}.input.bin`)).buffer.slice(0));
  const session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", input, [1, 3, h, w]) };
  console.error(`onnxruntime-web ${w}x${h}`);
  const ortMs = await time(() => session.run(feeds));
  await session.release();
  console.log(JSON.stringify({ peer: "onnxruntime-web", version: ort.env.versions.web, what: "network on a prepared tensor", size: `${w}x${h}`, threads: 1, ms_per_frame: ortMs, frames }));
}
