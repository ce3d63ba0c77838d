// The page: camera, controls and frame clock, in modules by concern; this one starts them.
// The GPU work lives in Rust (src/web.rs): each camera frame goes straight into a GPU
// texture, through ENet, and onto the canvas.
//
//   state.js     the shared state object, the elements, messages
//   hook.js      the test hook, window.enet (documented in the README)
//   settings.js  the settings object the App takes whole, the size menu
//   controls.js  buttons, menus, legend, pointing at a pixel, snapshot
//   camera.js    the camera and its watchdogs
//   media.js     the built-in model, weights files, image and video files
//   frames.js    the App's life (a lost device re-created), the frame clock, the canvas layout
//   timing.js    the GPU time panel
//   offline.js   the service worker (offline use)

import init, * as bindings from "./enet-wgpu.js";
import { registerOffline } from "./offline.js";
import { $, button, errorText, message, setState, state } from "./state.js";
import { hook } from "./hook.js";
import { initSettings } from "./settings.js";
import { wireControls } from "./controls.js";
import { startSource, watchPermission } from "./camera.js";
import { builtInModel, fetchModel, showProgress } from "./media.js";
import { createApp } from "./frames.js";

async function main() {
  wireControls();
  watchPermission();
  // Offline use failing is worth a word, not an error: the page works while online.
  registerOffline((text) => hook.ready.then(() => $("message").hidden && message(text, { actions: [button("OK", () => message(""))] })));
  const adapter = navigator.gpu && (await navigator.gpu.requestAdapter().catch(() => null));
  if (!adapter) {
    setState("no-webgpu");
    $("status").textContent = "WebGPU unavailable";
    message(
      "This page needs WebGPU, which this browser does not offer, has turned off, or cannot use on this GPU. " +
        "It is available in Chrome and Edge 113 or newer on Windows, macOS, ChromeOS and Android, " +
        "in Safari 26 on macOS, iOS and iPadOS, and in Firefox 141 or newer on Windows.",
      { error: true },
    );
    return;
  }
  message("Loading the built-in model…");
  showProgress(0, 0);
  const download = fetchModel(showProgress);
  download.catch(() => {}); // handled in builtInModel, after the wasm is up
  await init();
  state.wasm = bindings;
  initSettings();
  // ?precision=f32 (or f16) forces how activations are stored; the default is f16 where the
  // GPU has shader-f16.
  state.settings.precision = new URLSearchParams(location.search).get("precision") || null;
  const bytes = await builtInModel(download);
  if (!bytes) return;
  try {
    await createApp(bytes);
  } catch (e) {
    setState("error");
    return message(`The GPU could not start: ${errorText(e)}`, { error: true });
  }
  await startSource();
}

main();
