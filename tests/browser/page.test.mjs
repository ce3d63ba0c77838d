// The web page in Debian Chromium with WebGPU on SwiftShader and a fake webcam.
// Needs: dist/ (trunk build --release), target/release/enet and
// target/release/examples/browser_helper, and ../shared/reference (the peer weights and
// decoded val frames). tests/browser/run.sh prepares all of it.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, writeFileSync, existsSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, extname, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const dist = join(root, "dist");
const reference = process.env.ENET_REFERENCE_DIR || join(root, "../shared/reference");
const enet = join(root, "target/release/enet");
const helper = join(root, "target/release/examples/browser_helper");
const tmp = mkdtempSync(join(tmpdir(), "enet-browser-"));
const frame = join(reference, "val-decoded/0016E5_07959.png");
const weights = join(tmp, "peer.safetensors");
const camera = join(tmp, "camera.y4m");
// The network runs small in the browser: SwiftShader computes on the CPU.
const SIZE = [320, 240];

const BASE_FLAGS = [
  "--no-sandbox",
  "--disable-gpu-sandbox",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];
const WEBGPU_FLAGS = ["--enable-unsafe-webgpu", "--use-angle=swiftshader", "--enable-features=Vulkan", "--use-vulkan=swiftshader"];
const CAMERA_FLAGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", `--use-file-for-fake-video-capture=${camera}`];

const MIME = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css", ".md": "text/plain" };
let server;
let base;

