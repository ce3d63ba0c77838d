// The page's frame rate in headless Chromium (WebGPU on SwiftShader, the CPU) with a fake
// webcam: `node fps.mjs WEIGHTS NET_HEIGHT SECONDS` from tests/browser after `trunk build
// --release` and `cargo build --release --example browser_helper`. Prints one JSON line.

import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { WEBGPU_FLAGS, cameraFlags, launch, referenceDir, serve } from "./harness.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const [weights, height = "240", seconds = "60"] = process.argv.slice(2);
const tmp = mkdtempSync(join(tmpdir(), "enet-fps-"));
const y4m = join(tmp, "camera.y4m");
const reference = referenceDir(root);
const w = Math.round((Number(height) * 4) / 3 / 8) * 8;
execFileSync(join(root, "target/release/examples/browser_helper"), ["y4m", y4m, String(w), height, "60", join(reference, "val-decoded/0016E5_07959.png")]);
const server = await serve(join(root, "dist"));
const { ctx, page } = await launch(tmp, [...WEBGPU_FLAGS, ...cameraFlags(y4m)]);
await page.goto(server.base);
await page.waitForFunction(() => window.enet && window.enet.state === "no-model", null, { timeout: 60000 });
await page.selectOption("#resolution", height);
await page.setInputFiles("#weights", weights);
await page.waitForFunction(() => window.enet.state === "running", null, { timeout: 300000 });
const f0 = await page.evaluate(() => window.enet.frames());
const t0 = Date.now();
await page.waitForTimeout(Number(seconds) * 1000);
const f1 = await page.evaluate(() => window.enet.frames());
const gpuMs = await page.evaluate(() => window.enet.app.gpu_ms());
const secs = (Date.now() - t0) / 1000;
console.log(JSON.stringify({ size: `${w}x${height}`, seconds: secs, frames: f1 - f0, fps: (f1 - f0) / secs, gpu_ms: gpuMs }));
await ctx.close();
server.close();
