// The page: camera, controls and frame clock. The GPU work lives in Rust (src/web.rs):
// each camera frame goes straight into a GPU texture, through ENet, and onto the canvas.
//
// Test hook (documented in the README): `window.enet` with
//   ready            a Promise resolved once the first frame is on screen
//   classMap(raw)    Promise of {width, height, data: Uint8Array}: the last frame's classes
//                    as shown (smoothed when smoothing is on), or with raw=true its own
//   classMaps()      Promise of {width, height, shown, raw}: both, of the same frame
//   frames()         frames segmented so far
//   state            "running" | "paused" | "no-webgpu" | "no-camera" | "no-model" | "error"
//   sourcePixels()   {width, height, data: Uint8ClampedArray}: the current source frame as
//                    the browser decodes it (to run the native engine on the same pixels)
//   sourceSize()     {kind, width, height}: what is being segmented ("camera" | "video" | "image")
//   recoveries       how many times a lost GPU device was re-created
//   cameraOn()       whether the camera is held (it is released while the tab is hidden)
//   classAt(u, v)    Promise of the class index shown at (u, v) of the canvas (0..1), or -1
//   netSize()        [w, h] of the network input now (adaptive size changes it)
//   mirrored()       whether the picture is drawn mirrored (a front camera)
//   app              the wasm App (app.destroy_device() simulates a lost GPU)

import init, * as bindings from "./enet-wgpu.js";
import { registerOffline } from "./offline.js";

const $ = (id) => document.getElementById(id);
const canvas = $("view");
const video = $("camera");
const status = $("status");
const stats = $("stats");

const hook = {
  state: "starting",
  recoveries: 0,
  cameraOn: () => !!stream,
  classAt: (u, v) => app.class_at(u, v),
  netSize: () => (app ? [...app.net_size()] : []),
  mirrored: () => mirrored,
  frames: () => (app ? app.frames() : 0),
  classMap: (raw = false) => app.class_maps().then((m) => ({ width: m.width, height: m.height, data: raw ? m.raw : m.shown })),
  classMaps: () => app.class_maps(),
  sourceSize: () =>
    source === "image"
      ? { kind: source, width: still.width, height: still.height }
      : { kind: source, width: video.videoWidth, height: video.videoHeight },
  sourcePixels: () => {
    const { width, height } = hook.sourceSize();
    const c = new OffscreenCanvas(width, height).getContext("2d");
    c.drawImage(source === "image" ? still : video, 0, 0);
    return c.getImageData(0, 0, width, height);
  },
  get app() {
    return app;
  },
};
let resolveReady;
hook.ready = new Promise((r) => (resolveReady = r));
window.enet = hook;

let wasm = null;
let app = null;
let weights = null; // bytes of the running model, kept to recreate the app after device loss
let paused = false;
let hiddenPause = false;
let source = null; // "camera" | "video" | "image"
let still = null; // ImageBitmap for an image source
let stream = null;
let cameras = [];
let cameraIndex = 0;
let wantSnapshot = false;
let recreating = false;
let mirrored = false;
let classNames = []; // legend names by class index
let lastFrameAt = 0; // when the camera last gave a frame (the no-picture watchdog)
let cameraSince = 0;
const fps = { frames: 0, since: performance.now(), value: 0 };

function message(text, { error = false, actions = [] } = {}) {
  const box = $("message");
  box.hidden = !text;
  box.classList.toggle("error", error);
  $("message-text").textContent = text || "";
  const act = $("message-actions");
  act.replaceChildren(...actions);
}

function button(label, onclick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.onclick = onclick;
  return b;
}

function filePicker(label, accept, onfile) {
  const l = document.createElement("label");
  l.className = "file";
  l.textContent = label;
  const i = document.createElement("input");
  i.type = "file";
  i.accept = accept;
  i.onchange = () => i.files[0] && onfile(i.files[0]);
  l.append(i);
  return l;
}

