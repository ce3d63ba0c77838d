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

const MIME = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css", ".md": "text/plain" };

/** A static server for `dist` on a free localhost port: `{ base, close }`. */
export async function serve(dist) {
  const server = createServer((req, res) => {
    let path = join(dist, decodeURIComponent(new URL(req.url, "http://x").pathname));
    if (path.startsWith(dist) && existsSync(path) && statSync(path).isDirectory()) path = join(path, "index.html");
    if (!path.startsWith(dist) || !existsSync(path)) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { "content-type": MIME[extname(path)] || "application/octet-stream" });
    res.end(readFileSync(path));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { base: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() };
}

/** A fresh Chromium profile; every request the page makes, and its console, are recorded. */
export async function launch(tmp, flags) {
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
 * 4:3 size of network height `height`, the page with `weights` loaded and running.
 * Returns `{ page, ctx, size, close }`; `dist/` and the browser helper must be built.
 */
export async function runningCameraPage(weights, height, framesPerImage) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
  const tmp = mkdtempSync(join(tmpdir(), "enet-page-"));
  const y4m = join(tmp, "camera.y4m");
  const w = Math.round((Number(height) * 4) / 3 / 8) * 8;
  const frame = join(referenceDir(root), "val-decoded/0016E5_07959.png");
  execFileSync(join(root, "target/release/examples/browser_helper"), ["y4m", y4m, String(w), String(height), String(framesPerImage), frame]);
  const server = await serve(join(root, "dist"));
  const { ctx, page } = await launch(tmp, [...WEBGPU_FLAGS, ...cameraFlags(y4m)]);
  await page.goto(server.base);
  await page.waitForFunction(() => window.enet && window.enet.state === "no-model", null, { timeout: 60000 });
  await page.selectOption("#resolution", String(height));
  await page.setInputFiles("#weights", weights);
  await page.waitForFunction(() => window.enet.state === "running", null, { timeout: 300000 });
  const close = async () => {
    await ctx.close();
    server.close();
  };
  return { page, ctx, size: `${w}x${height}`, close };
}
