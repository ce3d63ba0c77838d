// What is segmented and with which model: the built-in model's download, a weights file,
// and an image or video file chosen or dropped instead of the camera.

import { $, errorText, filePicker, message, setState, state, video } from "./state.js";
import { updateSettings } from "./settings.js";
import { createApp, describe, layoutCanvas, run } from "./frames.js";
import { renderLegend } from "./controls.js";
import { defaultFps, startSource, stopCamera } from "./camera.js";

// The built-in model: a static file next to the page (not inside the wasm), so the browser
// caches it on its own and a new model needs no new wasm.
const MODEL_URL = "assets/enet-camvid.safetensors";

// Downloads the built-in model, reporting progress as (received bytes, total or 0). Rejects
// with a reason a person can act on; the bytes are validated by the caller.
export async function fetchModel(onProgress) {
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

export function showProgress(received, total) {
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
export async function builtInModel(download) {
  let bytes;
  try {
    bytes = await download;
    state.wasm.validate_weights(bytes);
  } catch (e) {
    $("progress").hidden = true;
    setState("no-model");
    $("status").textContent = "no model loaded";
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

export async function loadWeightsFile(file) {
  try {
    const bytes = new Uint8Array(await file.arrayBuffer()); // fails for a file too large to read
    if (state.app) {
      // Validated exactly as the CLI does; on error the old model stays. (On the CPU path the
      // worker loads it: a Promise.)
      await state.app.load_weights(bytes);
      state.weights = bytes;
      // Another model, other classes: all of them shown again (as the App now does).
      updateSettings({ hidden: [] });
      renderLegend();
      describe();
      message("");
    } else {
      await createApp(bytes);
      message("");
      if (state.pendingMedia) await openMedia(state.pendingMedia);
      else await startSource();
      state.pendingMedia = null;
    }
  } catch (e) {
    message(`${file.name} was not loaded: ${errorText(e)}${state.app ? " The previous model keeps running." : ""}`, {
      error: true,
    });
  }
}

export async function openMedia(file) {
  if (!state.app) {
    state.pendingMedia = file;
    return message(`${file.name} will be segmented once a model is loaded: choose a weights file.`, {
      actions: [filePicker("Load weights…", ".safetensors", loadWeightsFile)],
    });
  }
  // The file is opened before the current source stops: a file that cannot be used leaves
  // the camera (or the previous picture) running.
  const keeps = state.source ? " What was running keeps running." : "";
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
    if (state.still) state.still.close();
    state.still = null;
    state.source = "video";
    updateSettings({ camera: { ...state.settings.camera, fps: defaultFps() } });
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
      state.wasm.check_picture(new Uint8Array(await file.arrayBuffer()));
    } catch (e) {
      return message(`${file.name}: ${errorText(e)}.${keeps}`, { error: true });
    }
    try {
      picture = await decodeImage(file);
    } catch (e) {
      return message(`${file.name} is not an image this browser can decode (${errorText(e)}).${keeps}`, { error: true });
    }
    stopCamera();
    if (state.still) state.still.close();
    state.still = picture.bitmap;
    state.source = "image";
    message(picture.note);
  }
  layoutCanvas();
  run();
}

// Very large pictures are scaled down first (the size policy's picture_size: a GPU texture
// side is limited and the network never runs larger). Returns {bitmap, note}.
async function decodeImage(file) {
  const full = await createImageBitmap(file);
  const [w, h] = state.wasm.picture_size(full.width, full.height);
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
