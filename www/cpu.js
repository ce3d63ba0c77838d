// The CPU path, the page's side: where WebGPU is missing, gives no device or only a software
// adapter (or ?backend=cpu), the CPU engine runs in a worker (cpu-worker.js) and CpuBackend
// stands in for the wasm App, with the methods the page calls on it. One frame is in flight at
// a time; a camera frame that comes meanwhile is skipped. Each answer is drawn with Canvas 2D
// as overlay.wgsl draws it: class colours at the network's size, scaled up by nearest neighbour
// over the frame (no sharp edges on this path).

const WORKER_URL = new URL("cpu-worker.js", import.meta.url);
const MAX_CANVAS_SIDE = 4096;

/** Class-map pixel that picture pixel `o` of `n` reads, of `m`: the overlay shader's rule. */
const nearest = (o, n, m) => Math.min(Math.floor(((2 * o + 1) * m) / (2 * n)), m - 1);

// A page canvas rather than an OffscreenCanvas: Safari before 16.4 has none.
const scratch = (width, height) => Object.assign(document.createElement("canvas"), { width, height });

export class CpuBackend {
  /** The engine in a new worker with `weights`; `on`: {drawn, failed(error), lost(reason),
   * next} (next: a live frame was skipped meanwhile; the page may send one now). */
  static async create(canvas, weights, on) {
    const ctx = canvas.getContext("2d", { alpha: false });
    if (!ctx) throw new Error("the canvas has no 2D context (it was given to WebGPU)");
    const b = new CpuBackend(canvas, ctx, on);
    try {
      const r = await b.call({ type: "init", weights });
      b.canDraw = r.canDraw;
      b.model(r);
    } catch (e) {
      b.free();
      throw e;
    }
    return b;
  }

  constructor(canvas, ctx, on) {
    Object.assign(this, { canvas, ctx, on });
    this.worker = new Worker(WORKER_URL, { type: "module" });
    this.worker.onmessage = (e) => this.answer(e.data);
    this.worker.onerror = (e) => this.die(e.message || "the CPU engine's worker could not start");
    this.pending = new Map();
    this.nextId = 1;
    this.settings = null;
    this.sent = {}; // the size and frame time the worker has
    this.inFlight = false;
    this.waiting = []; // class_maps calls waiting for the frame in flight
    this.lost = false;
    this.count = 0;
    this.skips = 0;
    this.missed = false; // a frame came while one was in flight
    this.lastMs = null;
    this.last = null; // {image, shown, net, frame}: the frame on screen and its classes
    this.viewSize = null;
    this.colors = scratch(1, 1);
  }

