// The App's life and the frame clock: creating it (and again after a lost device), one
// segmentation per camera frame, still pictures redrawn, the canvas laid out.

import { $, button, canvas, errorText, filePicker, message, setState, state, video } from "./state.js";
import { hook, markReady } from "./hook.js";
import { applyAllSettings, labelAuto, relabelSizes } from "./settings.js";
import { renderLegend, takeSnapshot } from "./controls.js";
import { switchCamera } from "./camera.js";
import { openMedia } from "./media.js";

// Which configuration runs is measured on the device (src/web/tune/) and kept here, in the
// same JSON as the CLI's cache; ?tune=0 runs the default instead, ?config=unfused+f32 (or
// e.g. "fused f16 256x64") runs that one.
const TUNE_KEY = "enet-tuning";
const params = new URLSearchParams(location.search);
const tuneAllowed = params.get("tune") !== "0";
const askedConfig = params.get("config") || null;

function storedTuning() {
  try {
    return localStorage.getItem(TUNE_KEY);
  } catch (_) {
    return null; // storage disabled: this visit measures again
  }
}

/** Stores a new choice, and says on the status line which configuration runs and why. */
function followTuning() {
  const t = JSON.parse(state.app.tuning());
  if (t.unsaved) {
    const text = state.app.take_tuning_cache();
    try {
      localStorage.setItem(TUNE_KEY, text);
    } catch (_) {
      /* storage disabled: the choice lasts for this visit */
    }
  }
  const shown = `${t.state} ${t.config} ${t.chosen} ${t.progress}`;
  if (shown !== state.tuningShown) {
    state.tuningShown = shown;
    describe();
  }
}

export async function createApp(bytes) {
  // A lost device is noticed here at once; the lost callback of an App already replaced
  // (its device released on purpose) is ignored.
  let next = null;
  const lost = () => next && state.app === next && recoverDevice();
  if (state.backend === "cpu") {
    // Loaded only where it runs: the GPU path's first visit does without it.
    const { CpuBackend } = await import("./cpu.js");
    const on = { drawn: frameDrawn, failed: frameFailed, lost, next: () => state.source !== "image" && tick() };
    next = await CpuBackend.create(canvas, bytes, on);
  } else {
    next = await state.wasm.App.create(canvas, bytes, lost, storedTuning(), tuneAllowed, askedConfig);
    const { note } = JSON.parse(next.tuning());
    if (note) {
      console.warn(`Tuning: ${note}`);
      // Said once the picture runs (starting the camera clears the message box).
      if (askedConfig) hook.ready.then(() => message(note, { error: true, actions: [button("OK", () => message(""))] }));
    }
  }
  applyAllSettings(next);
  // After a lost device, automatic size goes on from the size it had reached.
  const reached = state.app && state.app.adaptive() ? Math.min(...state.app.net_size()) : 0;
  if (Number.isFinite(reached) && reached > 0) next.resume_auto_at(reached);
  if (state.app) state.app.free();
  state.app = next;
  state.weights = bytes;
  renderLegend();
  describe();
  // A new App (a lost device replaced) has not been told the canvas's size yet.
  state.laidOut = "";
  layoutCanvas();
}

export function describe() {
  if (state.backend === "cpu") {
    const m = state.app.modelInfo;
    $("status").textContent = `${state.app.describe()} · ${m.layout} ENet, ${m.classes} classes`;
    return;
  }
  const d = JSON.parse(state.app.describe());
  const t = JSON.parse(state.app.tuning());
  const how = {
    measured: "measured fastest here",
    remembered: "measured fastest here before",
    forced: "as asked",
    default: t.state === "measuring" ? `default; measuring the others, ${t.progress[0]}/${t.progress[1]}` : "default",
  }[t.chosen];
  $("status").textContent = `${d.adapter || "WebGPU adapter"} · ${d.layout} ENet, ${d.classes} classes · ${t.config} (${how})`;
}

async function recoverDevice() {
  if (state.recreating) return;
  state.recreating = true;
  $("status").textContent = state.backend === "cpu" ? "The CPU engine stopped; restarting…" : "GPU device lost; restarting…";
  try {
    await createApp(state.weights);
    state.recoveries++;
    if (state.source === "image") refreshStill();
  } catch (e) {
    setState("error");
    message(`The GPU could not be restarted: ${errorText(e)}`, { error: true });
  }
  state.recreating = false;
}

// A paused or still picture is drawn again after a setting changes; live frames need not.
export function redrawIfStill() {
  if (state.app && (state.paused || state.source === "image")) state.app.redraw();
}

function frameSource() {
  const { app } = state;
  if (state.source === "image") return state.still ? app.frame_bitmap(state.still) : false;
  if (video.readyState < 2 || video.videoWidth === 0) return false;
  return app.frame_video(video);
}

