// The page's frame rate in headless Chromium (WebGPU on SwiftShader, the CPU) with a fake
// webcam: `node fps.mjs [WEIGHTS|builtin] NET_HEIGHT SECONDS` from tests/browser after `trunk
// build --release` and `cargo build --release --example browser_helper`. Prints one JSON line.

import { runningCameraPage } from "./harness.mjs";

const [weights = "builtin", height = "240", seconds = "60"] = process.argv.slice(2);
const { page, size, close } = await runningCameraPage(weights === "builtin" ? null : weights, height, 60);
const f0 = await page.evaluate(() => window.enet.frames());
const t0 = Date.now();
await page.waitForTimeout(Number(seconds) * 1000);
const f1 = await page.evaluate(() => window.enet.frames());
const gpuMs = await page.evaluate(() => window.enet.app.gpu_ms());
const secs = (Date.now() - t0) / 1000;
console.log(JSON.stringify({ size, seconds: secs, frames: f1 - f0, fps: (f1 - f0) / secs, gpu_ms: gpuMs }));
await close();