function setState(s) {
  hook.state = s;
  document.body.dataset.state = s;
}

function errorText(e) {
  return e && e.message ? e.message : String(e);
}

// The legend: one button per class, pressing it hides or shows that class's colour.
function renderLegend() {
  const classes = JSON.parse(app.legend());
  classNames = classes.map((c) => c.name);
  const ul = $("legend");
  ul.replaceChildren(
    ...classes
      .map((c, i) => ({ ...c, i }))
      .filter((c) => !c.void)
      .map((c) => {
        const li = document.createElement("li");
        const b = document.createElement("button");
        b.type = "button";
        b.setAttribute("aria-pressed", "true");
        b.title = `hide or show ${c.name}`;
        const sw = document.createElement("i");
        sw.style.background = `rgb(${c.color.join(",")})`;
        b.append(sw, c.name);
        b.onclick = () => {
          const on = b.getAttribute("aria-pressed") !== "true";
          b.setAttribute("aria-pressed", String(on));
          app.set_class_visible(c.i, on);
          redrawIfStill();
        };
        li.append(b);
        return li;
      }),
  );
}

// A paused or still picture is drawn again after a setting changes; live frames need not.
function redrawIfStill() {
  if (app && (paused || source === "image")) app.redraw();
}

function describe() {
  const d = JSON.parse(app.describe());
  status.textContent = `${d.adapter || "WebGPU adapter"} · ${d.layout} ENet, ${d.classes} classes · ${d.precision}`;
}

async function loadWasm() {
  await init();
  return bindings;
}

// The built-in model: a static file next to the page (not inside the wasm), so the browser
// caches it on its own and a new model needs no new wasm.
const MODEL_URL = "assets/enet-camvid.safetensors";

// Downloads the built-in model, reporting progress as (received bytes, total or 0). Rejects
// with a reason a person can act on; the bytes are validated by the caller.
async function fetchModel(onProgress) {
  let r;
  try {
    r = await fetch(MODEL_URL);
  } catch (e) {
    throw new Error(`it could not be downloaded (${errorText(e)})`);
  }
  if (!r.ok) throw new Error(`the server answered ${r.status}${r.statusText ? " " + r.statusText : ""}`);
  // Development servers and single-page hosts answer a missing file with the page itself.
  const type = r.headers.get("content-type") || "";
  if (type.startsWith("text/")) throw new Error(`the server answered with a ${type.split(";")[0]} page instead of the model: it is missing from the site`);
  const total = Number(r.headers.get("content-length")) || 0;
  if (!r.body) return new Uint8Array(await r.arrayBuffer());
  const reader = r.body.getReader();
  const parts = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    received += value.length;
    onProgress(received, total);
  }
  const bytes = new Uint8Array(received);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return bytes;
}

function showProgress(received, total) {
  const bar = $("progress");
  bar.hidden = false;
  const mb = (n) => (n / 1e6).toFixed(2);
  // A compressed response's length is smaller than what arrives: then show bytes only.
  if (total && received <= total) {
    bar.value = received / total;
    $("message-text").textContent = `Loading the built-in model… ${mb(received)} of ${mb(total)} MB`;
  } else {
    bar.removeAttribute("value");
    $("message-text").textContent = `Loading the built-in model… ${mb(received)} MB`;
  }
}

/** The built-in model's bytes, validated; null (and a message with a picker) when unusable.
 * `download` is fetchModel's promise, started before the wasm so both load at once. */
async function builtInModel(download) {
  let bytes;
  try {
    bytes = await download;
    wasm.validate_weights(bytes);
  } catch (e) {
    $("progress").hidden = true;
    setState("no-model");
    status.textContent = "no model loaded";
    message(
      `The built-in model (${MODEL_URL}) could not be loaded: ${errorText(e)}. Load an ENet weights file ` +
        "(.safetensors; a PyTorch-ENet checkpoint converts with `enet import`) by the button below or by dropping it on the page.",
      { error: true, actions: [filePicker("Load weights…", ".safetensors", loadWeightsFile)] },
    );
    return null;
  }
  $("progress").hidden = true;
  message("");
  return bytes;
}