/** One frame of the source; true when it was taken (drawn, or on the CPU path sent). */
function tick() {
  const { app } = state;
  if (!app || state.recreating) return false;
  if (app.is_lost()) {
    recoverDevice();
    return false;
  }
  if (state.paused || state.hiddenPause) return false;
  let taken = false;
  try {
    taken = frameSource();
  } catch (e) {
    if (app.is_lost()) recoverDevice();
    else frameFailed(e);
    return false;
  }
  // The CPU path's frames are drawn when the worker answers (frameDrawn).
  if (taken && state.backend !== "cpu") frameDrawn();
  return taken;
}

function frameFailed(e) {
  // The same failure on every camera frame is reported once.
  const what = state.source === "camera" ? "The camera's picture cannot be used" : "Segmentation failed";
  const text = `${what}: ${errorText(e)}.`;
  if (state.phase !== "error" || $("message-text").textContent !== text) {
    console.error(e);
    setState("error");
    const actions = [filePicker("Open image or video…", "image/*,video/*", openMedia)];
    if (state.source === "camera" && state.cameras.length > 1) actions.unshift(button("Switch camera", switchCamera));
    message(text, { error: true, actions });
  }
}

function frameDrawn() {
  if (state.phase === "error") message(""); // a new input size worked
  if (state.wantSnapshot) takeSnapshot();
  countFrame();
  // A CPU frame may land after Pause was pressed: the page stays paused.
  if (state.phase !== "running" && !state.paused) {
    setState("running");
    markReady();
  }
}

// The status line under the controls, once a second: frame rate, network size, GPU time.
function countFrame() {
  const { app, fps } = state;
  fps.frames++;
  const now = performance.now();
  if (now - fps.since < 1000) return;
  fps.value = (fps.frames * 1000) / (now - fps.since);
  fps.frames = 0;
  fps.since = now;
  const g = state.backend === "cpu" ? app.last_ms() : app.gpu_ms();
  const [nw, nh] = app.net_size();
  $("stats").textContent =
    `${fps.value.toFixed(1)} FPS · ${nw}×${nh}${app.adaptive() ? " auto" : ""} · ` +
    `${state.backend === "cpu" ? "CPU" : "GPU"} ${g == null ? "n/a" : g.toFixed(2) + " ms"} · skipped ${app.skipped()}`;
  labelAuto();
  if (state.backend !== "cpu") followTuning();
}

// A still image is segmented once, and again when a setting changes; if the GPU (or the CPU
// worker) is busy with a camera frame at that moment, it tries again on the next animation frame.
export function refreshStill() {
  state.stillDirty = true;
  const attempt = () => {
    if (!state.stillDirty || state.source !== "image") return;
    const { app } = state;
    if (app && !state.paused && !app.busy() && !state.recreating && tick()) state.stillDirty = false;
    if (state.stillDirty) requestAnimationFrame(attempt);
  };
  requestAnimationFrame(attempt);
}

export function run() {
  relabelSizes();
  for (const id of ["pause", "snapshot"]) $(id).disabled = false;
  if (state.source === "image") {
    refreshStill();
    return;
  }
  if (state.loopStarted) return;
  state.loopStarted = true;
  // One segmentation per new camera frame where the browser can tell us; a frame that
  // arrives while the GPU is busy is skipped (App.busy), never queued.
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    const onFrame = () => {
      state.lastFrameAt = performance.now();
      if (state.source !== "image") tick();
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  } else {
    let last = -1;
    const onAnim = () => {
      if (state.source !== "image" && video.currentTime !== last) {
        last = video.currentTime;
        state.lastFrameAt = performance.now();
        tick();
      }
      requestAnimationFrame(onAnim);
    };
    requestAnimationFrame(onAnim);
  }
}

// The canvas is laid out at the largest size the stage allows with the picture's aspect
// (twice as wide side by side), and drawn at that size times devicePixelRatio: sharp on
// phones, no larger than what is shown.
export function layoutCanvas() {
  if (!state.app || !state.source) return;
  const { width: sw, height: sh } = hook.sourceSize();
  if (!sw || !sh) return;
  const aspect = ((state.settings.view === "side" ? 2 : 1) * sw) / sh;
  const stage = $("stage");
  const widthOnly = getComputedStyle(document.body).getPropertyValue("--fit").trim() === "width";
  const room = stage.clientWidth;
  const w = Math.max(1, Math.floor(widthOnly ? room : Math.min(room, stage.clientHeight * aspect)));
  const h = Math.max(1, Math.round(w / aspect));
  const dpr = window.devicePixelRatio || 1;
  const key = `${w} ${h} ${dpr}`;
  if (key === state.laidOut) return;
  state.laidOut = key;
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  state.app.resize(Math.round(w * dpr), Math.round(h * dpr));
  redrawIfStill();
}
