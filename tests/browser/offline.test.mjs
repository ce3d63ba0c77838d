// Offline use and the app manifest, in Debian Chromium with WebGPU on SwiftShader and a fake
// webcam. Needs dist/ (trunk build --release, with the built-in model); the camera picture is
// made here, so nothing else.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { WEBGPU_FLAGS, cameraFlags, launch, rememberSize, serve } from "./harness.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const dist = join(root, "dist");
const tmp = mkdtempSync(join(tmpdir(), "enet-offline-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

// The smallest network input: SwiftShader computes on the CPU.
const SIZE = [128, 96];
const camera = join(tmp, "camera.y4m");
writeFileSync(camera, streetY4m(...SIZE, 4));
const CAMERA = [...WEBGPU_FLAGS, ...cameraFlags(camera)];
const RUNNING = { timeout: 240000 };

/** A few 4:2:0 frames of a crude street (sky, buildings, road), slightly moving. */
function streetY4m(w, h, count) {
  const parts = [Buffer.from(`YUV4MPEG2 W${w} H${h} F30:1 Ip A1:1 C420jpeg\n`)];
  for (let f = 0; f < count; f++) {
    const y = Buffer.alloc(w * h);
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        const road = r > h * 0.55 && Math.abs(c - w / 2) < (r - h * 0.45) * 1.2;
        const building = r > h * 0.2 && r <= h * 0.55 && (c < w * 0.3 || c > w * 0.7);
        y[r * w + c] = road ? 90 : building ? 60 + ((c + f) % 7) * 4 : r <= h * 0.55 ? 200 : 120;
      }
    }
    const uv = Buffer.alloc((w / 2) * (h / 2) * 2, 128);
    parts.push(Buffer.from("FRAME\n"), y, uv);
  }
  return Buffer.concat(parts);
}

const running = (page) => page.waitForFunction(() => window.enet && window.enet.state === "running", null, RUNNING);
const frames = (page) => page.evaluate(() => window.enet.frames());
const moreFrames = async (page) =>
  page.waitForFunction((k) => window.enet.frames() > k, await frames(page), RUNNING);

/** Requests of the page and of its service worker that went anywhere but `base`. */
function foreign(urls, base) {
  return urls.filter((u) => !u.startsWith(base) && !u.startsWith("blob:") && !u.startsWith("data:"));
}

/** The console line that says offline use is unavailable: already logged, or the next such
 * console event (the listener is in place before anything else can run). */
async function toldOffline(page, logs) {
  const said = (text) => text.includes("Offline use is unavailable");
  let line = logs.find(said);
  if (!line) {
    const m = await page.waitForEvent("console", { predicate: (m) => said(m.text()), ...RUNNING });
    line = `${m.type()}: ${m.text()}`;
  }
  console.log(`told: ${line}`);
  return line;
}

/** Runs `body` on a fresh browser at `server`; prints the console when it fails. */
async function withBrowser(server, body) {
  const { ctx, page, requests, logs } = await launch(tmp, CAMERA);
  // The service worker's own requests are the context's, not the page's.
  ctx.on("request", (r) => requests.push(r.url()));
  try {
    await rememberSize(ctx, SIZE[1]);
    // The GPU path (by itself the page runs on the CPU where the only adapter is SwiftShader).
    await page.goto(`${server.base}?backend=webgpu&config=unfused+f32`);
    await running(page);
    await body({ ctx, page, requests, logs });
    assert.deepEqual(foreign(requests, server.base), [], "requests outside the page's origin");
    assert.deepEqual(
      logs.filter((l) => /Content Security Policy|pageerror/.test(l)),
      [],
      "no script error and nothing refused by the Content-Security-Policy",
    );
  } catch (e) {
    console.log(logs.join("\n"));
    throw e;
  } finally {
    await ctx.close();
  }
}

