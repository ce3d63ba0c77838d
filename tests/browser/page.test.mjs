// The web page in Debian Chromium with WebGPU on SwiftShader and a fake webcam. The GPU path's
// tests load the page with ?backend=webgpu (by itself it runs on the CPU where the only
// adapter is SwiftShader); the CPU path's tests are marked "CPU path".
// Needs: dist/ (trunk build --release, with the built-in model), target/release/enet and
// target/release/examples/browser_helper, and ../shared/reference (the peer weights and
// decoded val frames). tests/browser/run.sh prepares all of it.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { spawn } from "node:child_process";
import { connect, createServer } from "node:net";
import { devices } from "playwright-core";
import { WEBGPU_FLAGS, apart, cameraFlags, launch, referenceDir, rememberSize, sampleFrames, serve } from "./harness.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const dist = join(root, "dist");
const reference = referenceDir(root);
const enet = join(root, "target/release/enet");
const helper = join(root, "target/release/examples/browser_helper");
const tmp = mkdtempSync(join(tmpdir(), "enet-browser-"));
const frame = join(reference, "val-decoded/0016E5_07959.png");
// The page starts with the built-in model; the peer weights are the "other checkpoint".
const weights = join(root, "assets/enet-camvid.safetensors");
const peer = join(tmp, "peer.safetensors");
const camera = join(tmp, "camera.y4m");
const portraitCamera = join(tmp, "portrait.y4m");
const smallPortrait = join(tmp, "portrait-small.y4m");
// Screenshots of the page as a phone and a laptop land here (a temporary folder by default).
const shots = process.env.ENET_SCREENSHOTS || join(tmp, "screenshots");
// The network runs small in the browser: SwiftShader computes on the CPU.
const SIZE = [320, 240];

const CAMERA_FLAGS = cameraFlags(camera);
let server;
let base;

before(async () => {
  for (const f of [join(dist, "index.html"), enet, helper, frame]) assert.ok(existsSync(f), `${f} is missing`);
  execFileSync(enet, ["import", "--layout", "pytorch-enet", join(reference, "peer-enet-camvid.safetensors"), "-o", peer]);
  execFileSync(helper, ["y4m", camera, String(SIZE[0]), String(SIZE[1]), "90", frame]);
  execFileSync(helper, ["y4m", portraitCamera, String(SIZE[1]), String(SIZE[0]), "90", frame]);
  execFileSync(helper, ["y4m", smallPortrait, "120", "160", "90", frame]);
  server = await serve(dist);
  base = server.base;
});

after(() => server && server.close());

/** The page at `url` on the GPU path, even with a software adapter, one op per dispatch in
 * f32 (?config=): what the tuner measures fastest on SwiftShader, whose pipelines compile in a
 * tenth of the fused ones' time. The tuner has its own test. */
const gpuUrl = (url) => `${url}?backend=webgpu&config=unfused+f32`;
/** The GPU path on the default configuration (fused bottlenecks), not tuned. */
const fusedUrl = (url) => `${url}?backend=webgpu&tune=0`;

/** Only the page's own assets (and in-page blob:/data: URLs) were requested. */
function assertLocalOnly(requests) {
  const foreign = requests.filter((u) => !u.startsWith(base) && !u.startsWith("blob:") && !u.startsWith("data:"));
  assert.deepEqual(foreign, [], "requests outside the page's origin");
}

/** The native engine's classes: the GPU engine at f32, or (`backend` "cpu") the CPU engine on
 * one thread, as the page's CPU path runs it. */
function nativeClasses(input, net, backend = "gpu") {
  const out = join(tmp, `native-${Date.now()}.bin`);
  execFileSync(helper, ["classes", weights, input, String(net[0]), String(net[1]), out, backend]);
  return readFileSync(out);
}