async function createApp(bytes) {
  // A lost device is noticed here at once; the lost callback of an App already replaced
  // (its device released on purpose) is ignored.
  const next = await wasm.App.create(canvas, bytes, () => {
    if (app === next) recoverDevice();
  });
  applySize(next);
  next.set_opacity(Number($("opacity").value));
  next.set_view($("view-mode").value);
  next.set_mirror(mirrored);
  next.set_timing_detail($("timing").open);
  next.set_sharp_edges($("edges").checked);
  next.set_smoothing($("smoothing").checked);
  next.set_smoothing_strength(Number($("strength").value));
  // ?precision=f32 (or f16) forces how activations are stored; the default is f16 where the
  // GPU has shader-f16.
  const precision = new URLSearchParams(location.search).get("precision");
  if (precision) {
    try {
      next.set_precision(precision);
    } catch (e) {
      message(`precision=${precision} is not available here (${errorText(e)}); running ${JSON.parse(next.describe()).precision}.`, { error: true });
    }
  }
  if (app) app.free();
  app = next;
  weights = bytes;
  renderLegend();
  describe();
  layoutCanvas();
}

// The size menu: "auto" adapts the size to what the GPU keeps up with, a number pins that
// shorter side.
function applySize(target = app) {
  const choice = $("resolution").value;
  if (choice === "auto") {
    target.set_short_side(target.adaptive() ? target.short_side() : 360);
    target.set_adaptive(true);
  } else {
    target.set_adaptive(false);
    target.set_short_side(Number(choice));
  }
}

async function loadWeightsFile(file) {
  try {
    const bytes = new Uint8Array(await file.arrayBuffer()); // fails for a file too large to read
    if (app) {
      app.load_weights(bytes); // validated exactly as the CLI does; on error the old model stays
      weights = bytes;
      renderLegend();
      describe();
      message("");
    } else {
      await createApp(bytes);
      message("");
      if (pendingMedia) await openMedia(pendingMedia);
      else await startSource();
      pendingMedia = null;
    }
  } catch (e) {
    message(`${file.name} was not loaded: ${errorText(e)}${app ? " The previous model keeps running." : ""}`, {
      error: true,
    });
  }
}

async function startCamera(deviceId) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw Object.assign(new Error("this browser offers no camera API (the page must be served over HTTPS)"), {
      name: "NotSupportedError",
    });
  }
  stopCamera();
  const video_ = deviceId
    ? { deviceId: { exact: deviceId } }
    : { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } };
  stream = await navigator.mediaDevices.getUserMedia({ video: video_, audio: false });
  const track = stream.getVideoTracks()[0];
  const ownStream = stream;
  track.addEventListener("ended", () => {
    // A track of a camera already replaced (switched, restarted) ends quietly.
    if (stream !== ownStream) return;
    // The camera is released so that the no-picture watchdog does not replace this message.
    stopCamera();
    setState("no-camera");
    message("The camera stopped (unplugged, or taken by another app).", {
      error: true,
      actions: [button("Restart camera", () => startSource())],
    });
  });
  video.srcObject = stream;
  cameraSince = performance.now();
  // The source is the camera from here on: a camera that never sends a frame leaves play()
  // waiting, and the watchdog (watchCamera) must see it.
  source = "camera";
  await video.play();
  const settings = track.getSettings();
  // A front (user-facing) camera is shown as a mirror, as people expect to see themselves.
  setMirrored(settings.facingMode === "user");
  if (app) app.set_target_fps(settings.frameRate || 30);
  layoutCanvas();
  cameras = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput");
  $("switch").disabled = cameras.length < 2;
}

