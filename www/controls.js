// The controls: buttons, menus and sliders (each a setting, see settings.js), the legend's
// class toggles, pointing at a pixel, the snapshot, and files dropped on the page.

import { $, canvas, setState, state, video } from "./state.js";
import { hook } from "./hook.js";
import { chooseSize, labelAuto, relabelSizes, updateSettings } from "./settings.js";
import { layoutCanvas, redrawIfStill, refreshStill } from "./frames.js";
import { onVisibility, switchCamera, watchCamera } from "./camera.js";
import { loadWeightsFile, openMedia } from "./media.js";
import { wireTiming } from "./timing.js";

// The legend: one button per class, pressing it hides or shows that class's colour.
export function renderLegend() {
  const classes = JSON.parse(state.app.legend());
  state.classNames = classes.map((c) => c.name);
  const hidden = new Set(state.settings.hidden);
  $("legend").replaceChildren(
    ...classes
      .map((c, i) => ({ ...c, i }))
      .filter((c) => !c.void)
      .map((c) => {
        const li = document.createElement("li");
        const b = document.createElement("button");
        b.type = "button";
        b.setAttribute("aria-pressed", String(!hidden.has(c.i)));
        b.title = `hide or show ${c.name}`;
        const sw = document.createElement("i");
        sw.style.background = `rgb(${c.color.join(",")})`;
        b.append(sw, c.name);
        b.onclick = () => {
          const on = b.getAttribute("aria-pressed") !== "true";
          b.setAttribute("aria-pressed", String(on));
          const rest = state.settings.hidden.filter((k) => k !== c.i);
          updateSettings({ hidden: on ? rest : [...rest, c.i] });
          redrawIfStill();
        };
        li.append(b);
        return li;
      }),
  );
}

export function takeSnapshot() {
  state.wantSnapshot = false;
  // Same task as the draw: the WebGPU canvas still holds the frame.
  canvas.toBlob((blob) => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `enet-${new Date().toISOString().replace(/[:.]/g, "-")}.png`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }, "image/png");
}

// Point at (or tap) the picture: the class shown there, by name, next to the pointer. Wired
// again on a canvas put in place of the first (state.freshCanvas).
export function wireProbe() {
  const tip = $("probe");
  let asking = false;
  let hideTimer = 0;
  const ask = async (e) => {
    if (!state.app || asking || !hook.frames()) return;
    const r = canvas.getBoundingClientRect();
    const u = (e.clientX - r.left) / r.width;
    const v = (e.clientY - r.top) / r.height;
    asking = true;
    let c = -1;
    try {
      c = await state.app.class_at(u, v);
    } catch (_) {
      /* a lost device: nothing to say */
    }
    asking = false;
    if (c < 0 || c >= state.classNames.length) return;
    const s = $("stage").getBoundingClientRect();
    tip.textContent = state.classNames[c];
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

// The settings' controls: each change goes into the settings, which go to the App whole.
function wireSettings() {
  $("resolution").onchange = () => {
    chooseSize($("resolution").value);
    if (!state.app) return;
    labelAuto();
    if (state.source === "image") refreshStill();
  };
  $("view-mode").onchange = () => {
    updateSettings({ view: $("view-mode").value });
    layoutCanvas();
    redrawIfStill();
  };
  $("edges").onchange = () => {
    updateSettings({ sharpEdges: $("edges").checked });
    redrawIfStill();
  };
  $("smoothing").onchange = () => {
    $("strength").disabled = !$("smoothing").checked;
    updateSettings({ smoothing: $("smoothing").checked });
  };
  $("strength").oninput = () => updateSettings({ strength: Number($("strength").value) });
  $("opacity").oninput = () => {
    updateSettings({ opacity: Number($("opacity").value) });
    redrawIfStill();
  };
}

export function wireControls() {
  $("pause").onclick = () => {
    state.paused = !state.paused;
    $("pause").textContent = state.paused ? "Resume" : "Pause";
    setState(state.paused ? "paused" : "running");
    if (state.paused && state.source === "camera") video.pause();
    if (!state.paused && state.source !== "image") video.play();
  };
  $("snapshot").onclick = () => {
    state.wantSnapshot = true;
    if (state.paused || state.source === "image") {
      state.app.redraw();
      takeSnapshot();
    }
  };
  $("switch").onclick = switchCamera;
  wireSettings();
  wireTiming();
  setInterval(watchCamera, 1000);
  wireProbe();
  new ResizeObserver(() => layoutCanvas()).observe($("stage"));
  addEventListener("resize", () => layoutCanvas());
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
