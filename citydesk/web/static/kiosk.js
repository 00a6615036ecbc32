// The kiosk (/kiosk): the sections of the kiosk playlist in turn, full screen, public data only.
//
// The playlist (which sections, how long each stays, how long the screen waits after a touch) is
// server-side, /api/status/layouts/kiosk; this script is only the timer. Any touch, click or key
// pauses the rotation and says so; after ``idle_resume_s`` without input it resumes where it was.
// Arrow keys and a swipe move between screens. Everything is fetched without cookies: a kiosk is a
// public screen even on a browser where staff once signed in.

import { clock, getJSON, lang, liveStream, loadLayout, pick, throttled } from "./common.js";
import { chosen, fill } from "./widgets.js";

const ANONYMOUS = { anonymous: true };
const root = document.querySelector(".kiosk");
const $ = (id) => document.getElementById(id);
const bar = $("kiosk-progress").firstElementChild;
const TEXT = { ko: { empty: "보여 줄 화면이 없습니다", failed: "자료를 불러오지 못했습니다" },
               en: { empty: "No screens to show", failed: "Could not load the data" } };
const t = (key) => TEXT[lang()][key];
const SWIPE_PX = 60;

const state = {
  playlist: [], index: 0, interval: 20, idle: 60,
  paused: false, remaining: 0, since: 0, timer: null, idleTimer: null,
};

async function loadPlaylist() {
  const { layout, sections } = await loadLayout("kiosk", ANONYMOUS);
  state.playlist = sections;
  state.interval = Math.max(1, layout.kiosk?.interval_s ?? 20);
  state.idle = Math.max(1, layout.kiosk?.idle_resume_s ?? 60);
  $("kiosk-dots").innerHTML = sections.map((s, i) => `<li data-i="${i}" title="${pick(s.title)}"></li>`).join("");
}

/** Show screen ``i`` (wrapping), its figures fetched afresh; the timer restarts unless paused. */
async function show(i) {
  const n = state.playlist.length;
  if (!n) {
    $("kiosk-title").textContent = t("empty");
    $("kiosk-stage").innerHTML = "";
    root.dataset.state = "empty";
    return;
  }
  state.index = ((i % n) + n) % n;
  const entry = state.playlist[state.index];
  await draw(entry);
  [...$("kiosk-dots").children].forEach((li, k) => li.toggleAttribute("data-current", k === state.index));
  root.dataset.index = String(state.index);
  root.dataset.section = entry.id;
  if (!state.paused) run(state.interval * 1000);
  else state.remaining = state.interval * 1000; // a new screen gets its full time when rotation resumes
}

async function draw(entry) {
  const section = await getJSON(`/api/status/sections/${encodeURIComponent(entry.id)}`, ANONYMOUS);
  if (state.playlist[state.index] !== entry) return; // moved on while this was loading
  $("kiosk-title").textContent = pick(section.title);
  await fill($("kiosk-stage"), chosen(section, entry), { size: entry.size ?? "l", ...ANONYMOUS });
  root.dataset.ready = "1";
}

// -- the timer and its progress bar ----------------------------------------------------------------

function run(ms) {
  clearTimeout(state.timer);
  state.remaining = ms;
  state.since = performance.now();
  state.timer = setTimeout(() => show(state.index + 1).catch(fail), ms);
  const total = state.interval * 1000;
  bar.style.transition = "none";
  bar.style.width = `${(100 * (total - ms)) / total}%`;
  bar.getBoundingClientRect(); // start the transition from there
  bar.style.transition = `width ${ms}ms linear`;
  bar.style.width = "100%";
  root.dataset.state = "running";
}

function pause() {
  if (!state.paused) {
    clearTimeout(state.timer);
    state.remaining = Math.max(0, state.remaining - (performance.now() - state.since));
    bar.style.width = getComputedStyle(bar).width; // freeze the bar where it is
    bar.style.transition = "none";
    state.paused = true;
    $("kiosk-paused").hidden = false;
    root.dataset.state = "paused";
  }
  clearTimeout(state.idleTimer);
  state.idleTimer = setTimeout(resume, state.idle * 1000);
}

function resume() {
  state.paused = false;
  $("kiosk-paused").hidden = true;
  run(state.remaining || state.interval * 1000);
}

// -- input: any of it pauses; arrows and swipes also move ------------------------------------------

const MOVES = { ArrowRight: 1, ArrowDown: 1, PageDown: 1, " ": 1, ArrowLeft: -1, ArrowUp: -1, PageUp: -1 };
document.addEventListener("keydown", (e) => {
  pause();
  if (e.key in MOVES) {
    e.preventDefault();
    show(state.index + MOVES[e.key]).catch(fail);
  }
});
let downX = null;
document.addEventListener("pointerdown", (e) => { pause(); downX = e.clientX; });
document.addEventListener("pointerup", (e) => {
  if (downX === null) return;
  const dx = e.clientX - downX;
  downX = null;
  if (Math.abs(dx) >= SWIPE_PX) show(state.index + (dx < 0 ? 1 : -1)).catch(fail);
});
document.addEventListener("wheel", pause, { passive: true });
$("kiosk-dots").addEventListener("click", (e) => {
  const li = e.target.closest("li[data-i]");
  if (li) show(Number(li.dataset.i)).catch(fail);
});

// -- the rest ----------------------------------------------------------------------------------------

function fail(err) {
  const el = $("kiosk-error");
  el.textContent = `${t("failed")}: ${err.message}`;
  el.hidden = false;
}

function tick() {
  $("kiosk-clock").textContent = clock(new Date().toISOString(), true);
}

const refresh = throttled(() => {
  const entry = state.playlist[state.index];
  if (entry) draw(entry).catch(fail);
}, 1000);
const replan = throttled(() => loadPlaylist().then(() => show(state.index)).catch(fail), 250);

async function start() {
  root.dataset.lang = lang();
  document.documentElement.lang = lang();
  tick();
  setInterval(tick, 10000);
  await loadPlaylist();
  await show(0);
  liveStream("/api/status/stream", {
    observations: refresh,
    resync: refresh,
    event: refresh,
    layout: (data) => { if (!data?.perspective || data.perspective === "kiosk") replan(); },
  }, ANONYMOUS);
}

start().catch(fail);
