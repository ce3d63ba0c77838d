// The test hook (documented in the README): `window.enet` with
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
//   backend()        "webgpu" or "cpu": what segments (chosen at start, see app.js)
//   watchdogChecks() how many times the camera watchdog has looked (about once a second):
//                    the page's own clock, for tests that check nothing happens meanwhile
//   tuning()         the GPU path's tuner: {state, config, chosen, progress, trials, ...}
//                    (App.tuning in src/web/tune/); null on the CPU path
//   app              the wasm App (app.destroy_device() simulates a lost GPU); on the CPU
//                    path its stand-in (cpu.js), whose destroy_device() stops the worker

import { state, video } from "./state.js";

// Resolved by markReady: the first frame is on screen.
const ready = {};
ready.promise = new Promise((r) => (ready.resolve = r));

export const hook = {
  ready: ready.promise,
  get state() {
    return state.phase;
  },
  get recoveries() {
    return state.recoveries;
  },
  cameraOn: () => !!state.stream,
  classAt: (u, v) => state.app.class_at(u, v),
  netSize: () => (state.app ? [...state.app.net_size()] : []),
  mirrored: () => !!(state.settings && state.settings.camera.mirror),
  backend: () => state.backend,
  watchdogChecks: () => state.watchdogChecks,
  tuning: () => (state.app && state.backend === "webgpu" ? JSON.parse(state.app.tuning()) : null),
  frames: () => (state.app ? state.app.frames() : 0),
  classMap: (raw = false) =>
    state.app.class_maps().then((m) => ({ width: m.width, height: m.height, data: raw ? m.raw : m.shown })),
  classMaps: () => state.app.class_maps(),
  sourceSize: () =>
    state.source === "image"
      ? { kind: state.source, width: state.still.width, height: state.still.height }
      : { kind: state.source, width: video.videoWidth, height: video.videoHeight },
  sourcePixels: () => {
    const { width, height } = hook.sourceSize();
    const c = new OffscreenCanvas(width, height).getContext("2d");
    c.drawImage(state.source === "image" ? state.still : video, 0, 0);
    return c.getImageData(0, 0, width, height);
  },
  get app() {
    return state.app;
  },
};

/** The first frame is on screen. */
export const markReady = () => ready.resolve();

window.enet = hook;
