// Events on the dashboard: a panel of the newest open events and an events layer on the map.
//
// Both come from /api/status/events (which decides what this viewer may see) and are refetched
// when the page's stream announces an `event` notice (dashboard.js re-dispatches it as
// `citydesk:event`), and once a minute as a safety net for notices lost while reconnecting.
// Severity is told by shape (● info, ▲ minor, ◆ major, ■ critical) on the map and in the panel,
// and by its name in words; colour only makes events stand out from the map beneath.

import { clock, esc, getJSON, lang, pick, rem } from "./common.js";

const LIMIT = 6; // events in the panel; the rest are one click away on /status/events
const REFETCH_MS = 60000;
const SHAPES = { info: "circle", minor: "triangle", major: "diamond", critical: "rect" };
// One colour for every event, outside the viridis ramp of the districts beneath so that a marker
// stands out on any fill: Okabe-Ito vermillion, told apart from blue-green by colour-blind eyes too.
const MARKER = "#d55e00";
const TEXT = {
  ko: { none: "진행 중인 사건이 없습니다", failed: "사건을 불러오지 못했습니다" },
  en: { none: "No open events", failed: "Could not load the events" },
};

const panel = document.getElementById("events-panel");
const list = document.getElementById("events-list");
let events = []; // the panel's events
let features = []; // the map layer's events (open, with a position)
let map = null; // the dashboard's ECharts map, handed over by its `citydesk:map` hook

const t = (key) => TEXT[lang()][key];

function severity(e) {
  return `<span class="sev sev-${esc(e.severity)}"><span class="sev-icon" aria-hidden="true"></span>${esc(pick(e.severity_label))}</span>`;
}

function drawPanel() {
  list.innerHTML = events.length
    ? events.map((e) => `<li data-id="${e.id}" data-severity="${esc(e.severity)}"><a href="${esc(e.url)}">${severity(e)}` +
        `<span class="ev-title">${esc(e.title)}</span>` +
        `<span class="ev-meta">${esc(pick(e.status_label))} · ${esc(pick(e.district?.name) || "–")} · ` +
        `<time datetime="${esc(e.opened_at)}">${clock(e.opened_at, true)}</time></span></a></li>`).join("")
    : `<li class="ev-empty">${t("none")}</li>`;
}

function tooltip(p) {
  const e = p.data.event;
  return `${severity(e)} <b>${esc(e.title)}</b><br>${esc(pick(e.status_label))} · ${clock(e.opened_at, true)}`;
}

function drawLayer() {
  if (!map) return;
  const size = rem();
  map.setOption({
    series: [{
      id: "events", type: "scatter", coordinateSystem: "geo", z: 5,
      data: features.map((f) => ({
        name: f.properties.title, value: f.geometry.coordinates, event: f.properties,
        symbol: SHAPES[f.properties.severity] ?? "pin",
        symbolSize: size * (f.properties.severity === "critical" ? 1.8 : 1.5),
        itemStyle: { color: MARKER, borderColor: "#ffffff", borderWidth: 2, shadowBlur: 4, shadowColor: "rgba(16,37,63,.6)" },
      })),
      tooltip: { formatter: tooltip },
      emphasis: { scale: 1.4 },
    }],
  });
}

async function load() {
  try {
    const [open, layer] = await Promise.all([
      getJSON(`/api/status/events?status=open&limit=${LIMIT}`),
      getJSON("/api/status/events.geojson"),
    ]);
    events = open.events;
    features = layer.features;
    drawPanel();
    drawLayer();
    panel.dataset.ready = "1"; // for tests: the panel shows the server's answer
  } catch (err) {
    list.innerHTML = `<li class="ev-empty" role="alert">${t("failed")}: ${esc(err.message)}</li>`;
  }
}

let pending = null;
function loadSoon() { // one refetch for a burst of notices
  pending ??= setTimeout(() => { pending = null; load(); }, 200);
}

document.addEventListener("citydesk:map", (e) => {
  if (map !== e.detail) {
    map = e.detail;
    map.on("click", { seriesId: "events" }, (p) => { window.location.href = p.data.event.url; });
  }
  drawLayer();
});
document.addEventListener("citydesk:event", loadSoon);
document.getElementById("lang")?.addEventListener("click", drawPanel); // after dashboard.js switched it
setInterval(load, REFETCH_MS);
load();