test("second visit without a network: the page, the wasm and the built-in model come from the service worker", { timeout: 600000 }, async () => {
  assert.ok(existsSync(join(dist, "sw.js")), "dist/sw.js is missing (trunk build --release)");
  const server = await serve(dist);
  let closed = false;
  try {
    await withBrowser(server, async ({ ctx, page }) => {
      // First visit: the worker installs once the page has its model, then takes the page over.
      await page.waitForFunction(async () => (await navigator.serviceWorker.ready).active.state === "activated", null, { timeout: 60000 });
      await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 30000 });
      const stored = await page.evaluate(async () => {
        const names = await caches.keys();
        const keys = (await Promise.all(names.map(async (n) => (await caches.open(n)).keys()))).flat();
        return { names, paths: keys.map((r) => new URL(r.url).pathname).sort() };
      });
      console.log(`stored: ${stored.names.join(", ")}: ${stored.paths.join(" ")}`);
      assert.equal(stored.names.length, 1);
      for (const p of ["/", "/app.js", "/offline.js", "/cpu.js", "/cpu-worker.js", "/enet-wgpu.js", "/enet-wgpu_bg.wasm", "/style.css", "/assets/enet-camvid.safetensors"]) {
        assert.ok(stored.paths.includes(p), `${p} is stored`);
      }
      // The model was downloaded once: the worker's copy came from the HTTP cache.
      const model = server.requests.filter((r) => r.url === "/assets/enet-camvid.safetensors").map((r) => r.status);
      console.log(`model requests, first visit: ${model.join(", ")}`);
      assert.equal(model.filter((s) => s === 200).length, 1, "the model is downloaded once");

      // The manifest as Chromium reads it, and whether it finds the page installable.
      const cdp = await ctx.newCDPSession(page);
      const manifest = await cdp.send("Page.getAppManifest");
      assert.deepEqual(manifest.errors, [], "manifest errors");
      assert.match(manifest.url, /\/manifest\.webmanifest$/);
      const parsed = JSON.parse(manifest.data);
      assert.equal(parsed.start_url, "./");
      assert.equal(parsed.display, "standalone");
      const installable = await cdp.send("Page.getInstallabilityErrors").catch((e) => ({ error: e.message }));
      console.log(`installability: ${JSON.stringify(installable)}`);
      if (installable.installabilityErrors) assert.deepEqual(installable.installabilityErrors, [], "installability errors");
      for (const icon of parsed.icons) {
        const size = await page.evaluate(async (src) => {
          const b = await createImageBitmap(await (await fetch(src)).blob());
          return `${b.width}x${b.height}`;
        }, icon.src);
        assert.equal(size, icon.sizes, `${icon.src} is a ${icon.sizes} picture`);
      }

      // The network goes away: the browser is offline and the server is gone.
      server.close();
      closed = true;
      await assert.rejects(fetch(server.base), "the server no longer answers");
      await ctx.setOffline(true);
      const before = server.requests.length;
      await page.reload();
      await running(page);
      await moreFrames(page);
      assert.equal(server.requests.length, before, "nothing reached the server");
      assert.match(await page.textContent("#status"), /paper ENet, 12 classes/);
      assert.equal(await page.getAttribute("link[rel=manifest]", "href"), "manifest.webmanifest");
      assert.ok(await page.evaluate(() => navigator.serviceWorker.controller !== null), "served by the worker");
      assert.ok(await page.isHidden("#message"), "no message: offline is not a failure");
      // The CPU path offline too: its worker and the wasm it loads come from the worker's cache.
      await page.goto(`${server.base}?backend=cpu`);
      await running(page);
      await moreFrames(page);
      assert.equal(await page.evaluate(() => window.enet.backend()), "cpu");
      assert.equal(server.requests.length, before, "nothing reached the server");
    });
  } finally {
    if (!closed) server.close();
  }
});

test("a service worker that cannot be registered: the failure is told, the page runs on", { timeout: 600000 }, async () => {
  const server = await serve(dist, { missing: ["/sw.js"] });
  try {
    await withBrowser(server, async ({ page, logs }) => {
      const told = await toldOffline(page, logs);
      // Whether the page shows it too is app.js's choice (only when no other message is up).
      console.log(`page message: ${(await page.isHidden("#message")) ? "(none)" : await page.textContent("#message-text")}`);
      assert.match(told, /^warning: Offline use is unavailable: the service worker could not be registered \(.*404.*\)\. The page works as long as it is online\.$/);
      assert.equal(await page.evaluate(() => navigator.serviceWorker.controller), null);
      await moreFrames(page);
      assert.equal(await page.evaluate(() => window.enet.state), "running");
      assert.ok(server.requests.some((r) => r.url === "/sw.js" && r.status === 404), "the worker was asked for");
    });
  } finally {
    server.close();
  }
});

test("a service worker that cannot store a file: the failure is told, the page runs on", { timeout: 600000 }, async () => {
  // An icon the page itself never loads is missing from the site: the worker's install fails.
  const server = await serve(dist, { missing: ["/icons/icon-maskable-512.png"] });
  try {
    await withBrowser(server, async ({ page, logs }) => {
      const told = await toldOffline(page, logs);
      assert.match(told, /^warning: Offline use is unavailable: the service worker could not store the page's files \(icons\/icon-maskable-512\.png: the server answered 404\)\. The page works as long as it is online\.$/);
      assert.equal(await page.evaluate(() => navigator.serviceWorker.controller), null);
      assert.deepEqual(await page.evaluate(() => caches.keys()), [], "no half-filled cache is left");
      await moreFrames(page);
      assert.equal(await page.evaluate(() => window.enet.state), "running");
    });
  } finally {
    server.close();
  }
});
