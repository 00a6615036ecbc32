// The live city dashboard (/dashboard): the district choropleth of one measure, its sensors, the
// key figures, the worst districts and a district's last 24 h, kept live by Server-Sent Events.
//
// Everything shown comes from the status JSON routes, which already apply the viewer's disclosure
// rights; this module only draws. On new observations it refetches /api/status/air (throttled)
// instead of recomputing district means here: the server owns which sensors count, how stale is
// too stale and where the level bands lie, so a client-side copy of that logic could only drift.

import { NO_DATA, bbox, clock, districtMap, esc, getJSON, inkOn, int, lang, loadLayout, locale, num, perspectiveOf, pick, rem, sectionBar, setLang, throttled, viridis } from "./common.js";
import { keyFigures } from "./widgets.js";

const echarts = window.echarts; // the vendored UMD build, loaded by a classic <script> before us
const root = document.querySelector(".dash");
const $ = (id) => document.getElementById(id);

const REFRESH_MS = 750; // the longest a new observation waits before the figures are refetched

const TEXT = {
  ko: { live: "실시간", connecting: "연결 중", reconnecting: "다시 연결 중", noData: "자료 없음",
        sensors: "센서", all: "서울 전체", other: "English", failed: "자료를 불러오지 못했습니다",
        worst: "가장 나쁜 자치구", highest: "가장 높은 자치구" },
  en: { live: "Live", connecting: "Connecting", reconnecting: "Reconnecting", noData: "No data",
        sensors: "sensors", all: "All of Seoul", other: "한국어", failed: "Could not load the data",
        worst: "Worst district", highest: "Highest district" },
};

const state = {
  measure: root.dataset.measure,
  measures: [],
  districts: null, // GeoJSON of the 25 districts
  air: null, // /api/status/air
  sensors: [], // ECharts scatter items, one per datastream
  dongs: new Map(), // district code -> its dongs' GeoJSON
  selected: null, // district code the map is zoomed to
  showSensors: true,
};

const map = echarts.init($("map"), null, { renderer: "canvas" });
const chart = echarts.init($("chart"), null, { renderer: "canvas" });
// Each box is watched itself: the grid can change one without the other (wall ↔ phone, rotation).
// Both are redrawn, not only resized: their type is sized from the root font, which follows the screen.
const resized = new ResizeObserver(() => { map.resize(); chart.resize(); if (state.air) { drawMap(); drawDetail(); } });
[$("map"), $("chart")].forEach((el) => resized.observe(el));

// -- formatting (the shared helpers are in common.js) ---------------------------------------------

const t = (key) => TEXT[lang()][key];
const sensorCount = (n) => `${int(n)} ${lang() === "en" && new Intl.PluralRules("en").select(n) === "one" ? "sensor" : t("sensors")}`;

// -- colours and the legend -----------------------------------------------------------------------

function levelColours() {
  const levels = state.air?.levels ?? [];
  const n = levels.length;
  return new Map(levels.map((l, i) => [l.level, viridis(n > 1 ? i / (n - 1) : 1)]));
}

function colourOf(d) {
  if (d.value === null || d.value === undefined) return NO_DATA;
  const bands = levelColours();
  if (bands.size && d.level) return bands.get(d.level) ?? NO_DATA;
  const vals = state.air.districts.map((x) => x.value).filter((v) => v !== null);
  const [lo, hi] = [Math.min(...vals), Math.max(...vals)];
  return viridis(hi > lo ? (d.value - lo) / (hi - lo) : 0.5);
}

function drawLegend() {
  const el = $("legend");
  const air = state.air;
  const unit = air.unit ? ` ${air.unit}` : "";
  const items = [];
  const bands = levelColours();
  if (bands.size) {
    for (const l of air.levels) {
      const range = l.to === null || l.to === undefined ? `${num(l.from)}+` : `${num(l.from)}–${num(l.to)}`;
      items.push(`<li data-level="${l.level}"><span class="sw" style="background:${bands.get(l.level)}"></span>${esc(pick(l.label))} <small>${range}</small></li>`);
    }
  } else {
    const vals = air.districts.map((x) => x.value).filter((v) => v !== null);
    if (vals.length) {
      items.push(`<li class="ramp"><small>${num(Math.min(...vals))}</small><span class="bar" style="background:linear-gradient(90deg, ${viridis(0)}, ${viridis(0.5)}, ${viridis(1)})"></span><small>${num(Math.max(...vals))}</small></li>`);
    }
  }
  items.push(`<li data-level="none"><span class="sw" style="background:${NO_DATA}"></span>${t("noData")}</li>`);
  if (state.showSensors) items.push(`<li><span class="sw dot"></span>${t("sensors")}</li>`);
  el.innerHTML = `<div class="legend-k">${esc(pick(air.label))}${esc(unit)}</div><ul>${items.join("")}</ul>`;
}