async function startSource() {
  try {
    await startCamera();
    message("");
    run();
  } catch (e) {
    stopCamera();
    setState("no-camera");
    const denied = e && (e.name === "NotAllowedError" || e.name === "SecurityError");
    const text = denied
      ? "Camera permission was denied."
      : e && e.name === "NotFoundError"
        ? "No camera was found."
        : `The camera could not start: ${errorText(e)}.`;
    message(`${text} You can segment an image or a video file instead.`, {
      error: true,
      actions: [filePicker("Open image or video…", "image/*,video/*", openMedia), button("Try the camera again", startSource)],
    });
  }
}

let pendingMedia = null; // an image or video chosen before any model was loaded

async function openMedia(file) {
  if (!app) {
    pendingMedia = file;
    return message(`${file.name} will be segmented once a model is loaded: choose a weights file.`, {
      actions: [filePicker("Load weights…", ".safetensors", loadWeightsFile)],
    });
  }
  // The file is opened before the current source stops: a file that cannot be used leaves
  // the camera (or the previous picture) running.
  const keeps = source ? " What was running keeps running." : "";
  if (file.type.startsWith("video/")) {
    const url = URL.createObjectURL(file);
    try {
      await probeVideo(url);
    } catch (e) {
      URL.revokeObjectURL(url);
      return message(`${file.name} is not a video this browser can play (${errorText(e)}).${keeps}`, { error: true });
    }
    stopCamera();
    if (video.src.startsWith("blob:")) URL.revokeObjectURL(video.src);
    video.srcObject = null;
    video.src = url;
    video.loop = true;
    if (still) still.close();
    still = null;
    source = "video";
    if (app) app.set_target_fps(30);
    message("");
    try {
      await video.play();
    } catch (e) {
      return message(`${file.name} could not be played: ${errorText(e)}`, { error: true });
    }
  } else {
    let picture;
    try {
      // Browsers draw a partial picture without complaint: refuse it by its bytes first.
      wasm.check_picture(new Uint8Array(await file.arrayBuffer()));
    } catch (e) {
      return message(`${file.name}: ${errorText(e)}.${keeps}`, { error: true });
    }
    try {
      picture = await decodeImage(file);
    } catch (e) {
      return message(`${file.name} is not an image this browser can decode (${errorText(e)}).${keeps}`, { error: true });
    }
    stopCamera();
    if (still) still.close();
    still = picture.bitmap;
    source = "image";
    message(picture.note);
  }
  layoutCanvas();
  run();
}

function stopCamera() {
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null;
  setMirrored(false);
}

function setMirrored(on) {
  mirrored = on;
  if (app) app.set_mirror(on);
}

// The camera is released while the tab is hidden (its light goes off, the battery rests)
// and the same camera comes back when the tab is shown again.
let hiddenCamera = null;
async function onVisibility() {
  hiddenPause = document.hidden;
  if (document.hidden && source === "camera" && stream) {
    hiddenCamera = stream.getVideoTracks()[0].getSettings().deviceId || "";
    stopCamera();
  } else if (!document.hidden && hiddenCamera !== null && source === "camera") {
    const id = hiddenCamera;
    hiddenCamera = null;
    try {
      await startCamera(id || undefined);
      run();
    } catch (e) {
      setState("no-camera");
      message(`The camera could not come back: ${errorText(e)}`, {
        error: true,
        actions: [button("Restart camera", () => startSource())],
      });
    }
  }
}

// Very large pictures are scaled down first (the size policy's picture_size: a GPU texture
// side is limited and the network never runs larger). Returns {bitmap, note}.
async function decodeImage(file) {
  const full = await createImageBitmap(file);
  const [w, h] = wasm.picture_size(full.width, full.height);
  if (w === full.width && h === full.height) return { bitmap: full, note: "" };
  try {
    const bitmap = await createImageBitmap(full, { resizeWidth: w, resizeHeight: h, resizeQuality: "high" });
    return { bitmap, note: `${file.name} is ${full.width}×${full.height}; it was scaled to ${bitmap.width}×${bitmap.height} first.` };
  } finally {
    full.close();
  }
}

