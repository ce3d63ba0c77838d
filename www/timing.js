// The timing panel: the frame's GPU time and its slowest dispatches, while it is open.

import { $, state } from "./state.js";
import { updateSettings } from "./settings.js";

function renderTimings() {
  const panel = $("timing");
  if (!state.app || !panel.open || state.backend === "cpu") return;
  const body = $("timing-body");
  const t = JSON.parse(state.app.timings());
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

// Per-dispatch timing is asked of the App only while the panel is open.
export function wireTiming() {
  $("timing").addEventListener("toggle", () => updateSettings({ timingDetail: $("timing").open }));
  setInterval(renderTimings, 400);
}
