// The service worker (registered by offline.js): keeps the page, its code and the built-in
// model, so that a visit without a network still runs. It answers only for the files below,
// from this origin; any other request goes to the network as if it were not here.
//
// How each file is served:
//   the page and its code (index, scripts, wasm, style, manifest, icons): network first, the
//     stored copy when the network fails. An online visit always runs what is deployed now
//     (cheaply: the HTTP cache revalidates by ETag), and so never mixes an old page with new
//     code; each answer also refreshes the stored copy.
//   the model: the stored copy first, refreshed in the background (stale-while-revalidate).
//     It is the one large file: a visit starts at once even on a slow network, and a new
//     model is picked up by the visit after the one that fetched it.
// Only complete 200 answers are stored, never an error, and never an HTML page standing in
// for a file (hosts that answer a missing file with index.html), nor any text for the model.
//
// The cache is named by VERSION and the scope. Bump VERSION when FILES, or what a stored file
// must be (the model's format, say), changes: the new worker stores a fresh set and deletes the
// old one. New contents of the same files need no bump: online visits refresh them. The scope
// in the name keeps two copies of the page on one origin (user.github.io/a/ and /b/) from
// deleting each other's caches.

const VERSION = 3;
const PREFIX = "enet-offline-v";
const SCOPE = self.registration.scope;
const CACHE = `${PREFIX}${VERSION} ${SCOPE}`;
const at = (path) => new URL(path, SCOPE).href;
const PAGE = at("./");
const MODEL = at("assets/enet-camvid.safetensors");
// Everything the page loads; the offline browser test fails when one is missing.
const FILES = [
  "./",
  "app.js",
  "state.js",
  "hook.js",
  "settings.js",
  "controls.js",
  "camera.js",
  "media.js",
  "frames.js",
  "timing.js",
  "cpu.js",
  "cpu-worker.js",
  "offline.js",
  "enet-wgpu.js",
  "enet-wgpu_bg.wasm",
  "style.css",
  "manifest.webmanifest",
  "icons/icon-192.png",
  "icons/icon-512.png",
  "icons/icon-maskable-512.png",
  "icons/apple-touch-icon.png",
  "assets/enet-camvid.safetensors",
].map(at);

const name = (url) => url.slice(SCOPE.length) || "./";

/** Why `response` must not be stored as `url`, or "" when it may be. */
function unfit(url, response) {
  if (response.status !== 200 || response.type !== "basic") return `the server answered ${response.status}`;
  const type = (response.headers.get("content-type") || "").split(";")[0];
  if (url === MODEL ? type.startsWith("text/") : url !== PAGE && type === "text/html") {
    return `the server answered with a ${type} page instead`;
  }
  return "";
}

async function store(url, response) {
  // A navigation must not be answered with a redirected response: keep only the bytes.
  if (response.redirected) {
    response = new Response(await response.blob(), { status: response.status, statusText: response.statusText, headers: response.headers });
  }
  await (await caches.open(CACHE)).put(url, response);
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      try {
        const responses = await Promise.all(
          FILES.map(async (url) => {
            // "no-cache": revalidated with the server, so a stale HTTP-cache copy is not stored.
            const response = await fetch(url, { cache: "no-cache" }).catch((e) => {
              throw new Error(`${name(url)} could not be downloaded: ${e.message}`);
            });
            const why = unfit(url, response);
            if (why) throw new Error(`${name(url)}: ${why}`);
            return response;
          }),
        );
        // Stored only once all arrived, and all settled before any clean-up below.
        const stored = await Promise.allSettled(responses.map((r, i) => store(FILES[i], r)));
        const failed = stored.find((s) => s.status === "rejected");
        if (failed) throw new Error(`the files could not be stored: ${failed.reason.message}`);
      } catch (e) {
        // All or nothing: a worker that cannot keep every file is not installed. A first
        // install leaves no half-filled cache behind; the page is told why.
        if (!self.registration.active) await caches.delete(CACHE);
        for (const client of await self.clients.matchAll({ type: "window", includeUncontrolled: true })) {
          client.postMessage({ type: "enet-offline-error", reason: e.message });
        }
        throw e;
      }
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const old of await caches.keys()) {
        if (old !== CACHE && old.startsWith(PREFIX) && old.endsWith(` ${SCOPE}`)) await caches.delete(old);
      }
      // The page that registered the worker is served by it from now on, not from its reload.
      await self.clients.claim();
    })(),
  );
});

/** The stored file that answers `request`, or null to leave the request alone. */
function keyOf(request) {
  if (request.method !== "GET" || request.headers.has("range")) return null;
  const url = new URL(request.url);
  if (request.mode === "navigate") {
    url.search = "";
    url.hash = "";
    return url.href === PAGE || url.href === at("index.html") ? PAGE : null;
  }
  return FILES.includes(url.href) ? url.href : null;
}

self.addEventListener("fetch", (event) => {
  const key = keyOf(event.request);
  if (!key) return;
  event.respondWith(key === MODEL ? storedFirst(event, key) : networkFirst(event, key));
});

async function networkFirst(event, key) {
  let response;
  try {
    response = await fetch(event.request);
  } catch (e) {
    const stored = await caches.match(key, { cacheName: CACHE });
    if (stored) return stored;
    throw e;
  }
  if (!unfit(key, response)) event.waitUntil(store(key, response.clone()).catch(() => {}));
  return response;
}

async function storedFirst(event, key) {
  const stored = await caches.match(key, { cacheName: CACHE });
  const fresh = fetch(event.request).then((response) => {
    if (!unfit(key, response)) event.waitUntil(store(key, stored ? response : response.clone()).catch(() => {}));
    return response;
  });
  if (!stored) return fresh;
  event.waitUntil(fresh.catch(() => {}));
  return stored;
}