// Resolves once `url` has a video track the browser can decode; rejects otherwise.
function probeVideo(url) {
  return new Promise((resolve, reject) => {
    const v = document.createElement("video");
    v.muted = true;
    v.preload = "metadata";
    const done = (error) => {
      clearTimeout(timer);
      v.removeAttribute("src");
      v.load();
      error ? reject(new Error(error)) : resolve();
    };
    const timer = setTimeout(() => done("it did not load within 10 s"), 10000);
    v.onloadedmetadata = () => done(v.videoWidth > 0 ? null : "it has no video track");
    v.onerror = () => done(v.error && v.error.message ? v.error.message : "unsupported or damaged file");
    v.src = url;
  });
}

function frameSource() {
  if (source === "image") return still ? app.frame_bitmap(still) : false;
  if (video.readyState < 2 || video.videoWidth === 0) return false;
  return app.frame_video(video);
}

async function recoverDevice() {
  if (recreating) return;
  recreating = true;
  status.textContent = "GPU device lost; restarting…";
  try {
    await createApp(weights);
    hook.recoveries++;
    if (source === "image") refreshStill();
  } catch (e) {
    setState("error");
    message(`The GPU could not be restarted: ${errorText(e)}`, { error: true });
  }
  recreating = false;
}

function tick() {
  if (!app || recreating) return;
  if (app.is_lost()) {
    recoverDevice();
    return;
  }
  if (paused || hiddenPause) return;
  let drawn = false;
  try {
    drawn = frameSource();
  } catch (e) {
    if (app.is_lost()) return recoverDevice();
    // The same failure on every camera frame is reported once.
    const what = source === "camera" ? "The camera's picture cannot be used" : "Segmentation failed";
    const text = `${what}: ${errorText(e)}.`;
    if (hook.state !== "error" || $("message-text").textContent !== text) {
      console.error(e);
      setState("error");
      const actions = [filePicker("Open image or video…", "image/*,video/*", openMedia)];
      if (source === "camera" && cameras.length > 1) actions.unshift(button("Switch camera", switchCamera));
      message(text, { error: true, actions });
    }
    return;
  }
  if (!drawn) return;
  if (hook.state === "error") message(""); // a new input size worked
  if (wantSnapshot) takeSnapshot();
  fps.frames++;
  const now = performance.now();
  if (now - fps.since >= 1000) {
    fps.value = (fps.frames * 1000) / (now - fps.since);
    fps.frames = 0;
    fps.since = now;
    const g = app.gpu_ms();
    const [nw, nh] = app.net_size();
    stats.textContent =
      `${fps.value.toFixed(1)} FPS · ${nw}×${nh}${app.adaptive() ? " auto" : ""} · ` +
      `GPU ${g == null ? "n/a" : g.toFixed(2) + " ms"} · skipped ${app.skipped()}`;
    labelAuto();
  }
  if (hook.state !== "running") {
    setState("running");
    resolveReady();
  }
}

// A still image is segmented once, and again when a setting changes; if the GPU is busy
// with a camera frame at that moment, it tries again on the next animation frame.
let stillDirty = false;
function refreshStill() {
  stillDirty = true;
  const attempt = () => {
    if (!stillDirty || source !== "image") return;
    if (app && !paused && !app.busy() && !recreating) {
      const n = app.frames();
      tick();
      if (app.frames() > n) stillDirty = false;
    }
    if (stillDirty) requestAnimationFrame(attempt);
  };
  requestAnimationFrame(attempt);
}

// Each size choice is a shorter side; it is named by the network size it gives for what is
// being segmented (a portrait camera gets portrait sizes).
function relabelSizes() {
  if (!wasm) return;
  const { width, height } = hook.sourceSize();
  labelAuto();
  for (const o of $("resolution").options) {
    if (o.value === "auto") continue;
    const side = Number(o.value);
    const [w, h] = width && height ? wasm.network_size(width, height, side) : wasm.network_size(4, 3, side);
    o.textContent = `${w}×${h}`;
  }
}

