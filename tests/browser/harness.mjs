// Shared by the browser tests and the FPS measurement: serving dist/ and launching
// Debian's Chromium with WebGPU on SwiftShader.

import { createServer } from "node:http";
import { existsSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const BASE_FLAGS = [
  "--no-sandbox",
  "--disable-gpu-sandbox",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];
export const WEBGPU_FLAGS = ["--enable-unsafe-webgpu", "--use-angle=swiftshader", "--enable-features=Vulkan", "--use-vulkan=swiftshader"];
export const cameraFlags = (y4m) => ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", `--use-file-for-fake-video-capture=${y4m}`];

const MIME = {
  ".html": "text/html",
  ".js": "text/javascript",
  ".wasm": "application/wasm",
  ".css": "text/css",
  ".md": "text/plain",
  ".safetensors": "application/octet-stream",
  ".png": "image/png",
  ".webmanifest": "application/manifest+json",
};

/**
 * A static server for `dist` on a free localhost port: `{ base, close, requests }`. Files get
 * an ETag and a matching If-None-Match gets 304, as static hosts do. Options, to play the
 * servers users put the page behind:
 *   missing     URL paths answered as if the file were not there
 *   fallback    "404" (default) or "index" (answer a missing file with index.html and 200,
 *               as `trunk serve` and single-page hosts do)
 *   replace     {path: Buffer}: serve these bytes instead of the file
 *   slow        URL paths sent in 20 chunks, 100 ms apart (to watch a download's progress)
 */
export async function serve(dist, { missing = [], fallback = "404", replace = {}, slow = [] } = {}) {
  const requests = [];
  const server = createServer(async (req, res) => {
    const url = decodeURIComponent(new URL(req.url, "http://x").pathname);
    requests.push({ url, status: 0 });
    const answer = (status, headers, body) => {
      requests[requests.length - 1].status = status;
      res.writeHead(status, headers);
      return body;
    };
    let path = join(dist, url);
    if (path.startsWith(dist) && existsSync(path) && statSync(path).isDirectory()) path = join(path, "index.html");
    let body = replace[url];
    if (!body && (missing.includes(url) || !path.startsWith(dist) || !existsSync(path))) {
      if (fallback !== "index") return res.end(answer(404, {}));
      path = join(dist, "index.html");
    }
    body = body || readFileSync(path);
    const etag = `"${body.length}-${existsSync(path) ? statSync(path).mtimeMs : 0}"`;
    if (req.headers["if-none-match"] === etag) return res.end(answer(304, { etag }));
    const headers = { "content-type": MIME[extname(path)] || "application/octet-stream", "content-length": body.length, etag };
    answer(200, headers);
    if (!slow.includes(url)) return res.end(body);
    const step = Math.ceil(body.length / 20);
    for (let at = 0; at < body.length; at += step) {
      res.write(body.subarray(at, at + step));
      await new Promise((r) => setTimeout(r, 100));
    }
    res.end();
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { base: `http://127.0.0.1:${server.address().port}/`, close: () => server.close(), requests };
}

/** Network input height (or "auto") for the next pages of this browser profile (the page
 * remembers it). */
export async function rememberSize(ctx, height) {
  await ctx.addInitScript((h) => localStorage.setItem("enet.resolution", String(h)), height);
}

/** A fresh Chromium profile; every request the page makes, and its console, are recorded.
 * `options`: Playwright context options (a device to emulate: viewport, deviceScaleFactor,
 * isMobile, hasTouch, userAgent). */
export async function launch(tmp, flags, options = {}) {
  const ctx = await chromium.launchPersistentContext(mkdtempSync(join(tmp, "profile-")), {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [...BASE_FLAGS, ...flags],
    ...options,
  });
  // Typed arrays leave the page as base64 (window.__base64), not as JSON arrays of numbers,
  // which take seconds for a canvas-sized picture; an init script, as the page's own policy
  // allows no eval.
  await ctx.addInitScript(() => {
    window.__base64 = (a) => {
      let s = "";
      for (let i = 0; i < a.length; i += 32768) s += String.fromCharCode.apply(null, a.subarray(i, i + 32768));
      return btoa(s);
    };
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  const requests = [];
  const logs = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  return { ctx, page, requests, logs };
}

/** `shared/reference` in the closest folder above the repository that has it (normally
 * `../shared`), or ENET_REFERENCE_DIR. */
export function referenceDir(root) {
  if (process.env.ENET_REFERENCE_DIR) return process.env.ENET_REFERENCE_DIR;
  for (let d = dirname(root); ; d = dirname(d)) {
    const candidate = join(d, "shared", "reference");
    if (existsSync(join(candidate, "peer-enet-camvid.safetensors"))) return candidate;
    if (dirname(d) === d) throw new Error("shared/reference not found next to the repository (set ENET_REFERENCE_DIR)");
  }
}

/**
 * For the measuring scripts: a fresh Chromium whose fake webcam plays a CamVid val frame at a
 * 4:3 size of network height `height`, the page running with `weights` (the built-in model
 * when not given) on `backend` ("webgpu", SwiftShader here, or "cpu"), in the GPU path's
 * default configuration or `config` (a name the page's ?config= takes). Returns
 * `{ page, ctx, size, close }`; `dist/` and the browser helper must be built.
 */
export async function runningCameraPage(weights, height, framesPerImage, backend = "webgpu", config = null) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
  const tmp = mkdtempSync(join(tmpdir(), "enet-page-"));
  const y4m = join(tmp, "camera.y4m");
  const w = Math.round((Number(height) * 4) / 3 / 8) * 8;
  const frame = join(referenceDir(root), "val-decoded/0016E5_07959.png");
  execFileSync(join(root, "target/release/examples/browser_helper"), ["y4m", y4m, String(w), String(height), String(framesPerImage), frame]);
  const server = await serve(join(root, "dist"));
  const { ctx, page } = await launch(tmp, [...WEBGPU_FLAGS, ...cameraFlags(y4m)]);
  await rememberSize(ctx, height);
  // The default configuration, untuned: the page's trials would share the measured frames'
  // time (`config` names another, e.g. "unfused f32").
  const tuning = config ? `config=${encodeURIComponent(config)}` : "tune=0";
  await page.goto(`${server.base}?backend=${backend}&${tuning}`);
  await page.waitForFunction(() => window.enet && window.enet.state === "running", null, { timeout: 300000 });
  if (weights) {
    await page.setInputFiles("#weights", weights);
    await page.waitForFunction((n) => window.enet.frames() > n, await page.evaluate(() => window.enet.frames()), {
      timeout: 300000,
    });
  }
  const close = async () => {
    await ctx.close();
    server.close();
  };
  return { page, ctx, size: `${w}x${height}`, close };
}

/**
 * `count` segmented frames of the page's camera, each as {k, shown, raw}: frame number k's
 * class map on screen and its own (Buffers). Each is read as soon as the page has submitted a
 * frame after the last one read, so samples are mostly consecutive frames (a read waits for
 * the frame in flight, and the next may be submitted meanwhile); see `apart`.
 */
export async function sampleFrames(page, count, timeout = 240000) {
  const out = [];
  let last = await page.evaluate(() => window.enet.frames());
  while (out.length < count) {
    await page.waitForFunction((k) => window.enet.frames() > k, last, { timeout });
    const f = await page.evaluate(async () => {
      const k = window.enet.frames();
      const m = await window.enet.classMaps();
      return { k, width: m.width, height: m.height, shown: window.__base64(m.shown), raw: window.__base64(m.raw) };
    });
    out.push({ ...f, shown: Buffer.from(f.shown, "base64"), raw: Buffer.from(f.raw, "base64") });
    last = f.k;
  }
  return out;
}

/** The pairs of samples `d` frames apart (1: consecutive frames, what one sees flicker; a
 * change over two frames counts two smoothing steps as one). */
export const apart = (s, d = 1) => s.slice(d).map((f, i) => [s[i], f]).filter(([a, b]) => b.k === a.k + d);
