// The web page in Debian Chromium with WebGPU on SwiftShader and a fake webcam.
// Needs: dist/ (trunk build --release), target/release/enet and
// target/release/examples/browser_helper, and ../shared/reference (the peer weights and
// decoded val frames). tests/browser/run.sh prepares all of it.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { WEBGPU_FLAGS, cameraFlags, launch, referenceDir, serve } from "./harness.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const dist = join(root, "dist");
const reference = referenceDir(root);
const enet = join(root, "target/release/enet");
const helper = join(root, "target/release/examples/browser_helper");
const tmp = mkdtempSync(join(tmpdir(), "enet-browser-"));
const frame = join(reference, "val-decoded/0016E5_07959.png");
const weights = join(tmp, "peer.safetensors");
const camera = join(tmp, "camera.y4m");
// The network runs small in the browser: SwiftShader computes on the CPU.
const SIZE = [320, 240];

const CAMERA_FLAGS = cameraFlags(camera);
let server;
let base;

before(async () => {
  for (const f of [join(dist, "index.html"), enet, helper, frame]) assert.ok(existsSync(f), `${f} is missing`);
  execFileSync(enet, ["import", "--layout", "pytorch-enet", join(reference, "peer-enet-camvid.safetensors"), "-o", weights]);
  execFileSync(helper, ["y4m", camera, String(SIZE[0]), String(SIZE[1]), "90", frame]);
  server = await serve(dist);
  base = server.base;
});

after(() => server && server.close());

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

const RUNNING = { timeout: 240000 };

/** Page classes against the native engine's on the pixels the browser decoded. */
async function pageMatchesNative(page, label) {
  const map = await pageClassMap(page);
  const src = await page.evaluate(() => {
    const d = window.enet.sourcePixels();
    return { width: d.width, height: d.height, data: Array.from(d.data) };
  });
  const raw = join(tmp, `${label}.rgba`);
  writeFileSync(raw, Buffer.from(src.data));
  const agree = agreement(map.data, nativeClasses(`${raw}:${src.width}x${src.height}`, [map.width, map.height]));
  console.log(`${label}: page vs native class agreement ${agree.toFixed(5)}`);
  assert.ok(agree >= 0.99, `${label}: agreement ${agree}`);
  return { map, src };
}

/**
 * Runs `body({ page, requests })` on a fresh browser. With `model` (the default) the peer
 * weights are loaded first and the camera is running. The page's console is printed when the
 * body fails; the browser always closes.
 */
async function withPage(flags, body, { model = true } = {}) {
  const { ctx, page, requests, logs } = await launch(tmp, flags);
  try {
    await page.goto(base);
    if (model) {
      await loadWeights(page);
      await page.waitForFunction(() => window.enet.state === "running", null, RUNNING);
    }
    await body({ page, requests });
  } catch (e) {
    console.log(logs.join("\n"));
    throw e;
  } finally {
    await ctx.close();
  }
}

const CAMERA = [...WEBGPU_FLAGS, ...CAMERA_FLAGS];
const frames = (page) => page.evaluate(() => window.enet.frames());
const moreFrames = (page, n) => page.waitForFunction((k) => window.enet.frames() > k, n, RUNNING);

test("camera: the overlay appears and the page's classes match the native engine's", { timeout: 300000 }, () =>
  withPage(CAMERA, async ({ page, requests }) => {
    assert.ok((await frames(page)) >= 1);
    const { map, src } = await pageMatchesNative(page, "camera frame");
    assert.deepEqual([map.width, map.height], SIZE);
    assert.deepEqual([src.width, src.height], SIZE);
    assert.ok(new Set(map.data).size >= 3, "a street scene has several classes");
    const shot = await page.locator("#view").screenshot();
    writeFileSync(join(tmp, "page.png"), shot);
    assert.ok(shot.length > 20000, "the canvas shows a picture, not a blank");
    assertLocalOnly(requests);
  }));

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
    assert.match(await page.textContent("#status"), /pytorch-enet/);
    await page.setInputFiles("#weights", join(root, "tests/fixtures/paper-random.safetensors"));
    await page.waitForFunction(() => /paper ENet/.test(document.getElementById("status").textContent), null, { timeout: 30000 });
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
    const n = await frames(page);
    await page.click("text=Restart camera");
    await page.waitForFunction((k) => window.enet.state === "running" && window.enet.frames() > k, n, RUNNING);
  }));

test("without WebGPU the page says so and names the browsers that have it", { timeout: 120000 }, () =>
  withPage(
    ["--disable-features=WebGPU"],
    async ({ page, requests }) => {
      await page.waitForFunction(() => window.enet && window.enet.state === "no-webgpu", null, { timeout: 60000 });
      const text = await page.textContent("#message-text");
      assert.match(text, /needs WebGPU/);
      assert.match(text, /Chrome/);
      assert.match(text, /Safari/);
      assertLocalOnly(requests);
    },
    { model: false },
  ));

test("camera permission denied: a message and an image or video file instead", { timeout: 180000 }, () =>
  withPage(
    [...WEBGPU_FLAGS, "--use-fake-device-for-media-stream", "--deny-permission-prompts"],
    async ({ page }) => {
      await loadWeights(page);
      await page.waitForFunction(() => window.enet.state === "no-camera", null, { timeout: 120000 });
      assert.match(await page.textContent("#message-text"), /Camera permission was denied/);
      assert.match(await page.textContent("#message-actions"), /Open image or video/);
    },
    { model: false },
  ));

test("odd pictures: each is segmented or refused with a message, and what ran keeps running", { timeout: 600000 }, () =>
  withPage(
    [...WEBGPU_FLAGS, "--use-fake-device-for-media-stream", "--deny-permission-prompts"],
    async ({ page, requests }) => {
      const dir = mkdtempSync(join(tmp, "odd-"));
      execFileSync(helper, ["odd-images", dir, frame]);
      await loadWeights(page);
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
        ["truncated.png", /truncated\.png is not an image this browser can decode/],
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
    { model: false },
  ));