// The Auto choice is labelled with the size it runs at now.
function labelAuto() {
  const auto = $("resolution").options[0];
  const size = app && app.adaptive() ? app.net_size() : [];
  auto.textContent = size.length ? `Auto · ${size[0]}×${size[1]}` : "Auto";
}

let loopStarted = false;
function run() {
  relabelSizes();
  for (const id of ["pause", "snapshot"]) $(id).disabled = false;
  if (source === "image") {
    refreshStill();
    return;
  }
  if (loopStarted) return;
  loopStarted = true;
  // One segmentation per new camera frame where the browser can tell us; a frame that
  // arrives while the GPU is busy is skipped (App.busy), never queued.
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    const onFrame = () => {
      lastFrameAt = performance.now();
      if (source !== "image") tick();
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  } else {
    let last = -1;
    const onAnim = () => {
      if (source !== "image" && video.currentTime !== last) {
        last = video.currentTime;
        lastFrameAt = performance.now();
        tick();
      }
      requestAnimationFrame(onAnim);
    };
    requestAnimationFrame(onAnim);
  }
}

function takeSnapshot() {
  wantSnapshot = false;
  // Same task as the draw: the WebGPU canvas still holds the frame.
  canvas.toBlob((blob) => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `enet-${new Date().toISOString().replace(/[:.]/g, "-")}.png`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }, "image/png");
}

async function switchCamera() {
  if (cameras.length < 2) return;
  cameraIndex = (cameraIndex + 1) % cameras.length;
  try {
    await startCamera(cameras[cameraIndex].deviceId);
    message("");
    run();
  } catch (e) {
    message(`That camera could not start: ${errorText(e)}`, { error: true });
  }
}

// The canvas is laid out at the largest size the stage allows with the picture's aspect
// (twice as wide side by side), and drawn at that size times devicePixelRatio: sharp on
// phones, no larger than what is shown.
let laidOut = "";
function layoutCanvas() {
  if (!app || !source) return;
  const { width: sw, height: sh } = hook.sourceSize();
  if (!sw || !sh) return;
  const aspect = (($("view-mode").value === "side" ? 2 : 1) * sw) / sh;
  const stage = $("stage");
  const widthOnly = getComputedStyle(document.body).getPropertyValue("--fit").trim() === "width";
  const room = stage.clientWidth;
  const w = Math.max(1, Math.floor(widthOnly ? room : Math.min(room, stage.clientHeight * aspect)));
  const h = Math.max(1, Math.round(w / aspect));
  const dpr = window.devicePixelRatio || 1;
  const key = `${w} ${h} ${dpr}`;
  if (key === laidOut) return;
  laidOut = key;
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  app.resize(Math.round(w * dpr), Math.round(h * dpr));
  redrawIfStill();
}

// Point at (or tap) the picture: the class shown there, by name, next to the pointer.
function wireProbe() {
  const tip = $("probe");
  let asking = false;
  let hideTimer = 0;
  const ask = async (e) => {
    if (!app || asking || !hook.frames()) return;
    const r = canvas.getBoundingClientRect();
    const u = (e.clientX - r.left) / r.width;
    const v = (e.clientY - r.top) / r.height;
    asking = true;
    let c = -1;
    try {
      c = await app.class_at(u, v);
    } catch (_) {
      /* a lost device: nothing to say */
    }
    asking = false;
    if (c < 0 || c >= classNames.length) return;
    const s = $("stage").getBoundingClientRect();
    tip.textContent = classNames[c];
    tip.style.left = `${e.clientX - s.left}px`;
    tip.style.top = `${e.clientY - s.top}px`;
    tip.hidden = false;
    clearTimeout(hideTimer);
    // A tap has no "leave": its answer goes away by itself.
    if (e.pointerType !== "mouse") hideTimer = setTimeout(() => (tip.hidden = true), 2500);
  };
  canvas.addEventListener("pointermove", (e) => e.pointerType === "mouse" && ask(e));
  canvas.addEventListener("pointerdown", ask);
  canvas.addEventListener("pointerleave", (e) => e.pointerType === "mouse" && (tip.hidden = true));
}