// -- the map --------------------------------------------------------------------------------------

const districtOf = (code) => state.air?.districts.find((d) => d.code === code);
const featureOf = (code) => state.districts.features.find((f) => f.properties.code === code);

function mapName() {
  if (!state.selected) return "seoul";
  const name = `seoul-${state.selected}`;
  if (!echarts.getMap(name)) {
    // The city with one district's dongs drawn over it: the dongs come last so they lie on top.
    const dongs = state.dongs.get(state.selected)?.features ?? [];
    echarts.registerMap(name, { type: "FeatureCollection", features: [...state.districts.features, ...dongs] });
  }
  return name;
}

function drawMap(view) {
  if (!state.air || !state.districts) return;
  const size = rem();
  const narrow = $("map").clientWidth < 640;
  const regions = state.air.districts.map((d) => {
    const fill = colourOf(d);
    return { name: d.code, itemStyle: { areaColor: fill }, label: { color: inkOn(fill) },
             emphasis: { itemStyle: { areaColor: fill }, label: { color: inkOn(fill) } } };
  });
  if (state.selected) {
    const fill = colourOf(districtOf(state.selected) ?? { value: null });
    for (const f of state.dongs.get(state.selected)?.features ?? []) {
      regions.push({ name: f.properties.code, itemStyle: { areaColor: fill, borderColor: inkOn(fill), borderWidth: 0.6, borderType: "dashed" },
                     label: { show: false }, emphasis: { itemStyle: { areaColor: fill, borderWidth: 1.5 } } });
    }
  }
  const option = {
    aria: { enabled: true },
    textStyle: { fontFamily: getComputedStyle(document.body).fontFamily },
    tooltip: { trigger: "item", confine: true, textStyle: { fontSize: size }, formatter: tip },
    geo: {
      map: mapName(),
      nameProperty: "code",
      roam: true,
      top: "3%", bottom: "3%", left: "3%", right: "3%", // fill the box; the map keeps its aspect
      selectedMode: false,
      itemStyle: { borderColor: "#10253f", borderWidth: size / 16 }, // lines thicken with the type
      emphasis: { itemStyle: { borderColor: "#000", borderWidth: size / 6 } },
      label: {
        show: true, fontSize: size * (narrow ? 0.7 : 0.8), lineHeight: size * (narrow ? 0.85 : 1),
        formatter: (p) => {
          const d = districtOf(p.name);
          if (!d) return featureName(p.name);
          if (d.value === null) return narrow ? "" : pick(d.name);
          return narrow ? num(d.value) : `${pick(d.name)}\n${num(d.value)}`;
        },
      },
      tooltip: { show: true, formatter: tip }, // the geo component does not use the global formatter
      regions,
      ...(view ?? {}),
    },
    series: [{
      id: "sensors", type: "scatter", coordinateSystem: "geo", symbolSize: Math.max(3, size * (narrow ? 0.25 : 0.35)),
      itemStyle: { color: "#ffffff", borderColor: "#10253f", borderWidth: 1 },
      data: state.showSensors ? state.sensors : [], z: 3,
    }],
  };
  map.setOption(option);
  // Other layers (events.js: open events) add their series to the drawn map on this hook.
  document.dispatchEvent(new CustomEvent("citydesk:map", { detail: map }));
}

function featureName(code) {
  const f = (state.dongs.get(state.selected)?.features ?? []).find((x) => x.properties.code === code);
  return f ? (lang() === "ko" ? f.properties.name_ko : f.properties.name_en || f.properties.name_ko) : "";
}

function tip(p) {
  const unit = state.air.unit ?? "";
  if (p.seriesId === "sensors") {
    const s = p.data;
    return `${esc(s.thing)}<br><b>${num(s.value[2])}</b> ${esc(unit)}<br><small>${clock(s.time, true)}</small>`;
  }
  const d = districtOf(p.name);
  if (!d) return `${esc(featureName(p.name))}<br><small>${esc(pick(districtOf(state.selected)?.name))}</small>`;
  const level = state.air.levels?.find((l) => l.level === d.level);
  return `<b>${esc(pick(d.name))}</b><br>${num(d.value)} ${esc(unit)}${level ? ` · ${esc(pick(level.label))}` : ""}<br><small>${sensorCount(d.sensors)}</small>`;
}

map.on("click", (p) => { // a district, one of its dongs, or a sensor: all open that district
  const code = p.seriesId === "sensors" ? p.data.district : districtOf(p.name) ? p.name : state.selected;
  if (code && code !== state.selected) select(code).catch(fail);
});

