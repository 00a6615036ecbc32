// A section page (/status/{section}): the section's widgets in the order and size its perspective's
// layout gives them, live. The page holds no figure of its own: the widgets come from
// /api/status/sections/{id} (cut to the viewer's rights), their arrangement from
// /api/status/layouts/{perspective}; new observations refetch the section (throttled) and a saved
// layout rearranges the open page.

import { getJSON, lang, liveStream, loadLayout, perspectiveOf, pick, clock, sectionBar, setLang, throttled } from "./common.js";
import { chosen, fill } from "./widgets.js";

const root = document.querySelector(".screen");
const $ = (id) => document.getElementById(id);
const TEXT = {
  ko: { live: "실시간", connecting: "연결 중", reconnecting: "다시 연결 중", other: "English", updated: "갱신",
        failed: "자료를 불러오지 못했습니다", empty: "이 분야에 볼 수 있는 자료가 없습니다" },
  en: { live: "Live", connecting: "Connecting", reconnecting: "Reconnecting", other: "한국어", updated: "Updated",
        failed: "Could not load the data", empty: "Nothing in this section you may see" },
};
const t = (key) => TEXT[lang()][key];
const { view, perspective, explicit } = perspectiveOf(root.dataset);
const state = { sections: [], entry: null, section: null };

async function arrange() {
  const { sections } = await loadLayout(perspective, { mine: root.dataset.mine.split(",").filter(Boolean) });
  state.sections = sections;
  state.entry = sections.find((s) => s.id === root.dataset.section) ?? null;
  sectionBar($("section-bar"), sections, { current: root.dataset.section, view: explicit ? view : null });
}

async function load() {
  state.section = await getJSON(`/api/status/sections/${encodeURIComponent(root.dataset.section)}`);
  await draw();
}

async function draw() {
  const section = state.section;
  $("screen-error").hidden = true;
  $("section-title").textContent = pick(section.title);
  document.title = `${pick(section.title)} — citydesk`;
  $("updated").textContent = section.updated ? `${t("updated")} ${clock(section.updated, true)}` : "";
  const widgets = chosen(section, state.entry);
  await fill($("widgets"), widgets, { size: state.entry?.size ?? "m" });
  if (!widgets.length) $("widgets").insertAdjacentHTML("beforeend", `<p class="none">${t("empty")}</p>`);
  root.dataset.ready = "1"; // for tests and kiosks: the first full picture is on screen
}

function setLive(s) {
  const el = $("live");
  el.dataset.state = s;
  el.querySelector(".txt").textContent = t(s);
}

function fail(err) {
  const el = $("screen-error");
  el.textContent = `${t("failed")}: ${err.message}`;
  el.hidden = false;
}

function labels() {
  $("lang").textContent = t("other");
  $("lang").setAttribute("aria-pressed", String(lang() === "en"));
  root.dataset.lang = lang();
  document.documentElement.lang = lang();
}

$("lang").addEventListener("click", () => {
  setLang(lang() === "ko" ? "en" : "ko");
  labels();
  setLive($("live").dataset.state);
  sectionBar($("section-bar"), state.sections, { current: root.dataset.section, view: explicit ? view : null });
  if (state.section) draw().catch(fail);
});

const refresh = throttled(() => load().catch(fail), 750);
const rearrange = throttled(() => arrange().then(draw).catch(fail), 250);
let drop = false;
let resizing = null;
window.addEventListener("resize", () => { // a new column count for the new shape
  clearTimeout(resizing);
  resizing = setTimeout(() => { if (state.section) draw().catch(fail); }, 200);
});

async function start() {
  labels();
  setLive("connecting");
  await arrange();
  await load();
  liveStream("/api/status/stream", {
    open: () => { setLive("live"); if (drop) refresh(); }, // catch up on what we missed
    error: () => { drop = true; setLive("reconnecting"); },
    ping: () => setLive("live"),
    observations: refresh,
    resync: refresh,
    event: refresh, // an events widget lists them
    layout: (data) => { if (!data?.perspective || data.perspective === perspective) rearrange(); },
  });
}

start().catch(fail);
