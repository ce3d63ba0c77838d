// What the page's modules share: its elements, one state object, and how it tells a person
// what is going on (the message box, the page state).

export const $ = (id) => document.getElementById(id);
// A let: a canvas that WebGPU took and could not use is replaced for the CPU path (a canvas
// keeps the first kind of context it gives).
export let canvas = $("view");
export const video = $("camera");

// Every piece of mutable state the modules share, in one place.
export const state = {
  wasm: null, // the wasm module's exports, once loaded
  backend: null, // "webgpu" | "cpu"
  app: null, // the wasm App (owns the GPU), or on the CPU path its stand-in (cpu.js)
  weights: null, // bytes of the running model, kept to recreate the app after device loss
  // What the person chose (view, size, smoothing, opacity, hidden classes, camera, precision,
  // sharp edges), as App.apply_settings takes it; starts from the wasm's defaults.
  settings: null,
  phase: "starting", // "running" | "paused" | "no-webgpu" | "no-camera" | "no-model" | "error"
  recoveries: 0, // lost GPU devices re-created
  paused: false,
  hiddenPause: false, // the tab is hidden
  source: null, // "camera" | "video" | "image"
  still: null, // ImageBitmap for an image source
  stream: null, // the camera's MediaStream while it is held
  cameras: [],
  cameraIndex: 0,
  hiddenCamera: null, // the camera released while the tab is hidden, to take back
  pendingMedia: null, // an image or video chosen before any model was loaded
  wantSnapshot: false,
  recreating: false, // a lost device is being replaced
  classNames: [], // legend names by class index
  lastFrameAt: 0, // when the camera last gave a frame (the no-picture watchdog)
  cameraSince: 0,
  gpuBusyAt: 0, // when the watchdog last saw the GPU working on a frame (or being re-created)
  watchdogChecks: 0, // times the camera watchdog has looked, about once a second
  stallShown: false,
  beforeStall: "starting", // the phase the no-picture report replaced, restored when frames come
  stillDirty: false, // a still picture waits to be segmented again
  loopStarted: false,
  laidOut: "", // the canvas layout last given to the App
  tuningShown: "", // the tuner's state last put on the status line
  fps: { frames: 0, since: performance.now(), value: 0 },
};

/** A fresh canvas in place of the page's (same attributes, no context). */
export function freshCanvas() {
  const next = canvas.cloneNode(false);
  canvas.replaceWith(next);
  canvas = next;
}

export function message(text, { error = false, actions = [] } = {}) {
  const box = $("message");
  box.hidden = !text;
  box.classList.toggle("error", error);
  $("message-text").textContent = text || "";
  $("message-actions").replaceChildren(...actions);
}

export function button(label, onclick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.onclick = onclick;
  return b;
}

export function filePicker(label, accept, onfile) {
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

export function setState(s) {
  state.phase = s;
  document.body.dataset.state = s;
}

export function errorText(e) {
  return e && e.message ? e.message : String(e);
}