async function select(code) {
  if (code && !state.dongs.has(code)) state.dongs.set(code, await getJSON(`/api/geo/dongs?district=${encodeURIComponent(code)}`));
  state.selected = code || null;
  $("district").value = state.selected ?? "";
  $("back").hidden = !state.selected;
  let view = { center: null, zoom: 1 };
  if (state.selected) {
    const [cx0, cy0, cx1, cy1] = bbox(state.districts.features);
    const [x0, y0, x1, y1] = bbox([featureOf(state.selected)]);
    view = { center: [(x0 + x1) / 2, (y0 + y1) / 2], zoom: 0.75 * Math.min((cx1 - cx0) / (x1 - x0), (cy1 - cy0) / (y1 - y0)) };
  }
  drawMap(view);
  drawDetail();
}

// -- figures, the worst districts, the district detail ---------------------------------------------

function drawFigures() {
  const { city, unit, updated } = state.air;
  const u = unit ? `<small>${esc(unit)}</small>` : "";
  $("fig-mean").innerHTML = `${num(city.value)}${u}`;
  $("fig-min").innerHTML = `${num(city.min)}${u}`;
  $("fig-max").innerHTML = `${num(city.max)}${u}`;
  $("fig-sensors").textContent = int(city.sensors);
  $("fig-updated").textContent = clock(updated, false);
  $("fig-updated").title = updated ?? "";
}

function ranked() {
  return state.air.districts.filter((d) => d.value !== null).sort((a, b) => b.value - a.value);
}

function chip(d) {
  const level = state.air.levels?.find((l) => l.level === d.level);
  if (!level) return "";
  const fill = levelColours().get(level.level);
  return `<span class="level-chip" style="background:${fill};color:${inkOn(fill)}">${esc(pick(level.label))}</span>`;
}

function drawWorst() {
  const worst = Boolean(levelColours().size);
  $("worst-title").innerHTML = worst
    ? '<span class="ko">나쁜 자치구 5곳</span> <span class="en">Worst 5 districts</span>'
    : '<span class="ko">높은 자치구 5곳</span> <span class="en">Highest 5 districts</span>';
  $("worst").innerHTML = ranked().slice(0, 5).map((d) =>
    `<li><button type="button" data-code="${d.code}"><span class="nm">${esc(pick(d.name))}</span>` +
    `<span class="val">${num(d.value)}</span>${chip(d)}</button></li>`).join("");
}

$("worst").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-code]");
  if (b) select(b.dataset.code);
});

function drawDetail() {
  const code = state.selected ?? ranked()[0]?.code;
  const d = code && districtOf(code);
  const name = $("detail-name");
  if (!d) { chart.clear(); return; }
  const which = levelColours().size ? "worst" : "highest"; // "worst" only where bands say what is bad
  name.innerHTML = state.selected ? esc(pick(d.name)) : `<small>${t(which)}</small> ${esc(pick(d.name))}`;
  name.dataset.code = d.code;
  $("detail-value").innerHTML = `${num(d.value)} <small>${esc(state.air.unit ?? "")}</small>`;
  $("detail-level").outerHTML = `<span id="detail-level">${chip(d)}</span>`;
  $("detail-sensors").textContent = sensorCount(d.sensors);
  const points = (state.air.series?.[d.code] ?? []).map(([time, v]) => [time, v]);
  const size = rem();
  chart.setOption({
    aria: { enabled: true },
    textStyle: { fontFamily: getComputedStyle(document.body).fontFamily, fontSize: size * 0.75 },
    grid: { left: size * 2.8, right: size * 1.2, top: size * 0.8, bottom: size * 1.8 },
    tooltip: { trigger: "axis", valueFormatter: num, textStyle: { fontSize: size * 0.8 } },
    xAxis: { type: "time", axisLabel: { fontSize: size * 0.8, formatter: (v) => clock(new Date(v).toISOString(), false) }, splitNumber: 4 },
    yAxis: { type: "value", axisLabel: { fontSize: size * 0.8, formatter: num }, splitNumber: 3 },
    series: [{ type: "line", data: points, showSymbol: points.length < 3, smooth: false,
               lineStyle: { width: size / 6, color: "#3b528b" }, areaStyle: { color: "rgba(59,82,139,.15)" } }],
  }, true);
}

// -- loading and the live stream ------------------------------------------------------------------

async function loadAir() {
  const q = `measure=${encodeURIComponent(state.measure)}`;
  const [air, sensors] = await Promise.all([getJSON(`/api/status/air?${q}`), getJSON(`/api/status/sensors?${q}`)]);
  state.air = air;
  state.sensors = sensors.features.map((f) => ({
    id: f.properties.datastream, thing: f.properties.thing, district: f.properties.district,
    time: f.properties.phenomenonTime,
    value: [...f.geometry.coordinates.slice(0, 2), f.properties.value],
  }));
  drawAll();
}

function drawAll() {
  $("dash-error").hidden = true;
  drawMap();
  drawLegend();
  drawFigures();
  drawWorst();
  drawDetail();
  root.dataset.ready = "1"; // for tests and kiosks: the first full picture is on screen
}

