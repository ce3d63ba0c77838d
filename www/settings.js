// The page's settings: one object (state.settings), started from the wasm's defaults, shown
// by the controls, and given to the App whole (App.apply_settings), also after a device loss.

import { $, errorText, message, state } from "./state.js";
import { hook } from "./hook.js";

// The chosen network input size is remembered across visits.
const SIZE_KEY = "enet.resolution";

// The controls whose values are settings; disabled in the HTML until these are known.
const SETTING_CONTROLS = ["resolution", "view-mode", "opacity", "edges", "smoothing", "strength"];

/** Starts the settings from the wasm's defaults and the remembered size, builds the size
 * menu from the wasm's size steps, and shows it all in the controls. */
export function initSettings() {
  const { wasm } = state;
  const steps = [...wasm.size_steps()];
  state.settings = wasm.default_settings();
  let saved = null;
  try {
    saved = localStorage.getItem(SIZE_KEY);
  } catch (_) {
    /* storage disabled */
  }
  // The timing panel may have been opened before the wasm was up.
  state.settings.timingDetail = $("timing").open;
  if (saved === "auto") state.settings.size = "auto";
  else if (steps.includes(Number(saved))) state.settings.size = Number(saved);
  const menu = $("resolution");
  menu.append(...steps.map((s) => new Option(String(s), String(s))));
  relabelSizes();
  showSettings();
  for (const id of SETTING_CONTROLS) $(id).disabled = false;
  $("strength").disabled = !state.settings.smoothing;
}

/** The controls show the settings. */
function showSettings() {
  const s = state.settings;
  $("resolution").value = String(s.size);
  $("view-mode").value = s.view;
  $("opacity").value = String(s.opacity);
  $("edges").checked = s.sharpEdges;
  $("smoothing").checked = s.smoothing;
  $("strength").value = String(s.strength);
}

/** Changes some settings (`patch`: fields of the settings object) and gives them to the App. */
export function updateSettings(patch) {
  if (!state.settings) return;
  Object.assign(state.settings, patch);
  if (state.app) state.app.apply_settings(state.settings);
}

/** A size choice from the menu ("auto" or a shorter side), remembered for the next visit. */
export function chooseSize(value) {
  try {
    localStorage.setItem(SIZE_KEY, value);
  } catch (_) {
    /* storage disabled: the choice lasts for this visit */
  }
  updateSettings({ size: value === "auto" ? "auto" : Number(value) });
}

/** Gives `app` (a new one, or one whose device was lost and re-created) all the settings in
 * one call. A precision this GPU cannot run (?precision=) is said, and the default runs. */
export function applyAllSettings(app) {
  try {
    app.apply_settings(state.settings);
  } catch (e) {
    if (e.field !== "precision") throw e;
    const asked = state.settings.precision;
    state.settings.precision = null;
    app.apply_settings(state.settings);
    message(`precision=${asked} is not available here (${e.reason || errorText(e)}); running ${JSON.parse(app.describe()).precision}.`, {
      error: true,
    });
  }
}

// Each size choice is a shorter side; it is named by the network size it gives for what is
// being segmented (a portrait camera gets portrait sizes).
export function relabelSizes() {
  if (!state.wasm) return;
  const { width, height } = hook.sourceSize();
  labelAuto();
  for (const o of $("resolution").options) {
    if (o.value === "auto") continue;
    const side = Number(o.value);
    const [w, h] = width && height ? state.wasm.network_size(width, height, side) : state.wasm.network_size(4, 3, side);
    o.textContent = `${w}×${h}`;
  }
}

// The Auto choice is labelled with the size it runs at now.
export function labelAuto() {
  const auto = $("resolution").options[0];
  const size = state.app && state.app.adaptive() ? state.app.net_size() : [];
  auto.textContent = size.length ? `Auto · ${size[0]}×${size[1]}` : "Auto";
}
