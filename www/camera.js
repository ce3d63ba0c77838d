// The camera: opening it (the rear one by default), switching, releasing it while the tab is
// hidden, and telling a person when it stops, gives no picture, or loses its permission.

import { $, button, errorText, filePicker, message, setState, state, video } from "./state.js";
import { updateSettings } from "./settings.js";
import { layoutCanvas, run } from "./frames.js";
import { openMedia } from "./media.js";

export async function startCamera(deviceId) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw Object.assign(new Error("this browser offers no camera API (the page must be served over HTTPS)"), {
      name: "NotSupportedError",
    });
  }
  stopCamera();
  const video_ = deviceId
    ? { deviceId: { exact: deviceId } }
    : { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } };
  const stream = await navigator.mediaDevices.getUserMedia({ video: video_, audio: false });
  state.stream = stream;
  const track = stream.getVideoTracks()[0];
  track.addEventListener("ended", () => {
    // A track of a camera already replaced (switched, restarted) ends quietly.
    if (state.stream !== stream) return;
    // The camera is released so that the no-picture watchdog does not replace this message.
    stopCamera();
    setState("no-camera");
    message("The camera stopped (unplugged, or taken by another app).", {
      error: true,
      actions: [button("Restart camera", () => startSource())],
    });
  });
  video.srcObject = stream;
  state.cameraSince = performance.now();
  // The source is the camera from here on: a camera that never sends a frame leaves play()
  // waiting, and the watchdog (watchCamera) must see it.
  state.source = "camera";
  await video.play();
  const settings = track.getSettings();
  // A front (user-facing) camera is shown as a mirror, as people expect to see themselves.
  // Adaptive size keeps up with the camera's frame rate (the default where it is not told).
  updateSettings({
    camera: { mirror: settings.facingMode === "user", fps: settings.frameRate || defaultFps() },
  });
  layoutCanvas();
  state.cameras = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput");
  $("switch").disabled = state.cameras.length < 2;
}

/** The frame rate adaptive size assumes for a source that does not say (the wasm's default). */
export const defaultFps = () => state.wasm.default_settings().camera.fps;

export function stopCamera() {
  if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
  state.stream = null;
  if (state.settings) updateSettings({ camera: { ...state.settings.camera, mirror: false } });
}

export async function startSource() {
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

export async function switchCamera() {
  if (state.cameras.length < 2) return;
  state.cameraIndex = (state.cameraIndex + 1) % state.cameras.length;
  try {
    await startCamera(state.cameras[state.cameraIndex].deviceId);
    message("");
    run();
  } catch (e) {
    message(`That camera could not start: ${errorText(e)}`, { error: true });
  }
}

// The camera is released while the tab is hidden (its light goes off, the battery rests)
// and the same camera comes back when the tab is shown again.
export async function onVisibility() {
  state.hiddenPause = document.hidden;
  if (document.hidden && state.source === "camera" && state.stream) {
    state.hiddenCamera = state.stream.getVideoTracks()[0].getSettings().deviceId || "";
    stopCamera();
  } else if (!document.hidden && state.hiddenCamera !== null && state.source === "camera") {
    const id = state.hiddenCamera;
    state.hiddenCamera = null;
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

// A camera that gives no picture (taken by another app, covered by the system, or broken)
// is reported after a few seconds, and the report goes once frames come. While the GPU works
// on a frame the browser may deliver no camera frames at all (a slow phone, a software GPU
// taking seconds a frame), so only time with the GPU idle counts: a slow GPU is not a broken
// camera.
const STALL_MS = 5000;
let lastWatch = 0;
export function watchCamera() {
  // Called each second: a longer gap means the page's own thread was held (a model's GPU
  // pipelines compiled, a new network size planned), when no camera frame could reach it.
  const now = performance.now();
  const held = now - lastWatch > 2000;
  lastWatch = now;
  state.watchdogChecks++;
  if (state.source !== "camera" || !state.stream || state.paused || document.hidden) return;
  if (!state.app || state.recreating || state.app.working() || held) {
    state.gpuBusyAt = performance.now();
    return;
  }
  const quiet = performance.now() - Math.max(state.lastFrameAt, state.cameraSince, state.gpuBusyAt);
  if (quiet > STALL_MS && !state.stallShown) {
    state.stallShown = true;
    state.beforeStall = state.phase;
    setState("no-camera");
    message(
      `The camera gives no picture: no frame for ${Math.round(quiet / 1000)} s. Another app may be using it, ` +
        "or the system may have paused it. You can segment an image or a video file instead.",
      {
        error: true,
        actions: [button("Try the camera again", startSource), filePicker("Open image or video…", "image/*,video/*", openMedia)],
      },
    );
  } else if (quiet <= STALL_MS && state.stallShown) {
    state.stallShown = false;
    message("");
    // Back to the phase before the report: "running" only once a frame is drawn (one drawn
    // meanwhile has set it already).
    if (state.phase === "no-camera") setState(state.beforeStall);
  }
}

// A camera permission withdrawn while the page runs (site settings) is said as such.
export async function watchPermission() {
  if (!navigator.permissions) return;
  try {
    const p = await navigator.permissions.query({ name: "camera" });
    p.addEventListener("change", () => {
      if (p.state !== "denied" || state.source !== "camera") return;
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