// The timing panel: the frame's GPU time and its slowest dispatches, while it is open.
function renderTimings() {
  const panel = $("timing");
  if (!app || !panel.open) return;
  const body = $("timing-body");
  const t = JSON.parse(app.timings());
  if (!t.available) {
    body.textContent =
      "Unavailable: this browser or GPU offers no WebGPU timestamp queries (the timestamp-query feature).";
    return;
  }
  if (!t.stages.length) {
    body.textContent = "measuring…";
    return;
  }
  const total = t.stages.reduce((a, s) => a + s.ms, 0);
  const slowest = [...t.stages].sort((a, b) => b.ms - a.ms).slice(0, 8);
  const row = (name, ms, cls = "") => {
    const tr = document.createElement("tr");
    if (cls) tr.className = cls;
    const a = document.createElement("td");
    a.className = "name";
    a.textContent = name;
    a.title = name;
    const b = document.createElement("td");
    b.className = "ms";
    b.textContent = `${ms.toFixed(3)} ms`;
    tr.append(a, b);
    return tr;
  };
  const table = document.createElement("table");
  table.append(
    row(`total, ${t.stages.length} dispatches`, total, "total"),
    ...slowest.map((s) => row(s.label, s.ms)),
  );
  const note = document.createElement("div");
  note.textContent = "timed one dispatch at a time, a few frames a second";
  note.style.opacity = ".7";
  body.replaceChildren(table, note);
}

// A camera that gives no picture (taken by another app, covered by the system, or broken)
// is reported after a few seconds, and the report goes once frames come. While the GPU works
// on a frame the browser may deliver no camera frames at all (a slow phone, a software GPU
// taking seconds a frame), so only time with the GPU idle counts: a slow GPU is not a broken
// camera.
const STALL_MS = 5000;
let stallShown = false;
let gpuBusyAt = 0; // when the watchdog last saw the GPU working on a frame (or being re-created)
function watchCamera() {
  if (source !== "camera" || !stream || paused || document.hidden) return;
  if (!app || recreating || app.busy()) {
    gpuBusyAt = performance.now();
    return;
  }
  const quiet = performance.now() - Math.max(lastFrameAt, cameraSince, gpuBusyAt);
  if (quiet > STALL_MS && !stallShown) {
    stallShown = true;
    setState("no-camera");
    message(
      `The camera gives no picture: no frame for ${Math.round(quiet / 1000)} s. Another app may be using it, ` +
        "or the system may have paused it. You can segment an image or a video file instead.",
      {
        error: true,
        actions: [button("Try the camera again", startSource), filePicker("Open image or video…", "image/*,video/*", openMedia)],
      },
    );
  } else if (quiet <= STALL_MS && stallShown) {
    stallShown = false;
    message("");
    setState("running");
  }
}

// A camera permission withdrawn while the page runs (site settings) is said as such.
async function watchPermission() {
  if (!navigator.permissions) return;
  try {
    const p = await navigator.permissions.query({ name: "camera" });
    p.addEventListener("change", () => {
      if (p.state !== "denied" || source !== "camera") return;
      stopCamera();
      setState("no-camera");
      message("Camera permission was withdrawn. Allow the camera for this site to go on, or segment an image or a video file.", {
        error: true,
        actions: [button("Try the camera again", startSource), filePicker("Open image or video…", "image/*,video/*", openMedia)],
      });
    });
  } catch (_) {
    /* browsers that cannot tell: the track's "ended" event still says the camera stopped */
  }
}