before(async () => {
  for (const f of [join(dist, "index.html"), enet, helper, frame]) assert.ok(existsSync(f), `${f} is missing`);
  execFileSync(enet, ["import", "--layout", "pytorch-enet", join(reference, "peer-enet-camvid.safetensors"), "-o", weights]);
  execFileSync(helper, ["y4m", camera, String(SIZE[0]), String(SIZE[1]), "90", frame]);
  server = createServer((req, res) => {
    const path = join(dist, decodeURIComponent(new URL(req.url, "http://x").pathname));
    if (!path.startsWith(dist) || !existsSync(path) || statSync(path).isDirectory()) {
      const index = join(dist, "index.html");
      if (req.url === "/" && existsSync(index)) {
        res.writeHead(200, { "content-type": "text/html" });
        return res.end(readFileSync(index));
      }
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { "content-type": MIME[extname(path)] || "application/octet-stream" });
    res.end(readFileSync(path));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${server.address().port}/`;
});

after(() => server && server.close());

/** A fresh browser; every request the page makes is recorded. */
async function browser(flags) {
  const ctx = await chromium.launchPersistentContext(mkdtempSync(join(tmp, "profile-")), {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [...BASE_FLAGS, ...flags],
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  const requests = [];
  const logs = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  return { ctx, page, requests, logs };
}

/** Only the page's own assets (and in-page blob:/data: URLs) were requested. */
function assertLocalOnly(requests) {
  const foreign = requests.filter((u) => !u.startsWith(base) && !u.startsWith("blob:") && !u.startsWith("data:"));
  assert.deepEqual(foreign, [], "requests outside the page's origin");
}

async function loadWeights(page) {
  await page.waitForFunction(() => window.enet && window.enet.state === "no-model", null, { timeout: 60000 });
  await page.selectOption("#resolution", String(SIZE[1]));
  await page.setInputFiles("#weights", weights);
}

function nativeClasses(input, net) {
  const out = join(tmp, `native-${Date.now()}.bin`);
  execFileSync(helper, ["classes", weights, input, String(net[0]), String(net[1]), out]);
  return readFileSync(out);
}

function agreement(a, b) {
  assert.equal(a.length, b.length);
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

async function pageClassMap(page) {
  return page.evaluate(async () => {
    const m = await window.enet.classMap();
    return { width: m.width, height: m.height, data: Array.from(m.data) };
  });
}

test("camera: the overlay appears and the page's classes match the native engine's", { timeout: 300000 }, async () => {
  const { ctx, page, requests, logs } = await browser([...WEBGPU_FLAGS, ...CAMERA_FLAGS]);
  try {
    await page.goto(base);
    await loadWeights(page);
    await page.waitForFunction(() => window.enet.state === "running", null, { timeout: 240000 });
    assert.ok((await page.evaluate(() => window.enet.frames())) >= 1);
    const map = await pageClassMap(page);
    assert.deepEqual([map.width, map.height], SIZE);
    assert.ok(new Set(map.data).size >= 3, "a street scene has several classes");
    // The same decoded camera pixels through the native engine.
    const src = await page.evaluate(() => {
      const d = window.enet.sourcePixels();
      return { width: d.width, height: d.height, data: Array.from(d.data) };
    });
    assert.deepEqual([src.width, src.height], SIZE);
    const raw = join(tmp, "camera-frame.rgba");
    writeFileSync(raw, Buffer.from(src.data));
    const native = nativeClasses(`${raw}:${src.width}x${src.height}`, SIZE);
    const agree = agreement(map.data, native);
    console.log(`camera frame: page vs native class agreement ${agree.toFixed(5)}`);
    assert.ok(agree >= 0.99, `agreement ${agree}`);
    const shot = await page.locator("#view").screenshot();
    writeFileSync(join(tmp, "page.png"), shot);
    assert.ok(shot.length > 20000, "the canvas shows a picture, not a blank");
    assertLocalOnly(requests);
  } catch (e) {
    console.log(logs.join("\n"));
    throw e;
  } finally {
    await ctx.close();
  }
});

test("image file: resized on the GPU, classes match the native engine's", { timeout: 300000 }, async () => {
  const { ctx, page, requests, logs } = await browser([...WEBGPU_FLAGS, ...CAMERA_FLAGS]);
  try {
    await page.goto(base);
    await loadWeights(page);
    await page.waitForFunction(() => window.enet.state === "running", null, { timeout: 240000 });
    await page.setInputFiles("#media", frame);
    await page.waitForFunction(() => window.enet.state === "running" && window.enet.frames() >= 1, null, { timeout: 240000 });
    // The 480x360 frame runs at 320x240; wait for the image's own frame (the camera may
    // have drawn one first).
    await page.waitForFunction(() => window.enet.sourcePixels().width === 480, null, { timeout: 240000 });
    const before = await page.evaluate(() => window.enet.frames());
    await page.evaluate(() => document.getElementById("resolution").dispatchEvent(new Event("change")));
    await page.waitForFunction((n) => window.enet.frames() > n, before, { timeout: 240000 });
    const map = await pageClassMap(page);
    assert.deepEqual([map.width, map.height], SIZE);
    const agree = agreement(map.data, nativeClasses(frame, SIZE));
    console.log(`image file: page vs native class agreement ${agree.toFixed(5)}`);
    assert.ok(agree >= 0.99, `agreement ${agree}`);
    assertLocalOnly(requests);
  } catch (e) {
    console.log(logs.join("\n"));
    throw e;
  } finally {
    await ctx.close();
  }
});

test("a bad weights file: a clear message, the old model keeps running", { timeout: 300000 }, async () => {
  const { ctx, page, logs } = await browser([...WEBGPU_FLAGS, ...CAMERA_FLAGS]);
  try {
    await page.goto(base);
    await loadWeights(page);
    await page.waitForFunction(() => window.enet.state === "running", null, { timeout: 240000 });
    const bad = join(tmp, "bad.safetensors");
    writeFileSync(bad, readFileSync(weights).subarray(0, 5000));
    await page.setInputFiles("#weights", bad);
    await page.waitForFunction(() => !document.getElementById("message").hidden, null, { timeout: 30000 });
    const text = await page.textContent("#message-text");
    assert.match(text, /bad\.safetensors was not loaded: .*safetensors/);
    assert.match(text, /previous model keeps running/);
    const n = await page.evaluate(() => window.enet.frames());
    await page.waitForFunction((k) => window.enet.frames() > k, n, { timeout: 240000 });
  } catch (e) {
    console.log(logs.join("\n"));
    throw e;
  } finally {
    await ctx.close();
  }
});

test("a lost GPU device is re-created and segmentation goes on", { timeout: 300000 }, async () => {
  const { ctx, page, logs } = await browser([...WEBGPU_FLAGS, ...CAMERA_FLAGS]);
  try {
    await page.goto(base);
    await loadWeights(page);
    await page.waitForFunction(() => window.enet.state === "running", null, { timeout: 240000 });
    const t0 = Date.now();
    await page.evaluate(() => window.enet.app.destroy_device());
    await page.waitForFunction(() => window.enet.recoveries >= 1, null, { timeout: 30000 });
    const recovered = Date.now() - t0;
    await page.waitForFunction(() => window.enet.frames() >= 1, null, { timeout: 240000 });
    console.log(`device re-created ${recovered} ms after it was lost; first new frame after ${Date.now() - t0} ms`);
    assert.equal(await page.evaluate(() => window.enet.state), "running");
  } catch (e) {
    console.log(logs.join("\n"));
    throw e;
  } finally {
    await ctx.close();
  }
});

test("new weights while running: the page switches models without reloading", { timeout: 300000 }, async () => {
  const { ctx, page, logs } = await browser([...WEBGPU_FLAGS, ...CAMERA_FLAGS]);
  try {
    await page.goto(base);
    await loadWeights(page);
    await page.waitForFunction(() => window.enet.state === "running", null, { timeout: 240000 });
    assert.match(await page.textContent("#status"), /pytorch-enet/);
    await page.setInputFiles("#weights", join(root, "tests/fixtures/paper-random.safetensors"));
    await page.waitForFunction(() => /paper ENet/.test(document.getElementById("status").textContent), null, { timeout: 30000 });
    const n = await page.evaluate(() => window.enet.frames());
    await page.waitForFunction((k) => window.enet.frames() > k, n, { timeout: 240000 });
    assert.equal(await page.evaluate(() => window.enet.recoveries), 0, "no restart was needed");
  } catch (e) {
    console.log(logs.join("\n"));
    throw e;
  } finally {
    await ctx.close();
  }
});

test("the camera track ends: a message and a restart button that works", { timeout: 300000 }, async () => {
  const { ctx, page, logs } = await browser([...WEBGPU_FLAGS, ...CAMERA_FLAGS]);
  try {
    await page.goto(base);
    await loadWeights(page);
    await page.waitForFunction(() => window.enet.state === "running", null, { timeout: 240000 });
    // What the browser does when a camera is unplugged: the track stops and fires "ended".
    await page.evaluate(() => {
      const track = document.getElementById("camera").srcObject.getVideoTracks()[0];
      track.stop();
      track.dispatchEvent(new Event("ended"));
    });
    await page.waitForFunction(() => window.enet.state === "no-camera", null, { timeout: 10000 });
    assert.match(await page.textContent("#message-text"), /camera stopped/);
    await page.click("text=Restart camera");
    const n = await page.evaluate(() => window.enet.frames());
    await page.waitForFunction((k) => window.enet.state === "running" && window.enet.frames() > k, n, { timeout: 240000 });
  } catch (e) {
    console.log(logs.join("\n"));
    throw e;
  } finally {
    await ctx.close();
  }
});

test("without WebGPU the page says so and names the browsers that have it", { timeout: 120000 }, async () => {
  const { ctx, page, requests } = await browser(["--disable-features=WebGPU"]);
  try {
    await page.goto(base);
    await page.waitForFunction(() => window.enet && window.enet.state === "no-webgpu", null, { timeout: 60000 });
    const text = await page.textContent("#message-text");
    assert.match(text, /needs WebGPU/);
    assert.match(text, /Chrome/);
    assert.match(text, /Safari/);
    assertLocalOnly(requests);
  } finally {
    await ctx.close();
  }
});

test("camera permission denied: a message and an image or video file instead", { timeout: 180000 }, async () => {
  const { ctx, page } = await browser([...WEBGPU_FLAGS, "--use-fake-device-for-media-stream", "--deny-permission-prompts"]);
  try {
    await page.goto(base);
    await loadWeights(page);
    await page.waitForFunction(() => window.enet.state === "no-camera", null, { timeout: 120000 });
    const text = await page.textContent("#message-text");
    assert.match(text, /Camera permission was denied/);
    assert.match(await page.textContent("#message-actions"), /Open image or video/);
  } finally {
    await ctx.close();
  }
});