  call(msg, transfer = []) {
    if (this.lost) return Promise.reject(new Error("the CPU engine has stopped"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...msg, id }, transfer);
    });
  }

  answer(data) {
    const p = this.pending.get(data.id);
    this.pending.delete(data.id);
    if (data.fatal) this.die(data.error);
    if (!p) {
      if (data.error) console.warn(`CPU engine: ${data.error}`);
    } else if (data.error) p.reject(new Error(data.error));
    else p.resolve(data);
  }

  /** The worker is gone: the page makes a new backend (as after a lost GPU device). */
  die(reason) {
    if (this.lost) return;
    this.stop(reason);
    console.warn(`The CPU engine stopped: ${reason}`);
    this.on.lost(reason);
  }

  stop(reason) {
    this.lost = true;
    this.worker.terminate();
    for (const p of this.pending.values()) p.reject(new Error(reason));
    this.pending.clear();
  }

  model({ describe, model, legend }) {
    this.text = describe;
    this.modelInfo = model;
    this.legendJson = legend;
    this.palette = JSON.parse(legend);
  }

  free() {
    this.stop("replaced");
    if (this.last) this.last.image.close();
    this.last = null;
  }

  // What the page asks of an App.
  describe() {
    return this.text;
  }
  legend() {
    return this.legendJson;
  }
  load_weights(weights) {
    return this.call({ type: "weights", weights }).then((r) => this.model(r));
  }
  apply_settings(s) {
    const bad = s.hidden.find((c) => !(c >= 0 && c < this.palette.length));
    if (bad !== undefined) throw new Error(`settings.hidden: class ${bad}: the model has ${this.palette.length} classes`);
    this.settings = { ...s, hidden: [...s.hidden], camera: { ...s.camera } };
    this.send_settings(s.size === "auto" ? 0 : s.size, 1000 / s.camera.fps);
  }
  /** The frame rate automatic size keeps up with (as App.set_target_fps). */
  set_target_fps(fps) {
    if (fps > 0 && Number.isFinite(fps)) this.send_settings(this.sent.size, 1000 / fps);
  }
  send_settings(size, targetMs) {
    // Sent only when changed: a new frame time drops what automatic size has measured.
    if (size === this.sent.size && targetMs === this.sent.targetMs) return;
    this.sent = { size, targetMs };
    if (!this.lost) this.worker.postMessage({ type: "settings", size, targetMs });
  }
  adaptive() {
    return this.settings.size === "auto";
  }
  resume_auto_at() {}
  resize(w, h) {
    const side = (n) => Math.min(Math.max(1, n), MAX_CANVAS_SIDE);
    this.viewSize = [side(w), side(h)];
  }
  busy() {
    return this.inFlight;
  }
  working() {
    return this.inFlight;
  }
  is_lost() {
    return this.lost;
  }
  destroy_device() {
    this.die("stopped by the test hook");
  }
  net_size() {
    return this.last ? [...this.last.net] : [];
  }
  frames() {
    return this.count;
  }
  skipped() {
    return this.skips;
  }
  gpu_ms() {
    return null;
  }
  /** The engine's time for the last frame, ms. */
  last_ms() {
    return this.lastMs;
  }

  /** Starts segmenting a playing video's frame; false when skipped (a frame in flight). The
   * page hears of the result through `on.drawn` or `on.failed`. */
  frame_video(video) {
    return this.send(video, false);
  }
  frame_bitmap(bitmap) {
    return this.send(bitmap, true);
  }

  send(source, still) {
    if (this.lost) return false;
    if (this.inFlight) {
      this.skips++;
      this.missed = true;
      return false;
    }
    this.inFlight = true;
    this.missed = false;
    this.segment(source, still);
    return true;
  }

  async segment(source, still) {
    let image = null;
    try {
      image = await createImageBitmap(source);
      const strength = this.settings.smoothing ? this.settings.strength : 0;
      let r;
      if (this.canDraw) {
        r = await this.call({ type: "frame", image, strength, still }, [image]);
        image = r.image;
      } else {
        const pixels = this.pixels(image);
        r = await this.call({ type: "frame", image: pixels, strength, still }, [pixels.data.buffer]);
      }
      if (this.last) this.last.image.close();
      this.last = { image, shown: r.shown, net: r.net, frame: r.frame };
      image = null;
      this.lastMs = r.ms;
      this.count++;
      this.redraw();
      this.idle();
      this.on.drawn();
      // The camera's newest frame at once rather than at its next one (up to a frame time
      // later); a task later, so that class_maps, woken above, asks the worker first.
      if (this.missed) setTimeout(() => !this.inFlight && this.on.next(), 0);
    } catch (e) {
      if (image) image.close();
      this.idle();
      if (!this.lost) this.on.failed(e);
    }
  }

  idle() {
    this.inFlight = false;
    for (const go of this.waiting.splice(0)) go();
  }

  /** RGBA of `image` on this thread, for a worker that cannot draw (no OffscreenCanvas). */
  pixels(image) {
    const c = scratch(image.width, image.height).getContext("2d");
    c.drawImage(image, 0, 0);
    return c.getImageData(0, 0, image.width, image.height);
  }

  /** The last frame's shown and raw classes, read once no frame is in flight, so that both
   * are of the frame on screen (the worker answers in order). */
  async class_maps() {
    while (this.inFlight) await new Promise((go) => this.waiting.push(go));
    if (!this.last) throw new Error("no frame has been segmented yet");
    const { shown, net, frame } = this.last;
    const r = await this.call({ type: "raw" });
    if (r.frame !== frame) throw new Error(`the engine moved on to frame ${r.frame} from ${frame}`);
    return { width: net[0], height: net[1], shown: shown.slice(), raw: r.raw };
  }

  /** Where (`u`, `v`) of the canvas falls in its panel: [column, panel width], or null. */
  column(u, w) {
    const s = this.settings;
    let x = Math.min(Math.floor(u * w), w - 1);
    const pw = s.view === "side" ? Math.max(1, Math.floor(w / 2)) : w;
    if (s.view === "side" && x >= pw) x -= pw;
    if (x >= pw) return null;
    return [s.camera.mirror ? pw - 1 - x : x, pw];
  }

  class_at(u, v) {
    const { width: w, height: h } = this.canvas;
    const at = this.last && u >= 0 && u < 1 && v >= 0 && v < 1 ? this.column(u, w) : null;
    if (!at) return Promise.resolve(-1);
    const [nw, nh] = this.last.net;
    const y = Math.min(Math.floor(v * h), h - 1);
    return Promise.resolve(this.last.shown[nearest(y, h, nh) * nw + nearest(at[0], at[1], nw)]);
  }

  /** The class colours of the last frame at the network size; transparent where a class is
   * not coloured (void, hidden). */
  colorMap() {
    const { shown, net } = this.last;
    const hidden = new Set(this.settings.hidden);
    const lut = new Uint8Array(256 * 4);
    this.palette.forEach((c, i) => {
      if (!c.void && !hidden.has(i)) lut.set([...c.color, 255], i * 4);
    });
    const img = new ImageData(net[0], net[1]);
    const px = img.data;
    for (let i = 0; i < shown.length; i++) {
      const k = shown[i] * 4;
      px[4 * i] = lut[k];
      px[4 * i + 1] = lut[k + 1];
      px[4 * i + 2] = lut[k + 2];
      px[4 * i + 3] = lut[k + 3];
    }
    if (this.colors.width !== net[0] || this.colors.height !== net[1]) Object.assign(this.colors, { width: net[0], height: net[1] });
    this.colors.getContext("2d").putImageData(img, 0, 0);
    return this.colors;
  }

  /** Draws the last frame as the settings ask: overlay, mask or side by side, mirrored for a
   * front camera. */
  redraw() {
    if (!this.last) return;
    const { image } = this.last;
    const [w, h] = this.viewSize || [image.width, image.height].map((n) => Math.min(n, MAX_CANVAS_SIDE));
    const { canvas, ctx: g } = this;
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    const s = this.settings;
    const pw = s.view === "side" ? Math.max(1, Math.floor(w / 2)) : w;
    const panel = (x0, picture, alpha, smooth) => {
      g.setTransform(s.camera.mirror ? -1 : 1, 0, 0, 1, s.camera.mirror ? x0 + pw : x0, 0);
      g.globalAlpha = alpha;
      g.imageSmoothingEnabled = smooth;
      g.drawImage(picture, 0, 0, pw, h);
    };
    const colors = this.colorMap();
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.fillStyle = "#000";
    g.fillRect(0, 0, w, h);
    if (s.view !== "mask") panel(0, image, 1, true);
    if (s.view === "overlay") panel(0, colors, s.opacity, false);
    else panel(s.view === "side" ? pw : 0, colors, 1, false);
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.globalAlpha = 1;
  }
}
