// Shared by the browser tests and the FPS measurement: serving dist/ and launching
// Debian's Chromium with WebGPU on SwiftShader.

import { createServer } from "node:http";
import { existsSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { dirname, extname, join } from "node:path";
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
