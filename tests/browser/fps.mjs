// The page's frame rate in headless Chromium (WebGPU on SwiftShader, or the CPU path) with a
// fake webcam: `node fps.mjs [WEIGHTS|builtin] NET_HEIGHT SECONDS [webgpu|cpu]` from
// tests/browser after `trunk build --release` and `cargo build --release --example
// browser_helper`. Prints one JSON line (gpu_ms on the GPU path, cpu_ms on the CPU path).

import { runningCameraPage } from "./harness.mjs";

const [weights = "builtin", height = "240", seconds = "60", backend = "webgpu"] = process.argv.slice(2);
const { page, size, close } = await runningCameraPage(weights === "builtin" ? null : weights, height, 60, backend);
const f0 = await page.evaluate(() => window.enet.frames());
const t0 = Date.now();
await page.waitForTimeout(Number(seconds) * 1000);
const f1 = await page.evaluate(() => window.enet.frames());
const ms = await page.evaluate((b) => (b === "cpu" ? window.enet.app.last_ms() : window.enet.app.gpu_ms()), backend);
const secs = (Date.now() - t0) / 1000;
console.log(JSON.stringify({ size, backend, seconds: secs, frames: f1 - f0, fps: (f1 - f0) / secs, [backend === "cpu" ? "cpu_ms" : "gpu_ms"]: ms }));
await close();
