// The layout editor (/status/layouts/{perspective}): staff with layouts.manage reorder the sections
// of a perspective and the widgets within each, show or hide them, choose a section's size and, for
// the kiosk, its timing; Save sends PUT /api/status/layouts/{perspective}, after which every open
// screen of that perspective rearranges itself (the server's "layout" notice). Reset puts the
// packaged default back into the editor, to be saved like any other change.
//
// Keyboard: every control is a button, checkbox or select in document order; ↑ ↓ keep the focus on
// the moved item's button. Pointer: items can also be dragged.

import { esc, getJSON, lang, pick } from "./common.js";

const root = document.querySelector(".lay");
const $ = (id) => document.getElementById(id);
const perspective = root.dataset.perspective;
const DEFAULT = JSON.parse($("default-layout").textContent);
const TEXT = {
  ko: { shown: "표시", size: "크기", up: "위로", down: "아래로", widgets: "위젯", saved: "저장했습니다. 열린 화면이 따라 바뀝니다.",
        reset: "기본 배치를 불러왔습니다. 저장하면 적용됩니다.", failed: "저장하지 못했습니다", sizes: { s: "작게", m: "보통", l: "크게" } },
  en: { shown: "Shown", size: "Size", up: "Move up", down: "Move down", widgets: "Widgets", saved: "Saved. Open screens follow.",
        reset: "Default loaded. Save to apply it.", failed: "Could not save", sizes: { s: "Small", m: "Medium", l: "Large" } },
};
const t = (key) => TEXT[lang()][key];
const state = { sections: [], catalogue: new Map(), kept: [], drag: null };

/** The editor's model from a layout: its sections in order (shown), then the others (hidden);
 * each with its widgets in the layout's order (shown), then the rest (hidden). */
function model(layout) {
  const placed = new Map(layout.sections.map((p) => [p.id, p]));
  const ids = [...placed.keys(), ...[...state.catalogue.keys()].filter((id) => !placed.has(id))];
  return ids.filter((id) => state.catalogue.has(id)).map((id) => {
    const { title, widgets } = state.catalogue.get(id);
    const p = placed.get(id);
    const keep = p?.widgets ?? widgets.map((w) => w.id);
    const ordered = [...keep.map((wid) => widgets.find((w) => w.id === wid)).filter(Boolean),
                     ...widgets.filter((w) => !keep.includes(w.id))];
    return { id, title, shown: Boolean(p), size: p?.size ?? "m",
             widgets: ordered.map((w) => ({ id: w.id, label: w.label, kind: w.kind, shown: keep.includes(w.id) })) };
  });
}

/** The layout to save: shown sections in order; ``widgets`` null when all are shown in the
 * section's own order (so the section's later widgets appear by themselves). */
function layoutOf() {
  const sections = state.sections.filter((s) => s.shown).map((s) => {
    const native = state.catalogue.get(s.id).widgets.map((w) => w.id);
    const kept = s.widgets.filter((w) => w.shown).map((w) => w.id);
    const all = kept.length === native.length && kept.every((id, i) => id === native[i]);
    return { id: s.id, widgets: all ? null : kept, size: s.size };
  });
  const body = { sections: [...sections, ...state.kept] };
  if (perspective === "kiosk") body.kiosk = { interval_s: Number($("interval").value), idle_resume_s: Number($("idle").value) };
  return body;
}

function move(list, from, to) {
  if (to < 0 || to >= list.length || from === to) return false;
  list.splice(to, 0, list.splice(from, 1)[0]);
  return true;
}

// -- drawing -----------------------------------------------------------------------------------------

function arrows(key, i, n) {
  return `<button type="button" class="secondary mv" data-act="up" data-key="${key}:up" aria-label="${t("up")}" title="${t("up")}"${i === 0 ? " disabled" : ""}>↑</button>` +
    `<button type="button" class="secondary mv" data-act="down" data-key="${key}:down" aria-label="${t("down")}" title="${t("down")}"${i === n - 1 ? " disabled" : ""}>↓</button>`;
}

function draw(focusKey) {
  const n = state.sections.length;
  $("lay-sections").innerHTML = state.sections.map((s, i) => {
    const widgets = s.widgets.map((w, k) =>
      `<li class="lay-w" draggable="true" data-section="${esc(s.id)}" data-widget="${esc(w.id)}" data-i="${k}"${w.shown ? "" : " data-hidden"}>` +
      `<span class="grip" aria-hidden="true">⠿</span><label><input type="checkbox" data-act="show" data-key="${esc(s.id)}.${esc(w.id)}:show"${w.shown ? " checked" : ""}> ${esc(pick(w.label))} <small>${esc(w.kind)}</small></label>` +
      `${arrows(`${esc(s.id)}.${esc(w.id)}`, k, s.widgets.length)}</li>`).join("");
    return `<li class="lay-s" draggable="true" data-section="${esc(s.id)}" data-i="${i}"${s.shown ? "" : " data-hidden"}>` +
      `<div class="lay-row"><span class="grip" aria-hidden="true">⠿</span>` +
      `<label class="nm"><input type="checkbox" data-act="show" data-key="${esc(s.id)}:show"${s.shown ? " checked" : ""}> ${esc(pick(s.title))}</label>` +
      `<label class="sz">${t("size")} <select data-act="size" data-key="${esc(s.id)}:size">${["s", "m", "l"].map((z) =>
        `<option value="${z}"${z === s.size ? " selected" : ""}>${t("sizes")[z]}</option>`).join("")}</select></label>` +
      `${arrows(esc(s.id), i, n)}</div>` +
      `<details${state.open?.has(s.id) ? " open" : ""}><summary>${t("widgets")} (${s.widgets.filter((w) => w.shown).length}/${s.widgets.length})</summary>` +
      `<ol class="lay-widgets">${widgets}</ol></details></li>`;
  }).join("");
  if (focusKey) root.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus();
  root.dataset.ready = "1";
}