function agreement(a, b) {
  assert.equal(a.length, b.length);
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

// Pixels and class maps cross from the page as base64 (window.__base64, harness.mjs).
const bytes = (m) => ({ ...m, data: Buffer.from(m.data, "base64") });

async function pageClassMap(page, raw = true) {
  return bytes(
    await page.evaluate(async (r) => {
      const m = await window.enet.classMap(r);
      return { width: m.width, height: m.height, data: window.__base64(m.data) };
    }, raw),
  );
}

const RUNNING = { timeout: 240000 };

/** Page classes (the frame's own, or with `raw` false the shown, smoothed ones) against the
 * native engine's (of `backend`) on the pixels the browser decoded; at least `min` of them
 * the same. */
async function pageMatchesNative(page, label, { backend = "gpu", min = 0.99, raw: own = true } = {}) {
  const map = await pageClassMap(page, own);
  const src = bytes(
    await page.evaluate(() => {
      const d = window.enet.sourcePixels();
      return { width: d.width, height: d.height, data: window.__base64(d.data) };
    }),
  );
  const raw = join(tmp, `${label}.rgba`);
  writeFileSync(raw, Buffer.from(src.data));
  const agree = agreement(map.data, nativeClasses(`${raw}:${src.width}x${src.height}`, [map.width, map.height], backend));
  console.log(`${label}: page vs native (${backend}) class agreement ${agree.toFixed(5)}`);
  assert.ok(agree >= min, `${label}: agreement ${agree}`);
  return { map, src };
}

/**
 * Runs `body({ page, requests, ctx })` on a fresh browser whose page (at `url`, by default the
 * test server's on the GPU path) starts on its own with the built-in model at network height `size` (240; or
 * "auto"), as `device` (Playwright context options) when given, after `init` ({script, arg},
 * an init script). With `wait` (the default) the body starts once the page is running. The page's console is
 * printed when the body fails; the browser always closes.
 */
async function withPage(flags, body, { wait = true, url = gpuUrl(base), size = SIZE[1], device = {}, init = null } = {}) {
  const { ctx, page, requests, logs } = await launch(tmp, flags, device);
  try {
    await rememberSize(ctx, size);
    if (init) await ctx.addInitScript(init.script, init.arg);
    await page.goto(url);
    if (wait) await page.waitForFunction(() => window.enet.state === "running", null, RUNNING);
    await body({ page, requests, ctx });
  } catch (e) {
    console.log(logs.join("\n"));
    throw e;
  } finally {
    await ctx.close();
  }
}

const CAMERA = [...WEBGPU_FLAGS, ...CAMERA_FLAGS];
/** Waits until the page's camera watchdog has looked `n` more times (about a second each, by
 * the page's own clock: a slow or busy machine stretches the wait, never cuts it short). */
async function watchdogLooks(page, n) {
  const k = await page.evaluate(() => window.enet.watchdogChecks());
  await page.waitForFunction((m) => window.enet.watchdogChecks() >= m, k + n, RUNNING);
}
const frames = (page) => page.evaluate(() => window.enet.frames());
const moreFrames = (page, n) => page.waitForFunction((k) => window.enet.frames() > k, n, RUNNING);

test("camera: the overlay appears and the page's classes (fused engine) match the native engine's", { timeout: 300000 }, () =>
  withPage(CAMERA, async ({ page, requests }) => {
    assert.ok((await frames(page)) >= 1);
    // ?tune=0: the default configuration, neither measured nor remembered.
    const d = JSON.parse(await page.evaluate(() => window.enet.app.describe()));
    const tuning = await page.evaluate(() => window.enet.tuning());
    assert.deepEqual([tuning.state, tuning.chosen, tuning.config], ["off", "default", `fused ${d.precision} 64x64`]);
    const { map, src } = await pageMatchesNative(page, "camera frame");
    assert.deepEqual([map.width, map.height], SIZE);
    assert.deepEqual([src.width, src.height], SIZE);
    assert.ok(new Set(map.data).size >= 3, "a street scene has several classes");
    const shot = await page.locator("#view").screenshot(RUNNING);
    writeFileSync(join(tmp, "page.png"), shot);
    assert.ok(shot.length > 20000, "the canvas shows a picture, not a blank");
    assertLocalOnly(requests);
  }, { url: fusedUrl(base) }));

test("image file: resized on the GPU, classes match the native engine's", { timeout: 300000 }, () =>
  withPage(CAMERA, async ({ page, requests }) => {
    await page.setInputFiles("#media", frame);
    // The 480x360 frame runs at 320x240; wait for the image's own frame (the camera may
    // have drawn one first), then segment it once more.
    await page.waitForFunction(() => window.enet.sourcePixels().width === 480, null, RUNNING);
    const n = await frames(page);
    await page.evaluate(() => document.getElementById("resolution").dispatchEvent(new Event("change")));
    await moreFrames(page, n);
    const map = await pageClassMap(page);
    assert.deepEqual([map.width, map.height], SIZE);
    const agree = agreement(map.data, nativeClasses(frame, SIZE));
    console.log(`image file: page vs native class agreement ${agree.toFixed(5)}`);
    assert.ok(agree >= 0.99, `agreement ${agree}`);
    assertLocalOnly(requests);
  }));

test("a bad weights file: a clear message, the old model keeps running", { timeout: 300000 }, () =>
  withPage(CAMERA, async ({ page }) => {
    const bad = join(tmp, "bad.safetensors");
    writeFileSync(bad, readFileSync(weights).subarray(0, 5000));
    await page.setInputFiles("#weights", bad);
    await page.waitForFunction(() => !document.getElementById("message").hidden, null, { timeout: 30000 });
    const text = await page.textContent("#message-text");
    assert.match(text, /bad\.safetensors was not loaded: .*safetensors/);
    assert.match(text, /previous model keeps running/);
    await moreFrames(page, await frames(page));
  }));

test("a lost GPU device is re-created and segmentation goes on, from the camera or a picture", { timeout: 300000 }, () =>
  withPage(CAMERA, async ({ page }) => {
    // The smallest input: a software GPU cannot stop the frame it is computing, and the new
    // device waits for it; at 320x240 that alone takes SwiftShader about 2 s.
    // Run as ?config= asks, and again so on the new device.
    const forced = async () => {
      const t = await page.evaluate(() => window.enet.tuning());
      assert.deepEqual([t.config, t.chosen], ["unfused f32", "forced"]);
    };
    await forced();
    let n = await frames(page);
    await page.selectOption("#resolution", "96");
    await moreFrames(page, n + 1);
    const lose = async (what) => {
      const before = await page.evaluate(() => window.enet.recoveries);
      const t0 = Date.now();
      await page.evaluate(() => window.enet.app.destroy_device());
      await page.waitForFunction((k) => window.enet.recoveries > k, before, { timeout: 30000 });
      const recovered = Date.now() - t0;
      await page.waitForFunction(() => window.enet.frames() >= 1, null, RUNNING);
      console.log(`${what}: device re-created ${recovered} ms after it was lost; first new frame after ${Date.now() - t0} ms`);
      assert.equal(await page.evaluate(() => window.enet.state), "running");
      await forced();
    };
    await lose("camera");
    // A still picture draws no new frames by itself: the loss must be noticed without them.
    n = await frames(page);
    await page.setInputFiles("#media", frame);
    await page.waitForFunction(
      (k) => window.enet.sourceSize().kind === "image" && window.enet.frames() > k,
      n,
      RUNNING,
    );
    await lose("picture");
    assert.deepEqual(await page.evaluate(() => window.enet.sourceSize()), { kind: "image", width: 480, height: 360 });
  }));

test("new weights while running: the page switches models without reloading", { timeout: 300000 }, () =>
  withPage(CAMERA, async ({ page }) => {
    assert.match(await page.textContent("#status"), /paper ENet/);
    await page.setInputFiles("#weights", peer);
    await page.waitForFunction(() => /pytorch-enet ENet/.test(document.getElementById("status").textContent), null, { timeout: 30000 });
    await moreFrames(page, await frames(page));
    assert.equal(await page.evaluate(() => window.enet.recoveries), 0, "no restart was needed");
  }));

test("the camera track ends: a message and a restart button that works", { timeout: 300000 }, () =>
  withPage(CAMERA, async ({ page }) => {
    // What the browser does when a camera is unplugged: the track stops and fires "ended".
    await page.evaluate(() => {
      const track = document.getElementById("camera").srcObject.getVideoTracks()[0];
      track.stop();
      track.dispatchEvent(new Event("ended"));
    });
    await page.waitForFunction(() => window.enet.state === "no-camera", null, { timeout: 10000 });
    assert.match(await page.textContent("#message-text"), /camera stopped/);
    // The no-picture watchdog looks 7 more times, longer than it waits (5 s) before it
    // speaks: the message and its button stay.
    await watchdogLooks(page, 7);
    assert.match(await page.textContent("#message-text"), /camera stopped/);
    const n = await frames(page);
    await page.click("text=Restart camera");
    await page.waitForFunction((k) => window.enet.state === "running" && window.enet.frames() > k, n, RUNNING);
  }));

test("WebGPU asked for (?backend=webgpu) where there is none: the page says so and names the browsers that have it", { timeout: 120000 }, () =>
  withPage(
    ["--disable-features=WebGPU"],
    async ({ page, requests }) => {
      await page.waitForFunction(() => window.enet && window.enet.state === "no-webgpu", null, { timeout: 60000 });
      const text = await page.textContent("#message-text");
      assert.match(text, /asks for WebGPU/);
      assert.match(text, /Without \?backend=webgpu the page runs on the CPU/);
      assert.match(text, /Chrome/);
      assert.match(text, /Safari/);
      assertLocalOnly(requests);
    },
    { wait: false },
  ));

test("camera permission denied: a message and an image or video file instead", { timeout: 180000 }, () =>
  withPage(
    [...WEBGPU_FLAGS, "--use-fake-device-for-media-stream", "--deny-permission-prompts"],
    async ({ page }) => {
      await page.waitForFunction(() => window.enet.state === "no-camera", null, { timeout: 120000 });
      assert.match(await page.textContent("#message-text"), /Camera permission was denied/);
      assert.match(await page.textContent("#message-actions"), /Open image or video/);
    },
    { wait: false },
  ));

test("odd pictures: each is segmented or refused with a message, and what ran keeps running", { timeout: 600000 }, () =>
  withPage(
    [...WEBGPU_FLAGS, "--use-fake-device-for-media-stream", "--deny-permission-prompts"],
    async ({ page, requests }) => {
      const dir = mkdtempSync(join(tmp, "odd-"));
      execFileSync(helper, ["odd-images", dir, frame]);
      await page.waitForFunction(() => window.enet.state === "no-camera", null, RUNNING);
      const messageText = async () => ((await page.isHidden("#message")) ? "" : await page.textContent("#message-text"));
      // Opens a picture and waits for its own frame (the network height is 240).
      const open = async (file, size) => {
        const n = await frames(page);
        await page.setInputFiles("#media", file);
        await page.waitForFunction(
          ([k, w, h]) => window.enet.frames() > k && window.enet.sourceSize().width === w && window.enet.sourceSize().height === h,
          [n, ...size],
          RUNNING,
        );
      };
      // [picture, its size, the network size: height 240, width by the aspect in multiples of 8]
      for (const [file, size, net] of [
        [join(dir, "grey.png"), [480, 360], SIZE],
        [join(dir, "rgb16.png"), [480, 360], SIZE],
        [join(root, "tests/fixtures/cmyk.jpg"), [64, 48], SIZE],
        [join(dir, "one.png"), [1, 1], [240, 240]],
        [join(dir, "odd.png"), [37, 29], [304, 240]],
        [join(dir, "appended.jpg"), [480, 360], SIZE],
      ]) {
        await open(file, size);
        const { map } = await pageMatchesNative(page, basename(file));
        assert.deepEqual([map.width, map.height], net);
        assert.equal(await messageText(), "");
      }

      await open(join(dir, "large.png"), [2048, 1536]);
      assert.match(await messageText(), /large\.png is 6000×4500; it was scaled to 2048×1536 first/);
      const large = await pageClassMap(page);
      assert.deepEqual([large.width, large.height], SIZE);
      assert.ok(new Set(large.data).size >= 3, "a street scene has several classes");

      for (const [name, why] of [
        // Partial pictures, which the browser would draw: refused by their bytes, by name.
        ["truncated.png", /truncated\.png: the PNG data ends early, at byte \d+/],
        ["cut-before-iend.png", /cut-before-iend\.png: the PNG data ends early, at byte \d+ \(before the IEND chunk\)/],
        ["cut-header.jpg", /cut-header\.jpg: the JPEG data ends early, at byte \d+/],
        ["cut-scan.jpg", /cut-scan\.jpg: the JPEG data ends early, at byte \d+ \(before the end of the scan data\)/],
        ["cut-end.jpg", /cut-end\.jpg: the JPEG data ends early, at byte \d+/],
        ["vast.png", /vast\.png is not an image this browser can decode/],
        ["not-an-image.png", /not-an-image\.png is not an image this browser can decode/],
        ["broken.mp4", /broken\.mp4 is not a video this browser can play/],
      ]) {
        await page.setInputFiles("#media", join(dir, name));
        await page.waitForFunction((re) => new RegExp(re).test(document.getElementById("message-text").textContent), why.source, {
          timeout: 30000,
        });
        assert.match(await messageText(), /What was running keeps running/);
        assert.deepEqual(await page.evaluate(() => window.enet.sourceSize()), { kind: "image", width: 2048, height: 1536 });
      }
      // The large picture is still the source and is segmented again on a new setting.
      const n = await frames(page);
      await page.selectOption("#resolution", "192");
      await moreFrames(page, n);
      const again = await pageClassMap(page);
      assert.deepEqual([again.width, again.height], [256, 192]);
      assert.equal(await page.evaluate(() => window.enet.state), "running");
      assertLocalOnly(requests);
    },
    { wait: false },
  ));

const MODEL_PATH = "/assets/enet-camvid.safetensors";
const modelRequests = (srv) => srv.requests.filter((r) => r.url === MODEL_PATH);

test("the built-in model: the page starts on its own, shows the download's progress, and a reload takes it from the cache", { timeout: 300000 }, async () => {
  const slow = await serve(dist, { slow: [MODEL_PATH] });
  try {
    await withPage(
      CAMERA,
      async ({ page, requests }) => {
        // Nothing is clicked or chosen: the fake camera's permission is all the page gets.
        await page.waitForFunction(
          () => {
            const p = document.getElementById("progress");
            return !p.hidden && p.value > 0 && p.value < 1;
          },
          null,
          { timeout: 30000 },
        );
        assert.match(await page.textContent("#message-text"), /Loading the built-in model… [\d.]+ of [\d.]+ MB/);
        await page.waitForFunction(() => window.enet.state === "running", null, RUNNING);
        assert.ok(await page.isHidden("#progress"));
        assert.match(await page.textContent("#status"), /paper ENet, 12 classes/);
        await pageMatchesNative(page, "built-in model, camera frame");
        await page.reload();
        await page.waitForFunction(() => window.enet && window.enet.state === "running", null, RUNNING);
        const downloads = modelRequests(slow).filter((r) => r.status === 200).length;
        console.log(`model requests: ${modelRequests(slow).map((r) => r.status).join(", ")} (the reload: from the cache or 304)`);
        assert.equal(downloads, 1, "the model is downloaded once");
        assert.deepEqual(
          requests.filter((u) => !u.startsWith(slow.base) && !u.startsWith("blob:") && !u.startsWith("data:")),
          [],
          "requests outside the page's origin",
        );
      },
      { wait: false, url: gpuUrl(slow.base) },
    );
  } finally {
    slow.close();
  }
});

/** The page behind `server` must say the built-in model is unusable and offer the picker. */
async function unusableModel(url, why, { pick = false } = {}) {
  await withPage(
    CAMERA,
    async ({ page }) => {
      await page.waitForFunction(() => window.enet && window.enet.state === "no-model", null, { timeout: 60000 });
      const text = await page.textContent("#message-text");
      console.log(`unusable model: ${text}`);
      assert.match(text, /The built-in model \(assets\/enet-camvid\.safetensors\) could not be loaded: /);
      assert.match(text, why);
      assert.ok(await page.isHidden("#progress"));
      assert.match(await page.textContent("#message-actions"), /Load weights/);
      if (pick) {
        await page.setInputFiles("#message-actions input[type=file]", weights);
        await page.waitForFunction(() => window.enet.state === "running", null, RUNNING);
        assert.ok(await page.isHidden("#message"));
      }
    },
    { wait: false, url: gpuUrl(url) },
  );
}

test("a missing or damaged built-in model: a message naming it and the weights picker, which works", { timeout: 600000 }, async () => {
  const truncated = readFileSync(weights).subarray(0, 4096);
  const cases = [
    [{ missing: [MODEL_PATH] }, /the server answered 404/, false],
    // `trunk serve` and single-page hosts answer a missing file with the page and status 200.
    [{ missing: [MODEL_PATH], fallback: "index" }, /text\/html page instead of the model: it is missing from the site/, false],
    [{ replace: { [MODEL_PATH]: truncated } }, /safetensors|truncated|header/i, true],
  ];
  for (const [options, why, pick] of cases) {
    const srv = await serve(dist, options);
    try {
      await unusableModel(srv.base, why, { pick });
    } finally {
      srv.close();
    }
  }
});

/**
 * Resolves once something accepts connections on the port. Trunk's "server listening" line
 * can come before its socket accepts (a first request right after it was refused), so the
 * line alone races the first request. A refused try is
 * retried 25 ms later (a pause between tries, not a guess at how long the bind takes),
 * until a connection is accepted or `gone` (the server's exit) rejects.
 */
async function accepting(port, gone) {
  for (;;) {
    const ok = await Promise.race([
      new Promise((resolve) => {
        const s = connect(port, "127.0.0.1");
        s.once("connect", () => (s.destroy(), resolve(true)));
        s.once("error", () => (s.destroy(), resolve(false)));
      }),
      gone,
    ]);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A free localhost port. */
async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

test("behind `trunk serve` (scripts/serve.sh): the page runs, and without the model file it says so", { timeout: 600000 }, async () => {
  const served = mkdtempSync(join(tmp, "trunk-dist-"));
  const port = await freePort();
  const trunk = spawn("trunk", ["serve", "--release", "--port", String(port), "--dist", served], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  // Ready once trunk says both that its build is written and that it serves; an exit before
  // that is a failure, with what it said.
  const gone = new Promise((_, reject) =>
    trunk.on("exit", (code) => reject(new Error(`trunk serve exited (${code}) before serving:\n${out}`))),
  );
  gone.catch(() => {});
  const ready = new Promise((resolve, reject) => {
    const read = (d) => {
      out += d;
      if (/success/.test(out) && /server listening/.test(out) && out.includes(`127.0.0.1:${port}/`)) resolve();
    };
    trunk.stdout.on("data", read);
    trunk.stderr.on("data", read);
    gone.catch(reject);
  });
  const url = `http://127.0.0.1:${port}/`;
  try {
    await ready;
    await accepting(port, gone);
    assert.ok(existsSync(join(served, "assets/enet-camvid.safetensors")), "the build wrote the model");
    assert.ok((await fetch(url)).ok, "trunk serves the page");
    await withPage(CAMERA, async ({ page }) => pageMatchesNative(page, "trunk serve, camera frame"), { url: gpuUrl(url) });
    // Trunk.toml turns off trunk's index.html fallback, so a missing model is a plain 404.
    rmSync(join(served, "assets/enet-camvid.safetensors"));
    const r = await fetch(`${url}assets/enet-camvid.safetensors`);
    console.log(`trunk serve, missing model: ${r.status} ${r.headers.get("content-type")}`);
    await unusableModel(url, /the server answered 404/);
  } finally {
    trunk.kill();
  }
});

const changed = (a, b) => 1 - agreement(a, b);
const mean = (v) => v.reduce((x, y) => x + y, 0) / v.length;

test("temporal smoothing: a still, noisy camera flickers half as much or less, a pan is still followed", { timeout: 600000 }, async () => {
  const clip = async (name, noise, pan, [w, h]) => {
    const file = join(tmp, `${name}.y4m`);
    execFileSync(helper, ["y4m-motion", file, String(w), String(h), "300", frame, String(noise), String(pan)]);
    return file;
  };
  const run = async (file, h, body) => {
    const { ctx, page, logs } = await launch(tmp, [...WEBGPU_FLAGS, ...cameraFlags(file)]);
    try {
      await rememberSize(ctx, h);
      await page.goto(gpuUrl(base));
      await page.waitForFunction(() => window.enet && window.enet.state === "running", null, RUNNING);
      assert.ok(await page.isChecked("#smoothing"), "smoothing is on by default");
      await body(page);
    } catch (e) {
      console.log(logs.join("\n"));
      throw e;
    } finally {
      await ctx.close();
    }
  };
  // A still scene, fresh +-4 grey-level noise in every camera frame.
  await run(await clip("still", 4, 0, [128, 96]), 96, async (page) => {
    const s = await sampleFrames(page, 12);
    console.log(`sampled frames ${s.map((f) => f.k).join(", ")}`);
    const next = apart(s);
    assert.ok(next.length >= 5, `consecutive frames sampled: ${next.length}`);
    const flicker = (key) => mean(next.map(([a, b]) => changed(a[key], b[key])));
    const raw = flicker("raw");
    const shown = flicker("shown");
    console.log(`still noisy camera: ${(100 * raw).toFixed(3)} % of pixels change class between frames without smoothing, ${(100 * shown).toFixed(3)} % with it`);
    assert.ok(raw > 0, "the noisy clip makes the plain class map flicker");
    assert.ok(shown <= raw / 2, `smoothing: ${shown} vs ${raw}`);
  });
  // A slow pan at 256x192 (at 128x96 this model is unsure of so many pixels that a noisy still
  // scene flickers on 7 % of them): 0.25 pixels per camera frame, and the page segments one
  // camera frame in many on SwiftShader, so several pixels between segmented frames.
  await run(await clip("pan", 0, 0.25, [256, 192]), 192, async (page) => {
    const t0 = Date.now();
    const f0 = await frames(page);
    const s = await sampleFrames(page, 8);
    const fps = ((await frames(page)) - f0) / ((Date.now() - t0) / 1000);
    console.log(`panning camera: about ${((0.25 * 30) / fps).toFixed(1)} pixels of pan between segmented frames (${fps.toFixed(2)} FPS)`);
    const agree = s.map((f) => agreement(f.shown, f.raw));
    console.log(`panning camera: the smoothed map agrees with each frame's own on ${(100 * mean(agree)).toFixed(2)} % of pixels (lowest ${(100 * Math.min(...agree)).toFixed(2)} %)`);
    assert.ok(mean(agree) >= 0.95, `agreement ${mean(agree)}`);
  });
});

test("a hidden tab releases the camera and gets it back when shown", { timeout: 300000 }, () =>
  withPage(CAMERA, async ({ page }) => {
    assert.ok(await page.evaluate(() => window.enet.cameraOn()));
    // What the browser does when another tab or app comes to the front (headless Chromium
    // keeps every tab visible, so the page is told as a browser tells it).
    const setHidden = (hidden) =>
      page.evaluate((h) => {
        Object.defineProperty(document, "hidden", { configurable: true, get: () => h });
        Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (h ? "hidden" : "visible") });
        document.dispatchEvent(new Event("visibilitychange"));
      }, hidden);
    await setHidden(true);
    await page.waitForFunction(() => !window.enet.cameraOn(), null, { timeout: 30000 });
    const n = await frames(page);
    await watchdogLooks(page, 2);
    assert.equal(await frames(page), n, "no frames while hidden");
    await setHidden(false);
    await page.waitForFunction((k) => window.enet.cameraOn() && window.enet.frames() > k, n, RUNNING);
    assert.equal(await page.evaluate(() => window.enet.state), "running");
  }));

/** Decodes PNG bytes in the page: {width, height, data} (RGBA). */
async function decodePng(page, png) {
  return bytes(
    await page.evaluate(async (png64) => {
      const raw = Uint8Array.from(atob(png64), (c) => c.charCodeAt(0));
      const bmp = await createImageBitmap(new Blob([raw], { type: "image/png" }));
      const c = new OffscreenCanvas(bmp.width, bmp.height).getContext("2d");
      c.drawImage(bmp, 0, 0);
      const d = c.getImageData(0, 0, bmp.width, bmp.height);
      return { width: d.width, height: d.height, data: window.__base64(d.data) };
    }, Buffer.from(png).toString("base64")),
  );
}

/** Twin of the overlay shader's class lookup: class-map index of picture pixel `o` of `n`. */
const nearest = (o, n, m) => Math.min(Math.floor(((2 * o + 1) * m) / (2 * n)), m - 1);

/** Share of `pic`'s pixels in columns [x0, x0 + pw) that show the mask colour of their class. */
function maskAgreement(pic, x0, pw, map, legend, hidden = new Set()) {
  let same = 0;
  let all = 0;
  for (let y = 0; y < pic.height; y++) {
    const cy = nearest(y, pic.height, map.height);
    for (let x = 0; x < pw; x++) {
      const c = map.data[cy * map.width + nearest(x, pw, map.width)];
      const want = legend[c] && !legend[c].void && !hidden.has(c) ? legend[c].color : [0, 0, 0];
      const i = (y * pic.width + x0 + x) * 4;
      all++;
      if (want.every((v, k) => Math.abs(v - pic.data[i + k]) <= 3)) same++;
    }
  }
  return same / all;
}

/** The middle [x, y] of a uniform 7x7 patch of class `c` in a class map, or null. */
function uniformSpot(map, c) {
  for (let y = 3; y < map.height - 3; y += 2)
    for (let x = 3; x < map.width - 3; x += 2) {
      let uniform = true;
      for (let dy = -3; dy <= 3 && uniform; dy++) for (let dx = -3; dx <= 3 && uniform; dx++) uniform = map.data[(y + dy) * map.width + x + dx] === c;
      if (uniform) return [x, y];
    }
  return null;
}

/** Waits for the still picture's own segmented frame at the test size. */
async function showStill(page) {
  await page.setInputFiles("#media", frame);
  await page.waitForFunction(() => window.enet.sourceSize().kind === "image", null, RUNNING);
  const n = await frames(page);
  await page.evaluate(() => document.getElementById("resolution").dispatchEvent(new Event("change")));
  await moreFrames(page, n);
}

test("looking closer: mask and side-by-side views, class toggles, pointing at a pixel, the snapshot of what is shown, sharp edges", { timeout: 400000 }, () =>
  withPage(CAMERA, async ({ page }) => {
    await showStill(page);
    // Network pixels as blocks first (each canvas pixel shows its nearest network pixel's
    // class); sharp edges, on by default, are checked at the end.
    assert.ok(await page.isChecked("#edges"), "sharp edges are on by default");
    await page.uncheck("#edges");
    const legend = await page.evaluate(() => JSON.parse(window.enet.app.legend()));
    const map = await pageClassMap(page, false);
    const canvasPicture = async () => decodePng(page, await page.locator("#view").screenshot(RUNNING));

    await page.selectOption("#view-mode", "mask");
    let pic = await canvasPicture();
    let agree = maskAgreement(pic, 0, pic.width, map, legend);
    console.log(`mask view ${pic.width}x${pic.height}: ${(agree * 100).toFixed(2)} % of pixels show their class colour`);
    assert.ok(agree >= 0.98, `mask view agreement ${agree}`);

    // Hide the most common class: its pixels turn black, the others stay.
    const counts = new Map();
    for (const c of map.data) counts.set(c, (counts.get(c) || 0) + 1);
    const [top] = [...counts.entries()].filter(([c]) => !legend[c].void).sort((a, b) => b[1] - a[1])[0];
    await page.getByRole("button", { name: legend[top].name, exact: true }).click();
    assert.equal(await page.getAttribute(`#legend li:nth-child(${legend.filter((c, i) => !c.void && i <= top).length}) button`, "aria-pressed"), "false");
    pic = await canvasPicture();
    agree = maskAgreement(pic, 0, pic.width, map, legend, new Set([top]));
    console.log(`${legend[top].name} hidden: ${(agree * 100).toFixed(2)} % of pixels as expected`);
    assert.ok(agree >= 0.98, `hidden class agreement ${agree}`);
    await page.getByRole("button", { name: legend[top].name, exact: true }).click();

    // Pointing at a pixel names its class: the middle of a uniform 7x7 patch of each of
    // three classes.
    const box = await page.locator("#view").boundingBox();
    const named = [];
    for (const c of [...counts.keys()].filter((c) => !legend[c].void).slice(0, 3)) {
      const spot = uniformSpot(map, c);
      if (!spot) continue;
      await page.mouse.move(box.x + ((spot[0] + 0.5) / map.width) * box.width, box.y + ((spot[1] + 0.5) / map.height) * box.height);
      await page.waitForFunction((name) => !document.getElementById("probe").hidden && document.getElementById("probe").textContent === name, legend[c].name, { timeout: 20000 });
      named.push(legend[c].name);
    }
    console.log(`pointing named: ${named.join(", ")}`);
    assert.ok(named.length >= 2, "at least two classes were pointed at");

    // The snapshot is what is shown: the same pixels as the canvas on screen (the mask view,
    // which the legend does not cover here).
    const snapshot = async () => {
      const [download] = await Promise.all([page.waitForEvent("download"), page.click("#snapshot")]);
      return decodePng(page, readFileSync(await download.path()));
    };
    pic = await canvasPicture();
    const shot = await snapshot();
    assert.ok(Math.abs(shot.width - pic.width) <= 1 && Math.abs(shot.height - pic.height) <= 1, `snapshot ${shot.width}x${shot.height}, canvas ${pic.width}x${pic.height}`);
    let close = 0;
    for (let y = 0; y < shot.height; y++)
      for (let x = 0; x < shot.width; x++) {
        const [i, j] = [(y * shot.width + x) * 4, (Math.min(y, pic.height - 1) * pic.width + Math.min(x, pic.width - 1)) * 4];
        if ([0, 1, 2].every((k) => Math.abs(shot.data[i + k] - pic.data[j + k]) <= 3)) close++;
      }
    const same = close / (shot.width * shot.height);
    console.log(`snapshot ${shot.width}x${shot.height}: ${(same * 100).toFixed(2)} % of pixels as on screen`);
    assert.ok(same >= 0.98, `snapshot agreement ${same}`);

    // Side by side: twice as wide, the frame on the left, the mask on the right (read from a
    // snapshot: the legend covers part of a canvas this wide).
    await page.selectOption("#view-mode", "side");
    const side = await page.locator("#view").boundingBox();
    assert.ok(Math.abs(side.width / side.height - (2 * 480) / 360) < 0.03, `side-by-side aspect ${side.width / side.height}`);
    pic = await snapshot();
    const half = Math.floor(pic.width / 2);
    agree = maskAgreement(pic, half, half, map, legend);
    console.log(`side by side ${pic.width}x${pic.height}: right half ${(agree * 100).toFixed(2)} % mask colours`);
    assert.ok(agree >= 0.98, `side-by-side mask agreement ${agree}`);
    assert.ok(maskAgreement(pic, 0, half, map, legend) < 0.5, "the left half is the picture, not the mask");

    // Sharp edges: the mask's classes are decided at the canvas's resolution along the
    // picture's edges. Inside regions they are the network's; near boundaries some move.
    await page.selectOption("#view-mode", "mask");
    await page.check("#edges");
    pic = await canvasPicture();
    agree = maskAgreement(pic, 0, pic.width, map, legend);
    console.log(`sharp edges, mask view ${pic.width}x${pic.height}: ${(agree * 100).toFixed(2)} % of pixels show their network pixel's class colour`);
    assert.ok(agree >= 0.85 && agree < 0.998, `sharp edges move boundaries only: ${agree}`);
    // Pointing asks the same function the overlay draws with.
    const c = named.length ? legend.findIndex((l) => l.name === named[0]) : -1;
    const spot = uniformSpot(map, c);
    assert.ok(spot, "a uniform patch to point at");
    const mask = await page.locator("#view").boundingBox();
    await page.mouse.move(mask.x + ((spot[0] + 0.5) / map.width) * mask.width, mask.y + ((spot[1] + 0.5) / map.height) * mask.height);
    await page.waitForFunction((name) => !document.getElementById("probe").hidden && document.getElementById("probe").textContent === name, legend[c].name, { timeout: 20000 });
  }));

const hideTimestamps = {
  // An adapter without timestamp queries (most phones): the feature is hidden from the page.
  script: () => {
    const get = Object.getOwnPropertyDescriptor(GPUAdapter.prototype, "features").get;
    Object.defineProperty(GPUAdapter.prototype, "features", {
      get() {
        const f = new Set(get.call(this));
        f.delete("timestamp-query");
        return f;
      },
    });
  },
};

test("the GPU time panel: total and slowest dispatches, updated while open; says so without timestamps", { timeout: 400000 }, async () => {
  await withPage(CAMERA, async ({ page }) => {
    const d = JSON.parse(await page.evaluate(() => window.enet.app.describe()));
    assert.equal(d.timestamps, true);
    // A configuration asked for by a name that is none is said, and the default runs,
    // neither measured nor remembered.
    await page.waitForFunction(() => /config=fused f64 1x1: expected/.test(document.getElementById("message-text").textContent), null, { timeout: 30000 });
    const tuning = await page.evaluate(() => window.enet.tuning());
    assert.deepEqual([tuning.state, tuning.chosen, tuning.config], ["off", "default", `fused ${d.precision} 64x64`]);
    // f16 storage where the GPU offers shader-f16, said in the status line.
    console.log(`precision ${d.precision} (shader-f16 ${d.f16})`);
    assert.equal(d.precision, d.f16 ? "f16" : "f32");
    assert.match(await page.textContent("#status"), new RegExp(`· \\S+ ${d.precision}[^·]* \\(default\\)$`));
    await page.click("#timing summary");
    await page.waitForSelector("#timing table", { timeout: 60000 });
    const read = () => page.$$eval("#timing tr", (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
    const rows = await read();
    console.log(`timing panel:\n${rows.map((r) => "  " + r.join("  ")).join("\n")}`);
    const [total, ...slowest] = rows;
    const n = Number(total[0].match(/total, (\d+) dispatches/)[1]);
    const totalMs = parseFloat(total[1]);
    assert.equal(n, 29, "the fused plan's dispatches (runtime::fuse)");
    assert.ok(totalMs > 0);
    assert.equal(slowest.length, 8);
    const ms = slowest.map((r) => parseFloat(r[1]));
    assert.deepEqual(ms, [...ms].sort((a, b) => b - a), "slowest first");
    assert.ok(ms.reduce((a, b) => a + b, 0) <= totalMs * 1.0001);
    // Updated while frames run: timings of a later frame arrive while the panel is open.
    const stagesAt = () => performance.now() - JSON.parse(window.enet.app.timings()).stages_age_ms;
    const at0 = await page.evaluate(stagesAt);
    await page.waitForFunction((a) => performance.now() - JSON.parse(window.enet.app.timings()).stages_age_ms > a + 1, at0, RUNNING);
    console.log(`timings refreshed ${Math.round((await page.evaluate(stagesAt)) - at0)} ms after the first`);
    // Closed, the frames go back to one timestamp pair.
    await page.click("#timing summary");
    assert.equal(await page.evaluate(() => document.getElementById("timing").open), false);
  }, { url: `${base}?backend=webgpu&config=fused+f64+1x1` });
  // ?precision=f32 forces f32 storage.
  await withPage(
    CAMERA,
    async ({ page }) => {
      assert.equal(JSON.parse(await page.evaluate(() => window.enet.app.describe())).precision, "f32");
    },
    { url: `${gpuUrl(base)}&precision=f32` },
  );
  await withPage(
    CAMERA,
    async ({ page }) => {
      await page.click("#timing summary");
      await page.waitForFunction(() => /Unavailable/.test(document.getElementById("timing-body").textContent), null, { timeout: 20000 });
      console.log(`without timestamps: ${await page.textContent("#timing-body")}`);
      assert.match(await page.textContent("#stats"), /GPU n\/a/);
    },
    { init: hideTimestamps },
  );
});

test("tuning: the first overlay on the default, configurations timed between frames (a family far slower than the fastest on one shape only), the fastest runs and is remembered", { timeout: 600000 }, () =>
  withPage(
    CAMERA,
    async ({ page }) => {
      page.on("console", (m) => m.text().startsWith("tuning:") && console.log(m.text()));
      const first = await page.evaluate(() => window.enet.tuning());
      assert.equal(first.chosen, "default", "the first overlay comes from the default configuration");
      const d = JSON.parse(await page.evaluate(() => window.enet.app.describe()));
      const before = await frames(page);
      // Trials run between camera frames; the status line says so meanwhile.
      await page.waitForFunction(() => window.enet.tuning().state === "measuring", null, { timeout: 120000, polling: 100 });
      await page.waitForFunction(() => /measuring the others, \d+\/\d+/.test(document.getElementById("status").textContent), null, {
        timeout: 60000,
        polling: 200,
      });
      const during = await frames(page);
      await page.waitForFunction(() => window.enet.tuning().state === "done", null, { timeout: 500000, polling: 500 });
      const t = await page.evaluate(() => window.enet.tuning());
      const after = await frames(page);
      console.log(`tuning on ${d.adapter} (${Math.round(t.took_ms)} ms; camera frames shown meanwhile: ${after - during}):`);
      console.log("  configuration         ms/frame  compile ms  first frame ms");
      for (const r of t.trials) {
        const num = (x) => (x == null ? "-" : String(Math.round(x)));
        const row = r.ms != null ? `${r.ms.toFixed(1).padStart(9)} ${num(r.compile_ms).padStart(11)} ${num(r.first_frame_ms).padStart(15)}` : `  ${r.error}`;
        console.log(`  ${r.config.padEnd(20)} ${row}${r.config === t.config ? "  chosen" : ""}`);
      }
      assert.ok(during > before || after > during, "camera frames went on while the trials ran");
      // Every configuration the device can run, none it cannot: f16 only with shader-f16.
      assert.equal(t.trials.length, d.f16 ? 10 : 5);
      assert.ok(t.trials.every((r) => d.f16 || /f32/.test(r.config)));
      const timed = t.trials.filter((r) => r.ms != null);
      assert.ok(timed.length > 0);
      const fastest = timed.reduce((a, b) => (b.ms < a.ms ? b : a));
      // Each family (fused or not, precision) is timed on the running shape first; another
      // shape is passed over only where its family's lead took over twice the fastest's time.
      const family = (c) => c.split(" ").slice(0, 2).join(" ");
      const shape = first.config.split(" ")[2]; // the default's workgroup shape, e.g. 64x64
      for (const r of t.trials.filter((r) => r.ms == null)) {
        const l = t.trials.find((x) => family(x.config) === family(r.config) && x.config.endsWith(` ${shape}`));
        assert.ok(l && l !== r && l.ms != null, `${r.config}: ${r.error}`);
        assert.ok(l.ms > 2 * fastest.ms, `${r.config} passed over, but its lead took ${l.ms} ms against ${fastest.ms}`);
        assert.match(r.error, new RegExp(`^passed over: ${l.config} took`));
      }
      assert.equal(t.chosen, "measured");
      assert.equal(t.config, fastest.config);
      await page.waitForFunction((c) => document.getElementById("status").textContent.endsWith(`${c} (measured fastest here)`), t.config, {
        timeout: 30000,
      });
      const stored = JSON.parse(await page.evaluate(() => localStorage.getItem("enet-tuning")));
      assert.equal(stored.entries.at(-1).config, t.config);
      // Frames go on with the chosen configuration, with the same classes as the native engine.
      await moreFrames(page, await frames(page));
      await pageMatchesNative(page, "tuned");
      // A reload runs the remembered choice without trials.
      await page.reload();
      await page.waitForFunction(() => window.enet.state === "running", null, RUNNING);
      await page.waitForFunction(() => window.enet.tuning().chosen === "remembered", null, { timeout: 120000, polling: 200 });
      const again = await page.evaluate(() => window.enet.tuning());
      assert.equal(again.config, t.config);
      assert.deepEqual(again.trials, []);
      await page.waitForFunction(() => /measured fastest here before\)$/.test(document.getElementById("status").textContent), null, { timeout: 30000 });
    },
    { url: `${base}?backend=webgpu`, size: 96 },
  ));

test("adaptive size: steps down when frames are slow, back up when there is room, and a chosen size pins it", { timeout: 400000 }, () =>
  withPage(
    CAMERA,
    async ({ page }) => {
      const side = () => page.evaluate(() => Math.min(...window.enet.netSize()));
      assert.equal(await page.inputValue("#resolution"), "auto");
      // SwiftShader cannot keep up with a 30 fps camera at any size: down it goes.
      const start = await side();
      await page.waitForFunction((s) => Math.min(...window.enet.netSize()) < s, start, { timeout: 120000 });
      await page.waitForFunction(() => / auto /.test(document.getElementById("stats").textContent), null, { timeout: 20000 });
      const [w, h] = await page.evaluate(() => window.enet.netSize());
      const label = await page.textContent('#resolution option[value="auto"]');
      console.log(`adaptive: ${start} -> ${Math.min(w, h)}; menu says "${label}"; stats "${await page.textContent("#stats")}"`);
      // A frame time of 20 s leaves room even here: up it goes.
      const low = await side();
      await page.evaluate(() => window.enet.app.set_target_fps(0.05));
      await page.waitForFunction((s) => Math.min(...window.enet.netSize()) > s, low, { timeout: 120000 });
      console.log(`adaptive with a 20 s frame time: ${low} -> ${await side()}`);
      // Pinned: the size stays however slow the frames.
      await page.evaluate(() => window.enet.app.set_target_fps(1000));
      await page.selectOption("#resolution", "192");
      const n = await frames(page);
      await moreFrames(page, n + 8);
      assert.deepEqual(await page.evaluate(() => window.enet.netSize()), [256, 192]);
      assert.equal(await page.evaluate(() => window.enet.app.adaptive()), false);
      assert.doesNotMatch(await page.textContent("#stats"), / auto /);
    },
    { size: "auto" },
  ));

test("a portrait camera: Auto stays within its own size, a larger pinned size runs larger, and after each change the classes shown and the frame's own match the native engine's", { timeout: 400000 }, () =>
  withPage(
    [...WEBGPU_FLAGS, ...cameraFlags(smallPortrait)],
    async ({ page }) => {
      // After a size change, a few frames of the still camera: smoothing has nothing left
      // to blend in, so what is shown must be the frame's own classes.
      const check = async (label) => {
        await moreFrames(page, (await frames(page)) + 3);
        const [w, h] = await page.evaluate(() => window.enet.netSize());
        await pageMatchesNative(page, `${label} ${w}x${h}, the frame's own`, { min: 0.999 });
        await pageMatchesNative(page, `${label} ${w}x${h}, shown`, { min: 0.999, raw: false });
        return [w, h];
      };
      const [w, h] = await check("portrait 120x160, Auto");
      assert.ok(w <= 120 && h <= 160, `Auto ran at ${w}x${h}, above the camera's 120x160`);
      await page.selectOption("#resolution", "192");
      await page.waitForFunction(() => window.enet.netSize()[0] === 192, null, RUNNING);
      assert.deepEqual(await check("portrait 120x160, pinned"), [192, 256]);
      await page.selectOption("#resolution", "auto");
      await page.waitForFunction(() => window.enet.netSize()[0] <= 120, null, RUNNING);
      await check("portrait 120x160, Auto again");
    },
    { size: "auto" },
  ));

/** An init script whose camera is a generated track: frames of `w` x `h` (none when
 * `frames` is false), and a camera permission the test can withdraw (`__revokeCamera()`). */
const fakeCamera = {
  script: ({ w, h, frames }) => {
    navigator.mediaDevices.getUserMedia = async () => {
      const track = new MediaStreamTrackGenerator({ kind: "video" });
      const writer = track.writable.getWriter();
      if (frames) {
        const canvas = new OffscreenCanvas(w, h);
        const g = canvas.getContext("2d");
        let t = 0;
        const push = () => {
          if (track.readyState === "ended") return;
          g.fillStyle = `rgb(${(t * 7) % 255}, 120, 80)`;
          g.fillRect(0, 0, w, h);
          writer.write(new VideoFrame(canvas, { timestamp: t++ * 33333 })).catch(() => {});
          setTimeout(push, 100);
        };
        push();
      }
      return new MediaStream([track]);
    };
    const status = new EventTarget();
    status.state = "granted";
    const query = navigator.permissions.query.bind(navigator.permissions);
    navigator.permissions.query = (d) => (d && d.name === "camera" ? Promise.resolve(status) : query(d));
    window.__revokeCamera = () => {
      status.state = "denied";
      status.dispatchEvent(new Event("change"));
    };
  },
};

/** The page's message box offers a file picker, and a picture opened with it runs. */
async function fileInsteadWorks(page) {
  await page.setInputFiles("#message-actions input[type=file]", frame);
  await page.waitForFunction(() => window.enet.sourceSize().kind === "image" && window.enet.state === "running", null, RUNNING);
  await page.waitForFunction(() => window.enet.netSize()[0] === 320, null, RUNNING);
}

test("odd cameras: 1x1 and 4000x16 frames, a camera with no frames, a withdrawn permission: a message, and a file still works", { timeout: 400000 }, async () => {
  for (const [w, h] of [
    [1, 1],
    [4000, 16],
  ]) {
    await withPage(
      WEBGPU_FLAGS,
      async ({ page }) => {
        await page.waitForFunction(() => window.enet.state === "error", null, RUNNING);
        const text = await page.textContent("#message-text");
        console.log(`${w}x${h} camera: ${text}`);
        assert.match(text, new RegExp(`camera's picture cannot be used: a ${w}x${h} frame cannot be segmented: `));
        await fileInsteadWorks(page);
      },
      { wait: false, init: { script: fakeCamera.script, arg: { w, h, frames: true } } },
    );
  }
  await withPage(
    WEBGPU_FLAGS,
    async ({ page }) => {
      await page.waitForFunction(() => window.enet.state === "no-camera", null, { timeout: 60000 });
      const text = await page.textContent("#message-text");
      console.log(`camera without frames: ${text}`);
      assert.match(text, /camera gives no picture/);
      await fileInsteadWorks(page);
    },
    { wait: false, init: { script: fakeCamera.script, arg: { w: 320, h: 240, frames: false } } },
  );
  await withPage(
    WEBGPU_FLAGS,
    async ({ page }) => {
      await page.evaluate(() => window.__revokeCamera());
      await page.waitForFunction(() => window.enet.state === "no-camera", null, { timeout: 20000 });
      const text = await page.textContent("#message-text");
      console.log(`permission withdrawn: ${text}`);
      assert.match(text, /Camera permission was withdrawn/);
      assert.equal(await page.evaluate(() => window.enet.cameraOn()), false);
      await fileInsteadWorks(page);
    },
    { init: { script: fakeCamera.script, arg: { w: 320, h: 240, frames: true } } },
  );
});

const device = (name) => {
  const { defaultBrowserType, ...options } = devices[name];
  return options;
};

/** Where things are on the page, in CSS pixels of the document (scrolled views included). */
async function layout(page) {
  return page.evaluate(() => {
    const box = (el) => {
      const b = el.getBoundingClientRect();
      return { left: b.left + scrollX, top: b.top + scrollY, width: b.width, height: b.height };
    };
    const canvas = document.getElementById("view");
    const stage = document.getElementById("stage");
    return {
      vw: innerWidth,
      vh: innerHeight,
      dpr: devicePixelRatio,
      scrollWidth: document.documentElement.scrollWidth,
      canvas: box(canvas),
      stage: box(stage),
      backing: [canvas.width, canvas.height],
      legend: [...document.querySelectorAll("#legend button")].map((b) => ({
        text: b.textContent,
        font: parseFloat(getComputedStyle(b).fontSize),
        ...box(b),
      })),
    };
  });
}

/** Each control, scrolled into view, lies inside the viewport and is what a tap there hits;
 * on a touch screen each is at least 24 px tall. */
async function controlsReachable(page, touch) {
  const controls = "footer button, footer select, footer label.file, footer label:has(input[type=checkbox]), footer input[type=range], #timing summary";
  const results = await page.$$eval(controls, (els) =>
    els.map((el) => {
      el.scrollIntoView({ block: "center", inline: "center" });
      const b = el.getBoundingClientRect();
      const hit = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
      return {
        name: el.id || el.getAttribute("aria-label") || el.textContent.trim().slice(0, 20),
        inside: b.left >= 0 && b.top >= 0 && b.right <= innerWidth + 0.5 && b.bottom <= innerHeight + 0.5,
        hit: !!hit && (hit === el || el.contains(hit) || hit.contains(el)),
        height: b.height,
      };
    }),
  );
  assert.ok(results.length >= 10, `${results.length} controls`);
  for (const r of results) {
    assert.ok(r.inside, `${r.name} is outside the viewport`);
    assert.ok(r.hit, `${r.name} is covered`);
    if (touch) assert.ok(r.height >= 24, `${r.name} is ${r.height} px tall`);
  }
  await page.evaluate(() => scrollTo(0, 0));
  return results.length;
}

async function deviceCase(name, options, cameraFile, check) {
  await withPage(
    [...WEBGPU_FLAGS, ...cameraFlags(cameraFile)],
    async ({ page }) => {
      const l = await layout(page);
      console.log(
        `${name}: viewport ${l.vw}x${l.vh} at ${l.dpr}x; canvas ${l.canvas.width.toFixed(0)}x${l.canvas.height.toFixed(0)} css at ` +
          `(${l.canvas.left.toFixed(0)}, ${l.canvas.top.toFixed(0)}), drawn at ${l.backing.join("x")}; legend ${l.legend.length} classes at ${l.legend[0].font} px`,
      );
      assert.ok(l.scrollWidth <= l.vw, `horizontal scrolling: ${l.scrollWidth} > ${l.vw}`);
      // Drawn at the screen's pixel density.
      assert.ok(Math.abs(l.backing[0] - l.canvas.width * l.dpr) <= 1.5, `canvas drawn at ${l.backing[0]} for ${l.canvas.width} css px`);
      assert.ok(Math.abs(l.backing[1] - l.canvas.height * l.dpr) <= 1.5);
      // The legend is readable: text of 11 px or more, each entry on screen, none overlapping.
      for (const e of l.legend) {
        assert.ok(e.font >= 11, `legend ${e.text} at ${e.font} px`);
        assert.ok(e.left >= 0 && e.left + e.width <= l.vw + 0.5, `legend ${e.text} off screen`);
      }
      for (let i = 0; i < l.legend.length; i++)
        for (let j = i + 1; j < l.legend.length; j++) {
          const [a, b] = [l.legend[i], l.legend[j]];
          const overlap = a.left < b.left + b.width - 0.5 && b.left < a.left + a.width - 0.5 && a.top < b.top + b.height - 0.5 && b.top < a.top + a.height - 0.5;
          assert.ok(!overlap, `legend ${a.text} overlaps ${b.text}`);
        }
      await check(page, l);
      const n = await controlsReachable(page, options.hasTouch);
      mkdirSync(shots, { recursive: true });
      const file = join(shots, `${name.replace(/\W+/g, "-")}.png`);
      // A screenshot waits for a frame of the compositor, which a software GPU busy with a
      // large frame delays: as long as any other wait here, not Playwright's 30 s.
      await page.screenshot({ path: file, fullPage: true, ...RUNNING });
      console.log(`${name}: ${n} controls reachable; screenshot ${file}`);
    },
    { device: options },
  );
}

test("as a phone in portrait: a portrait camera runs portrait, fills the width, matches the native engine; controls reachable", { timeout: 300000 }, () =>
  deviceCase("phone portrait", device("Pixel 7"), portraitCamera, async (page, l) => {
    assert.ok(l.canvas.width >= l.vw - 1, `the picture is ${l.canvas.width} of ${l.vw} px wide`);
    assert.ok(l.canvas.height > l.canvas.width, "portrait picture");
    const { map } = await pageMatchesNative(page, "portrait camera");
    assert.deepEqual([map.width, map.height], [SIZE[1], SIZE[0]]);
  }));

test("as a phone in landscape: the picture fills the height, controls in a column beside it", { timeout: 300000 }, () =>
  deviceCase("phone landscape", device("Pixel 7 landscape"), camera, async (page, l) => {
    assert.ok(l.canvas.height >= l.vh - 1, `the picture is ${l.canvas.height} of ${l.vh} px tall`);
    assert.ok(l.canvas.left + l.canvas.width <= l.vw);
    const footer = await page.locator("footer").boundingBox();
    assert.ok(footer.x >= l.canvas.left + l.canvas.width - 1, "the controls sit beside the picture");
  }));

test("as a laptop: the picture fills the stage's width or height, all of it on screen", { timeout: 300000 }, () =>
  deviceCase("laptop", device("Desktop Chrome HiDPI"), camera, async (page, l) => {
    const fillsWidth = l.canvas.width >= l.stage.width - 1;
    const fillsHeight = l.canvas.height >= l.stage.height - 1;
    assert.ok(fillsWidth || fillsHeight, `canvas ${l.canvas.width}x${l.canvas.height} in a ${l.stage.width}x${l.stage.height} stage`);
    assert.ok(l.canvas.top + l.canvas.height <= l.vh, "all of the picture is on screen");
  }));

// The CPU path: the CPU engine (wasm SIMD, one thread) in a worker, drawn with Canvas 2D.

const cpuUrl = () => `${base}?backend=cpu`;
const backendOf = (page) => page.evaluate(() => window.enet.backend());

test("CPU path (?backend=cpu): the camera runs in the worker, its classes match the native CPU engine's; a picture, the views, hiding a class, pointing", { timeout: 300000 }, () =>
  withPage(
    CAMERA,
    async ({ page, requests }) => {
      assert.equal(await backendOf(page), "cpu");
      assert.match(await page.textContent("#status"), /^CPU \(wasm SIMD, 1 thread\) · paper ENet, 12 classes$/);
      // Controls that mean something on the GPU only are gone.
      assert.ok(await page.isHidden("#timing"));
      assert.ok(await page.isHidden("#edges"));
      const n0 = await frames(page);
      const t0 = Date.now();
      await moreFrames(page, n0 + 4);
      const fps = ((await frames(page)) - n0) / ((Date.now() - t0) / 1000);
      await page.waitForFunction(() => /FPS · 320×240 · CPU [\d.]+ ms · skipped \d+/.test(document.getElementById("stats").textContent), null, { timeout: 20000 });
      console.log(`CPU path: ${fps.toFixed(1)} FPS at 320x240; stats "${await page.textContent("#stats")}"`);
      // A 30 fps camera outruns the engine: frames are skipped, never queued.
      assert.ok(await page.evaluate(() => window.enet.app.skipped()) > 0, "camera frames were skipped");
      const { map, src } = await pageMatchesNative(page, "CPU path, camera frame", { backend: "cpu", min: 0.999 });
      assert.deepEqual([map.width, map.height], SIZE);
      assert.deepEqual([src.width, src.height], SIZE);
      assert.ok(new Set(map.data).size >= 3, "a street scene has several classes");
      const maps = await page.evaluate(async () => {
        const m = await window.enet.classMaps();
        return { width: m.width, shown: m.shown.length, raw: m.raw.length };
      });
      assert.deepEqual(maps, { width: SIZE[0], shown: SIZE[0] * SIZE[1], raw: SIZE[0] * SIZE[1] });

      // A picture file: resized by the worker's engine, classes as the native CPU engine's.
      await showStill(page);
      const still = await pageClassMap(page);
      assert.deepEqual([still.width, still.height], SIZE);
      const agree = agreement(still.data, nativeClasses(frame, SIZE, "cpu"));
      console.log(`CPU path, image file: page vs native (cpu) class agreement ${agree.toFixed(5)}`);
      assert.ok(agree >= 0.999, `agreement ${agree}`);

      // Drawn as the GPU path draws: each canvas pixel shows its nearest network pixel's class.
      const legend = await page.evaluate(() => JSON.parse(window.enet.app.legend()));
      const shown = await pageClassMap(page, false);
      const canvasPicture = async () => decodePng(page, await page.locator("#view").screenshot(RUNNING));
      await page.selectOption("#view-mode", "mask");
      let pic = await canvasPicture();
      let ok = maskAgreement(pic, 0, pic.width, shown, legend);
      console.log(`CPU path, mask view ${pic.width}x${pic.height}: ${(ok * 100).toFixed(2)} % of pixels show their class colour`);
      assert.ok(ok >= 0.98, `mask view agreement ${ok}`);
      const counts = new Map();
      for (const c of shown.data) counts.set(c, (counts.get(c) || 0) + 1);
      const [top] = [...counts.entries()].filter(([c]) => !legend[c].void).sort((a, b) => b[1] - a[1])[0];
      await page.getByRole("button", { name: legend[top].name, exact: true }).click();
      pic = await canvasPicture();
      ok = maskAgreement(pic, 0, pic.width, shown, legend, new Set([top]));
      console.log(`CPU path, ${legend[top].name} hidden: ${(ok * 100).toFixed(2)} % of pixels as expected`);
      assert.ok(ok >= 0.98, `hidden class agreement ${ok}`);
      await page.getByRole("button", { name: legend[top].name, exact: true }).click();
      // Side by side, read from a snapshot (the legend covers part of a canvas this wide).
      await page.selectOption("#view-mode", "side");
      const [download] = await Promise.all([page.waitForEvent("download"), page.click("#snapshot")]);
      pic = await decodePng(page, readFileSync(await download.path()));
      const half = Math.floor(pic.width / 2);
      ok = maskAgreement(pic, half, half, shown, legend);
      console.log(`CPU path, side by side ${pic.width}x${pic.height}: right half ${(ok * 100).toFixed(2)} % mask colours`);
      assert.ok(ok >= 0.98, `side-by-side agreement ${ok}`);
      assert.ok(maskAgreement(pic, 0, half, shown, legend) < 0.5, "the left half is the picture");

      // Pointing at a uniform patch names its class, on the left (picture) half too.
      await page.selectOption("#view-mode", "overlay");
      const spot = uniformSpot(shown, top);
      assert.ok(spot, "a uniform patch to point at");
      const [u, v] = [(spot[0] + 0.5) / shown.width, (spot[1] + 0.5) / shown.height];
      assert.equal(await page.evaluate(([x, y]) => window.enet.classAt(x, y), [u, v]), top);
      const box = await page.locator("#view").boundingBox();
      await page.mouse.move(box.x + u * box.width, box.y + v * box.height);
      await page.waitForFunction((name) => !document.getElementById("probe").hidden && document.getElementById("probe").textContent === name, legend[top].name, { timeout: 20000 });
      assertLocalOnly(requests);
    },
    { url: cpuUrl() },
  ));

test("CPU path: automatic size steps up where there is room, a chosen size pins it, and a stopped worker is replaced", { timeout: 300000 }, () =>
  withPage(
    CAMERA,
    async ({ page }) => {
      // Automatic size starts at the smallest step on the CPU.
      assert.deepEqual(await page.evaluate(() => window.enet.netSize()), [128, 96]);
      await page.evaluate(() => window.enet.app.set_target_fps(0.05));
      await page.waitForFunction(() => Math.min(...window.enet.netSize()) > 96, null, { timeout: 120000 });
      console.log(`CPU path, automatic size with a 20 s frame time: 128x96 -> ${await page.evaluate(() => window.enet.netSize().join("x"))}`);
      await page.selectOption("#resolution", "192");
      await page.waitForFunction(() => window.enet.netSize().join() === "256,192", null, RUNNING);
      await moreFrames(page, (await frames(page)) + 2);
      assert.deepEqual(await page.evaluate(() => window.enet.netSize()), [256, 192]);
      await page.waitForFunction(() => /256×192 · CPU/.test(document.getElementById("stats").textContent), null, { timeout: 20000 });
      // The worker stops (as a crashed engine would): a new one takes over.
      await page.evaluate(() => window.enet.app.destroy_device());
      await page.waitForFunction(() => window.enet.recoveries === 1 && window.enet.frames() >= 1, null, RUNNING);
      assert.equal(await page.evaluate(() => window.enet.state), "running");
      assert.deepEqual(await page.evaluate(() => window.enet.netSize()), [256, 192]);
    },
    { url: cpuUrl(), size: "auto" },
  ));

/** An init script: a browser without WebGPU. */
const noWebGPU = { script: () => delete Navigator.prototype.gpu };

/** An init script: the adapter looks like a hardware GPU, but gives no device. */
const noDevice = {
  script: () => {
    Object.defineProperty(GPUAdapter.prototype, "info", {
      configurable: true,
      get: () => ({ vendor: "acme", architecture: "test", device: "", description: "a GPU that gives no device", isFallbackAdapter: false, subgroupMinSize: 4, subgroupMaxSize: 64 }),
    });
    GPUAdapter.prototype.requestDevice = () => Promise.reject(new DOMException("no device in this test", "OperationError"));
  },
};

test("CPU path by itself: without WebGPU, with only a software adapter, or with a GPU that gives no device", { timeout: 300000 }, async () => {
  for (const [what, flags, init, why] of [
    ["no WebGPU", CAMERA, noWebGPU, /offers no WebGPU/],
    ["WebGPU turned off", ["--disable-features=WebGPU", ...CAMERA_FLAGS], null, /offers no adapter/],
    ["SwiftShader only", CAMERA, null, /software one \(google swiftshader\)/],
    ["no device", CAMERA, noDevice, /GPU could not start \(.*no device in this test/],
  ]) {
    await withPage(
      flags,
      async ({ page, requests }) => {
        if (what === "no WebGPU") assert.equal(await page.evaluate(() => "gpu" in navigator), false);
        assert.equal(await backendOf(page), "cpu");
        assert.match(await page.textContent("#status"), /^CPU \(wasm SIMD, 1 thread\)/);
        const title = await page.getAttribute("#status", "title");
        console.log(`${what}: ${title}`);
        assert.match(title, why);
        await moreFrames(page, await frames(page));
        const map = await pageClassMap(page);
        assert.deepEqual([map.width, map.height], SIZE);
        assertLocalOnly(requests);
      },
      { url: base, init },
    );
  }
});
