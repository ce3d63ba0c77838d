// The CPU path's worker (a module worker started by cpu.js): the CPU engine (CpuApp, wasm
// SIMD) runs here so that the page's thread never waits on a frame. Each request carries an
// id; each gets one answer with that id ({id, error} when it failed), in order.
//
//   {type: "init", weights}      -> {describe, model, legend, canDraw}
//   {type: "weights", weights}   -> {describe, model, legend}; on error the old model stays
//   {type: "settings", size, targetMs}   (no answer)
//   {type: "frame", image, strength, still}   image: an ImageBitmap (given back) or ImageData;
//                                still: a picture (any size), not a camera's or video's frame
//                                -> {shown, net, ms (engine), readMs (pixels), totalMs, frame, image}
//   {type: "raw"}                -> {raw, frame}: the last frame's own classes

import init, { CpuApp } from "./enet-wgpu.js";

let app = null;
let settings = { size: 0, targetMs: 0 };
let canvas = null;
let ctx = null;

// Size and frame time are applied again to a new model's engine.
function applySettings() {
  app.set_size(settings.size);
  if (settings.targetMs > 0) app.set_target_ms(settings.targetMs);
}

function replace(weights) {
  const next = new CpuApp(weights);
  if (app) app.free();
  app = next;
  applySettings();
  return { describe: app.describe(), model: JSON.parse(app.model_info()), legend: app.legend() };
}

// RGBA of a bitmap at its own size, through a 2D canvas kept between frames.
function pixels(image) {
  if (!(image instanceof ImageBitmap)) return image;
  const { width, height } = image;
  if (!canvas) {
    canvas = new OffscreenCanvas(width, height);
    ctx = canvas.getContext("2d", { willReadFrequently: true });
  } else if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  ctx.drawImage(image, 0, 0);
  return ctx.getImageData(0, 0, width, height);
}

const handlers = {
  async init({ weights }) {
    await init();
    return { ...replace(weights), canDraw: typeof OffscreenCanvas === "function" };
  },
  weights: ({ weights }) => replace(weights),
  settings(s) {
    settings = { size: s.size, targetMs: s.targetMs };
    if (app) applySettings();
  },
  frame({ image, strength, still }) {
    const t0 = performance.now();
    const data = pixels(image);
    const readMs = performance.now() - t0;
    // Straight into the engine's own buffer: one copy, nothing allocated in wasm per frame.
    app.frame_input(data.data.length).set(data.data);
    const shown = app.segment(data.width, data.height, strength, !!still);
    const answer = { shown, net: [...app.net_size()], ms: app.last_ms(), readMs, totalMs: performance.now() - t0, frame: app.frames() };
    // The bitmap goes back to be drawn with its classes.
    return image instanceof ImageBitmap ? [{ ...answer, image }, [shown.buffer, image]] : [answer, [shown.buffer]];
  },
  raw() {
    const raw = app.raw_classes();
    return [{ raw, frame: app.frames() }, [raw.buffer]];
  },
};

// One message at a time: a frame's answer leaves before the next message is read.
let queue = Promise.resolve();
self.onmessage = ({ data }) => {
  queue = queue.then(async () => {
    let answer;
    let transfer = [];
    try {
      const out = await handlers[data.type](data);
      if (out === undefined) return;
      [answer, transfer] = Array.isArray(out) ? out : [out, []];
    } catch (e) {
      if (data.image instanceof ImageBitmap) data.image.close();
      // A trap (a Rust panic) leaves the engine unusable: the page starts a new worker.
      answer = { error: (e && e.message) || String(e), fatal: e instanceof WebAssembly.RuntimeError };
    }
    self.postMessage({ id: data.id, ...answer }, transfer);
  });
};