/** Where an event happened: the section (and widget) item and its list. */
function target(el) {
  const li = el.closest("li.lay-w, li.lay-s");
  if (!li) return null;
  const section = state.sections.find((s) => s.id === li.dataset.section);
  if (li.classList.contains("lay-w")) return { list: section.widgets, item: section.widgets[Number(li.dataset.i)], i: Number(li.dataset.i), li };
  return { list: state.sections, item: section, i: Number(li.dataset.i), li };
}

function remember() { // keep open the widget lists that are open across a redraw
  state.open = new Set([...root.querySelectorAll("li.lay-s > details[open]")].map((d) => d.parentElement.dataset.section));
}

$("lay-sections").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-act]");
  const at = b && target(b);
  if (!at) return;
  const to = at.i + (b.dataset.act === "up" ? -1 : 1);
  remember();
  if (move(at.list, at.i, to)) {
    // the focus stays with the moved item's same button (or the other one at an end of the list)
    const edge = to === 0 || to === at.list.length - 1;
    const other = b.dataset.act === "up" ? "down" : "up";
    draw(edge ? b.dataset.key.replace(/:(up|down)$/, `:${other}`) : b.dataset.key);
  }
});

$("lay-sections").addEventListener("change", (e) => {
  const at = target(e.target);
  if (!at) return;
  if (e.target.dataset.act === "show") at.item.shown = e.target.checked;
  if (e.target.dataset.act === "size") at.item.size = e.target.value;
  remember();
  draw(e.target.dataset.key);
});

// Dragging: an item moves within its own list (sections among sections, widgets within a section).
$("lay-sections").addEventListener("dragstart", (e) => {
  const at = target(e.target);
  if (!at) return;
  e.stopPropagation();
  state.drag = at;
  e.dataTransfer.effectAllowed = "move";
  e.dataTransfer.setData("text/plain", at.li.dataset.widget ?? at.li.dataset.section);
});
$("lay-sections").addEventListener("dragover", (e) => {
  const at = target(e.target);
  if (at && state.drag && at.list === state.drag.list) e.preventDefault();
});
$("lay-sections").addEventListener("drop", (e) => {
  const at = target(e.target);
  if (!at || !state.drag || at.list !== state.drag.list) return;
  e.preventDefault();
  remember();
  if (move(at.list, state.drag.i, at.i)) draw();
  state.drag = null;
});

// -- saving ------------------------------------------------------------------------------------------

function say(text, ok = true) {
  const el = $("lay-status");
  el.textContent = text;
  el.className = ok ? "ok" : "error";
}

$("save").addEventListener("click", async () => {
  const r = await fetch(`/api/status/layouts/${encodeURIComponent(perspective)}`, {
    method: "PUT", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(layoutOf()),
  });
  if (r.ok) return say(t("saved"));
  const body = await r.json().catch(() => null);
  say(`${t("failed")}: ${body?.error?.message ?? `HTTP ${r.status}`}`, false);
});

$("reset").addEventListener("click", () => {
  load(DEFAULT);
  say(t("reset"));
});

function load(layout) {
  state.sections = model(layout);
  // Sections placed in the layout that have nothing to show right now are not listed, but kept as
  // they are: a feed that is down for a day must not drop its section from the screens.
  state.kept = layout.sections.filter((p) => !state.catalogue.has(p.id));
  $("lay-kept").hidden = !state.kept.length;
  $("lay-kept").querySelector("span.ids").textContent = state.kept.map((p) => p.id).join(", ");
  if (perspective === "kiosk") {
    const timing = layout.kiosk ?? DEFAULT.kiosk;
    $("interval").value = timing.interval_s;
    $("idle").value = timing.idle_resume_s;
  }
  draw();
}

async function start() {
  root.dataset.lang = lang();
  document.documentElement.lang = lang();
  const [layout, listing] = await Promise.all([
    getJSON(`/api/status/layouts/${encodeURIComponent(perspective)}`), getJSON("/api/status/sections"),
  ]);
  const sections = await Promise.all(listing.sections.map((s) => getJSON(`/api/status/sections/${encodeURIComponent(s.id)}`)));
  for (const s of sections) state.catalogue.set(s.id, { title: s.title, widgets: s.widgets });
  load(layout);
}

start().catch((err) => say(`${err.message}`, false));
