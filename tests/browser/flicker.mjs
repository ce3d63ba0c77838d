// How much the page's class map flickers on a still, noisy camera: `node flicker.mjs
// [W H NOISE SAMPLES]` from tests/browser after `trunk build --release` and `cargo build
// --release --example browser_helper`. The camera plays the middle of a CamVid val frame at
// W x H (default a 240x360 portrait) with fresh +-NOISE grey levels (default 4) each frame;
// the network is pinned at the camera's size (one op per dispatch, f32, on SwiftShader here).
// Prints one JSON line: the share of pixels that change class between consecutive segmented
// frames, in each frame's own class map and in the smoothed one on screen (the default
// smoothing), over the pairs of consecutive frames among SAMPLES read.

import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { WEBGPU_FLAGS, apart, cameraFlags, launch, referenceDir, rememberSize, sampleFrames, serve } from "./harness.mjs";

const [w = "240", h = "360", noise = "4", samples = "16"] = process.argv.slice(2);
const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const tmp = mkdtempSync(join(tmpdir(), "enet-flicker-"));
const clip = join(tmp, "still.y4m");
const frame = join(referenceDir(root), "val-decoded/0016E5_07959.png");
execFileSync(join(root, "target/release/examples/browser_helper"), ["y4m-motion", clip, w, h, "300", frame, noise, "0"]);
const server = await serve(join(root, "dist"));
const { ctx, page } = await launch(tmp, [...WEBGPU_FLAGS, ...cameraFlags(clip)]);
await rememberSize(ctx, Math.min(Number(w), Number(h)));
await page.goto(`${server.base}?backend=webgpu&config=unfused+f32`);
await page.waitForFunction(() => window.enet && window.enet.state === "running", null, { timeout: 300000 });
const strength = await page.inputValue("#strength");

const out = await sampleFrames(page, Number(samples));
const pairs = apart(out, 1);
const changed = (a, b) => a.reduce((n, v, i) => n + (v !== b[i]), 0) / a.length;
const flicker = (key, p = pairs) => p.reduce((s, [a, b]) => s + changed(a[key], b[key]), 0) / p.length;
const [raw, shown] = [flicker("raw"), flicker("shown")];
// Frames two apart count two smoothing steps as one change: what a reading that skips a
// frame would call flicker.
const two = apart(out, 2);
console.log(
  JSON.stringify({
    camera: `${w}x${h}`,
    net: `${out[0].width}x${out[0].height}`,
    noise: Number(noise),
    smoothing_strength: Number(strength),
    frame_pairs: pairs.length,
    changed_raw_pct: +(100 * raw).toFixed(3),
    changed_shown_pct: +(100 * shown).toFixed(3),
    shown_of_raw: +(shown / raw).toFixed(3),
    two_frames_apart: { pairs: two.length, shown_of_raw: +(flicker("shown", two) / flicker("raw", two)).toFixed(3) },
  }),
);
await ctx.close();
server.close();
