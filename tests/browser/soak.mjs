// Page soak: FRAMES frames in headless Chromium with a fake webcam; prints the JS heap (from
// the DevTools protocol, after a forced garbage collection) and the GPU memory the engine's
// plan holds, at each tenth of the run, and fails if either grew after the first tenth.
//   node soak.mjs [WEIGHTS|builtin] [FRAMES=1000] [NET_HEIGHT=96]

import { runningCameraPage } from "./harness.mjs";

const [weights = "builtin", framesArg = "1000", height = "96"] = process.argv.slice(2);
const total = Number(framesArg);
const { page, ctx, close } = await runningCameraPage(weights === "builtin" ? null : weights, height, 30);
const cdp = await ctx.newCDPSession(page);
await cdp.send("Performance.enable");
const heap = async () => {
  await cdp.send("HeapProfiler.collectGarbage");
  const { metrics } = await cdp.send("Performance.getMetrics");
  return metrics.find((m) => m.name === "JSHeapUsedSize").value;
};
const t0 = Date.now();
let base = null;
let worstHeap = 0;
const gpu0 = await page.evaluate(() => window.enet.app.gpu_memory_bytes());
for (let k = 1; k <= 10; k++) {
  const target = (total * k) / 10;
  await page.waitForFunction((n) => window.enet.frames() >= n, target, { timeout: 0, polling: 1000 });
  const h = await heap();
  const g = await page.evaluate(() => window.enet.app.gpu_memory_bytes());
  if (base === null) base = h;
  worstHeap = Math.max(worstHeap, h - base);
  console.log(`frame ${target}: JS heap ${(h / 1024).toFixed(0)} KiB (${((h - base) / 1024).toFixed(0)} KiB since frame ${total / 10}), GPU plan ${(g / 1024).toFixed(0)} KiB, ${((Date.now() - t0) / target).toFixed(0)} ms/frame`);
  if (g !== gpu0) throw new Error(`GPU memory changed: ${gpu0} -> ${g}`);
}
console.log(`largest JS heap growth after warm-up: ${(worstHeap / 1024).toFixed(0)} KiB`);
await close();
if (worstHeap > 2 * 1024 * 1024) process.exit(1);