// The section bar and the sections' key figures, in the order of the viewer's layout (an
// official's department's sections first).
async function drawSections() {
  const { view, perspective, explicit } = perspectiveOf(root.dataset);
  const { sections } = await loadLayout(perspective, { mine: root.dataset.mine.split(",").filter(Boolean) });
  sectionBar($("section-bar"), sections, { view: explicit ? view : null });
  await keyFigures($("keys"), sections, { view: explicit ? view : null });
}
const refreshSections = throttled(() => drawSections().catch(fail), 5 * REFRESH_MS);
document.addEventListener("citydesk:layout", refreshSections);

let pending = null;
function refreshSoon() { // throttled, not debounced: a steady stream must not postpone it forever
  pending ??= setTimeout(() => { pending = null; loadAir().catch(fail); }, REFRESH_MS);
  refreshSections();
}

let stream = null;
function connect() {
  stream?.close();
  setLive("connecting");
  let dropped = false;
  stream = new EventSource(`/api/status/stream?measure=${encodeURIComponent(state.measure)}`);
  stream.onopen = () => { setLive("live"); if (dropped) refreshSoon(); }; // catch up on what we missed
  stream.onerror = () => {
    dropped = true;
    setLive("reconnecting");
    if (stream.readyState === EventSource.CLOSED) setTimeout(connect, 5000); // the browser gave up
  };
  stream.addEventListener("ping", () => setLive("live"));
  stream.addEventListener("observations", (e) => {
    setLive("live");
    const byId = new Map(state.sensors.map((s) => [s.id, s]));
    for (const o of JSON.parse(e.data).datastreams) {
      const s = byId.get(o.id);
      if (s && o.measure === state.measure) { s.value[2] = o.result; s.time = o.phenomenonTime; }
    }
    refreshSoon();
  });
  stream.addEventListener("resync", refreshSoon); // we fell behind and lost events: reload all
  // Notices (an event raised or moved on, a command answered) are re-dispatched on the document as
  // `citydesk:<kind>` for the panels that show them (events.js, commands.js): one stream per page.
  for (const kind of ["event", "command", "layout"]) {
    stream.addEventListener(kind, (e) => document.dispatchEvent(new CustomEvent(`citydesk:${kind}`, { detail: JSON.parse(e.data) })));
  }
}

function setLive(s) {
  const el = $("live");
  el.dataset.state = s;
  el.querySelector(".txt").textContent = t(s);
}

function fail(err) {
  const el = $("dash-error");
  el.textContent = `${t("failed")}: ${err.message}`;
  el.hidden = false;
}

// -- controls -------------------------------------------------------------------------------------

function drawControls() {
  $("measure").innerHTML = state.measures.map((m) =>
    `<option value="${esc(m.name)}">${esc(pick(m.label) || m.name)}${lang() === "ko" ? ` ${esc(m.name)}` : ""}</option>`).join("");
  $("measure").value = state.measure;
  const names = state.districts.features
    .map((f) => [f.properties.code, lang() === "ko" ? f.properties.name_ko : f.properties.name_en])
    .sort((a, b) => a[1].localeCompare(b[1], locale()));
  $("district").innerHTML = `<option value="">${t("all")}</option>` +
    names.map(([code, n]) => `<option value="${code}">${esc(n)}</option>`).join("");
  $("district").value = state.selected ?? "";
  $("lang").textContent = t("other");
  $("lang").setAttribute("aria-pressed", String(lang() === "en"));
  root.dataset.lang = lang();
  document.documentElement.lang = lang();
}

$("measure").addEventListener("change", (e) => {
  state.measure = e.target.value;
  history.replaceState(null, "", `?measure=${encodeURIComponent(state.measure)}`);
  loadAir().catch(fail);
  connect();
});
$("district").addEventListener("change", (e) => select(e.target.value).catch(fail));
$("back").addEventListener("click", () => select(null));
document.addEventListener("keydown", (e) => { if (e.key === "Escape" && state.selected) select(null); });
$("sensors-toggle").addEventListener("change", (e) => { state.showSensors = e.target.checked; drawMap(); drawLegend(); });
$("lang").addEventListener("click", () => {
  setLang(lang() === "ko" ? "en" : "ko");
  drawControls();
  setLive($("live").dataset.state);
  drawAll();
  drawSections().catch(fail);
});

async function start() {
  const [measures, districts] = await Promise.all([getJSON("/api/status/measures"), districtMap()]);
  state.measures = measures.measures;
  state.districts = districts;
  if (!state.measures.some((m) => m.name === state.measure) && state.measures.length) state.measure = state.measures[0].name;
  drawControls();
  drawSections().catch(fail); // the sections do not wait for the map, nor the map for them
  await loadAir();
  connect();
}

start().catch(fail);
