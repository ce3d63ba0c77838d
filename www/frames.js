// The App's life and the frame clock: creating it (and again after a lost device), one
// segmentation per camera frame, still pictures redrawn, the canvas laid out.

import { $, button, canvas, errorText, filePicker, message, setState, state, video } from "./state.js";
import { hook, markReady } from "./hook.js";
import { applyAllSettings, labelAuto, relabelSizes } from "./settings.js";
import { renderLegend, takeSnapshot } from "./controls.js";
import { switchCamera } from "./camera.js";
import { openMedia } from "./media.js";

export async function createApp(bytes) {
  // A lost device is noticed here at once; the lost callback of an App already replaced
  // (its device released on purpose) is ignored.
  const next = await state.wasm.App.create(canvas, bytes, () => {
    if (state.app === next) recoverDevice();
  });
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
  const d = JSON.parse(state.app.describe());
  $("status").textContent = `${d.adapter || "WebGPU adapter"} · ${d.layout} ENet, ${d.classes} classes · ${d.precision}`;
}

async function recoverDevice() {
  if (state.recreating) return;
  state.recreating = true;
  $("status").textContent = "GPU device lost; restarting…";
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

function tick() {
  const { app } = state;
  if (!app || state.recreating) return;
  if (app.is_lost()) {
    recoverDevice();
    return;
  }
  if (state.paused || state.hiddenPause) return;
  let drawn = false;
  try {
    drawn = frameSource();
  } catch (e) {
    if (app.is_lost()) return recoverDevice();
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
    return;
  }
  if (!drawn) return;
  if (state.phase === "error") message(""); // a new input size worked
  if (state.wantSnapshot) takeSnapshot();
  countFrame();
  if (state.phase !== "running") {
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
  const g = app.gpu_ms();
  const [nw, nh] = app.net_size();
  $("stats").textContent =
    `${fps.value.toFixed(1)} FPS · ${nw}×${nh}${app.adaptive() ? " auto" : ""} · ` +
    `GPU ${g == null ? "n/a" : g.toFixed(2) + " ms"} · skipped ${app.skipped()}`;
  labelAuto();
}

// A still image is segmented once, and again when a setting changes; if the GPU is busy
// with a camera frame at that moment, it tries again on the next animation frame.
export function refreshStill() {
  state.stillDirty = true;
  const attempt = () => {
    if (!state.stillDirty || state.source !== "image") return;
    const { app } = state;
    if (app && !state.paused && !app.busy() && !state.recreating) {
      const n = app.frames();
      tick();
      if (app.frames() > n) state.stillDirty = false;
    }
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