function wireControls() {
  $("pause").onclick = () => {
    paused = !paused;
    $("pause").textContent = paused ? "Resume" : "Pause";
    setState(paused ? "paused" : "running");
    if (paused && source === "camera") video.pause();
    if (!paused && source !== "image") video.play();
  };
  $("snapshot").onclick = () => {
    if (paused || source === "image") {
      app.redraw();
      wantSnapshot = true;
      takeSnapshot();
    } else {
      wantSnapshot = true;
    }
  };
  $("switch").onclick = switchCamera;
  $("resolution").onchange = () => {
    try {
      localStorage.setItem(SIZE_KEY, $("resolution").value);
    } catch (_) {
      /* storage disabled: the choice lasts for this visit */
    }
    if (!app) return;
    applySize();
    labelAuto();
    if (source === "image") refreshStill();
  };
  $("view-mode").onchange = () => {
    if (!app) return;
    app.set_view($("view-mode").value);
    layoutCanvas();
    redrawIfStill();
  };
  $("timing").addEventListener("toggle", () => app && app.set_timing_detail($("timing").open));
  setInterval(renderTimings, 400);
  setInterval(watchCamera, 1000);
  wireProbe();
  new ResizeObserver(() => layoutCanvas()).observe($("stage"));
  addEventListener("resize", () => layoutCanvas());
  $("edges").onchange = () => {
    if (app) app.set_sharp_edges($("edges").checked);
    redrawIfStill();
  };
  $("smoothing").onchange = () => {
    $("strength").disabled = !$("smoothing").checked;
    if (app) app.set_smoothing($("smoothing").checked);
  };
  $("strength").oninput = () => app && app.set_smoothing_strength(Number($("strength").value));
  $("opacity").oninput = () => {
    if (!app) return;
    app.set_opacity(Number($("opacity").value));
    redrawIfStill();
  };
  $("fullscreen").onclick = () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else (document.documentElement.requestFullscreen || (() => {})).call(document.documentElement);
  };
  $("weights").onchange = (e) => e.target.files[0] && loadWeightsFile(e.target.files[0]);
  $("media").onchange = (e) => e.target.files[0] && openMedia(e.target.files[0]);
  // A phone turned on its side changes the camera's frame size: rename the size choices.
  video.addEventListener("resize", () => {
    relabelSizes();
    layoutCanvas();
  });
  document.addEventListener("visibilitychange", onVisibility);
  // Drag and drop: weights files load as the model, images and videos become the source.
  addEventListener("dragover", (e) => {
    e.preventDefault();
    document.body.classList.add("dragging");
  });
  addEventListener("dragleave", () => document.body.classList.remove("dragging"));
  addEventListener("drop", (e) => {
    e.preventDefault();
    document.body.classList.remove("dragging");
    const f = e.dataTransfer.files[0];
    if (!f) return;
    if (f.name.endsWith(".safetensors")) loadWeightsFile(f);
    else openMedia(f);
  });
}

// The chosen network input size is remembered across visits.
const SIZE_KEY = "enet.resolution";

function restoreSettings() {
  let saved = null;
  try {
    saved = localStorage.getItem(SIZE_KEY);
  } catch (_) {
    /* storage disabled */
  }
  if (saved && [...$("resolution").options].some((o) => o.value === saved)) $("resolution").value = saved;
}

async function main() {
  restoreSettings();
  wireControls();
  watchPermission();
  // Offline use failing is worth a word, not an error: the page works while online.
  registerOffline((text) => hook.ready.then(() => $("message").hidden && message(text, { actions: [button("OK", () => message(""))] })));
  const adapter = navigator.gpu && (await navigator.gpu.requestAdapter().catch(() => null));
  if (!adapter) {
    setState("no-webgpu");
    status.textContent = "WebGPU unavailable";
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
  wasm = await loadWasm();
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
