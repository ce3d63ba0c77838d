// The page: camera, controls and frame clock, in modules by concern; this one starts them.
// The GPU work lives in Rust (src/web.rs): each camera frame goes straight into a GPU
// texture, through ENet, and onto the canvas. Where WebGPU is missing, offers no adapter or
// only a software one, or cannot start, the CPU engine runs in a worker instead (cpu.js);
// ?backend=webgpu or ?backend=cpu forces either.
//
//   state.js     the shared state object, the elements, messages
//   hook.js      the test hook, window.enet (documented in the README)
//   settings.js  the settings object the App takes whole, the size menu
//   controls.js  buttons, menus, legend, pointing at a pixel, snapshot
//   camera.js    the camera and its watchdogs
//   media.js     the built-in model, weights files, image and video files
//   frames.js    the App's life (a lost device re-created), the frame clock, the canvas layout
//   timing.js    the GPU time panel
//   cpu.js       the CPU path: the engine in a worker (cpu-worker.js), drawn with Canvas 2D
//   offline.js   the service worker (offline use)

import init, * as bindings from "./enet-wgpu.js";
import { registerOffline } from "./offline.js";
import { $, button, errorText, freshCanvas, message, setState, state } from "./state.js";
import { hook } from "./hook.js";
import { initSettings } from "./settings.js";
import { wireControls, wireProbe } from "./controls.js";
import { startSource, watchPermission } from "./camera.js";
import { builtInModel, fetchModel, showProgress } from "./media.js";
import { createApp } from "./frames.js";

async function main() {
  wireControls();
  watchPermission();
  // Offline use failing is worth a word, not an error: the page works while online.
  registerOffline((text) => hook.ready.then(() => $("message").hidden && message(text, { actions: [button("OK", () => message(""))] })));
  const asked = new URLSearchParams(location.search).get("backend");
  if (asked && asked !== "webgpu" && asked !== "cpu") console.warn(`?backend=${asked}: expected webgpu or cpu; choosing by itself`);
  const gpu = asked === "cpu" ? { why: "asked for by ?backend=cpu" } : await probeWebGPU();
  if (asked === "webgpu" && !gpu.adapter) {
    setState("no-webgpu");
    $("status").textContent = "WebGPU unavailable";
    message(
      "?backend=webgpu asks for WebGPU, which this browser does not offer, has turned off, or cannot use on this GPU. " +
        "It is available in Chrome and Edge 113 or newer on Windows, macOS, ChromeOS and Android, " +
        "in Safari 26 on macOS, iOS and iPadOS, and in Firefox 141 or newer on Windows. " +
        "Without ?backend=webgpu the page runs on the CPU instead.",
      { error: true },
    );
    return;
  }
  state.backend = asked === "webgpu" || (gpu.adapter && !gpu.why) ? "webgpu" : "cpu";
  if (state.backend === "cpu") cpuControls(gpu.why);
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
    if (state.backend === "cpu" || asked === "webgpu") {
      setState("error");
      return message(`The ${state.backend === "cpu" ? "CPU engine" : "GPU"} could not start: ${errorText(e)}`, { error: true });
    }
    // The GPU failed (no device, say): the CPU path, on a canvas WebGPU has not taken.
    state.backend = "cpu";
    cpuControls(`the GPU could not start (${errorText(e)})`);
    freshCanvas();
    wireProbe();
    try {
      await createApp(bytes);
    } catch (e2) {
      setState("error");
      return message(`Neither the GPU (${errorText(e)}) nor the CPU engine (${errorText(e2)}) could start.`, { error: true });
    }
  }
  await startSource();
}

/** Whether WebGPU offers an adapter (`adapter`), and `why` it should not be used where it is
 * only a software one (SwiftShader, llvmpipe): the CPU engine is faster than a GPU emulated on
 * the CPU. */
async function probeWebGPU() {
  if (!navigator.gpu) return { adapter: false, why: "this browser offers no WebGPU" };
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" }).catch(() => null);
  if (!adapter) return { adapter: false, why: "WebGPU offers no adapter here" };
  // isFallbackAdapter moved from the adapter to adapter.info; Chromium's SwiftShader says so
  // in info (vendor "google", architecture "swiftshader"), older versions only by name.
  const info = adapter.info || {};
  const name = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ");
  const software = adapter.isFallbackAdapter || info.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe/i.test(name);
  return { adapter: true, why: software ? `the only WebGPU adapter is a software one (${name || "fallback"})` : "" };
}

/** The CPU path has no GPU timing and no sharp edges: those controls go. */
function cpuControls(why) {
  console.info(`Running on the CPU: ${why}.`);
  $("status").title = `running on the CPU: ${why}`;
  $("timing").hidden = true;
  $("edges").closest("label").hidden = true;
  $("resolution").title = "network input size: Auto follows what this device keeps up with; a size pins it";
}

main();
