// One renderer per widget kind of the section contract (figure, series, bars, table, choropleth,
// points, events), shared by the section pages, the kiosk and the dashboard's key figures.
//
// A widget arrives from /api/status/sections/{id} already cut to what the viewer may see; a
// renderer only draws it. Each one draws into the card that ``card`` made and can be called again
// with a newer widget: charts keep their ECharts instance, so a live update does not flicker.
// Sizes follow the root font (the screen's type scale), so a 4K wall reads like a desktop.

import { NO_DATA, bbox, clock, districtMap, esc, fontFamily, getJSON, glyphs, inkOn, lang, num, pick, rem, viridis } from "./common.js";

const echarts = window.echarts;

const TEXT = {
  ko: { noData: "자료 없음", vs24: "24시간 전 대비", min: "최저", max: "최고", count: "개", noEvents: "진행 중인 사건이 없습니다",
        updated: "갱신" },
  en: { noData: "No data", vs24: "vs 24 h ago", min: "min", max: "max", count: "values", noEvents: "No open events",
        updated: "Updated" },
};
const t = (key) => TEXT[lang()][key];
/** A unit as read: UCUM's annotations ("{people}") without their braces. */
const unitText = (u) => (u ? String(u).replace(/^\{(.+)\}$/, "$1") : "");
// Series and point layers are told apart by shape as well as colour (never colour alone).
const SYMBOLS = ["circle", "rect", "triangle", "diamond", "roundRect", "pin", "arrow"];
const GLYPHS = { circle: "●", rect: "■", triangle: "▲", diamond: "◆", roundRect: "▢", pin: "⬤", arrow: "➤" };
const INK = "#10253f";

/** Colours for n categories: evenly spaced along viridis, skipping the palest end (unreadable as a line). */
const palette = (n) => Array.from({ length: n }, (_, i) => viridis(0.25 + (n > 1 ? (0.75 * i) / (n - 1) : 0.5)));

/** The card of one widget: its label, an empty body for the renderer, and a foot for the time. */
export function card(widget) {
  const el = document.createElement("article");
  el.className = `w w-${widget.kind}`;
  el.dataset.widget = widget.id;
  el.dataset.kind = widget.kind;
  el.innerHTML = '<h3 class="w-label"></h3><div class="w-body"></div><div class="w-foot"></div>';
  return el;
}

/** Draw ``widget`` into its card (made by ``card``); ``options.anonymous`` fetches layers without cookies. */
export async function render(el, widget, options = {}) {
  el._widget = widget;
  el._options = options;
  const unit = widget.unit ? ` <small>${esc(unitText(widget.unit))}</small>` : "";
  el.querySelector(".w-label").innerHTML = `${esc(pick(widget.label))}${widget.kind === "figure" ? "" : unit}`;
  const draw = RENDERERS[widget.kind];
  if (!draw) { // a kind this page does not know yet: say so rather than hide it
    el.querySelector(".w-body").textContent = widget.kind;
    return;
  }
  if (widget.kind !== "figure" && widget.kind !== "table") await glyphs(JSON.stringify(widget)); // canvas text
  await draw(el.querySelector(".w-body"), widget, options);
  el.dataset.drawn = "1";
}

/** The widgets of ``section`` that its layout ``entry`` keeps, in the entry's order; all of them,
 * in the section's order, when the entry names none (or the layout does not list the section). */
export function chosen(section, entry) {
  if (!entry?.widgets) return section.widgets;
  const byId = new Map(section.widgets.map((w) => [w.id, w]));
  return entry.widgets.map((id) => byId.get(id)).filter(Boolean);
}

/** The main page's key figures: the first figure of each section of the layout (among the widgets
 * its entry keeps, in its order), each linked to its section's page. */
export async function keyFigures(box, sections, { view = null, ...options } = {}) {
  const q = view ? `?view=${encodeURIComponent(view)}` : "";
  const loaded = await Promise.all(sections.map((entry) =>
    getJSON(`/api/status/sections/${encodeURIComponent(entry.id)}`, options).then((section) => [entry, section])));
  const cards = [];
  for (const [entry, section] of loaded) {
    for (const w of chosen(section, entry).filter((x) => x.kind === "figure").slice(0, 1)) {
      const el = card({ ...w, id: `${section.id}.${w.id}` });
      el.classList.add("key");
      cards.push(render(el, w, options).then(() => {
        el.querySelector(".w-label").insertAdjacentHTML("afterbegin", `<a class="key-section" href="/status/${encodeURIComponent(section.id)}${q}">${esc(pick(section.title))}</a>`);
        return el;
      }));
    }
  }
  box.replaceChildren(...(await Promise.all(cards)));
  box.hidden = !box.children.length;
}

/** Fill ``box`` with the cards of ``widgets`` in their order: the figures in a strip, the charts,
 * maps, tables and lists tiling the rest (``--cols`` columns, chosen for the box's shape; the
 * layout's ``size`` scales the figures). Cards already in the box are kept and
 * redrawn, so a live update or a rearrangement does not flicker; cards no longer wanted go. */
export async function fill(box, widgets, { size = "m", ...options } = {}) {
  const old = new Map([...box.querySelectorAll(".w")].map((el) => [el.dataset.widget, el]));
  let [strip, grid] = [box.querySelector(":scope > .figs"), box.querySelector(":scope > .panels")];
  if (!strip || !grid) {
    box.innerHTML = '<div class="figs"></div><div class="panels"></div>';
    [strip, grid] = [box.querySelector(".figs"), box.querySelector(".panels")];
  }
  box.querySelector(":scope > .none")?.remove();
  const figures = widgets.filter((w) => w.kind === "figure");
  const panels = widgets.filter((w) => w.kind !== "figure");
  const place = (parent, list) => list.map((w) => {
    const el = old.get(w.id) ?? card(w);
    old.delete(w.id);
    parent.append(el); // appending a card already there moves it: the layout's order wins
    return render(el, w, options);
  });
  const drawing = [...place(strip, figures), ...place(grid, panels)];
  old.forEach((el) => { dispose(el); el.remove(); });
  strip.hidden = !figures.length;
  grid.hidden = !panels.length;
  box.dataset.size = size;
  const shape = grid.clientWidth / Math.max(1, grid.clientHeight || window.innerHeight);
  const cols = columns(panels.length, shape);
  box.style.setProperty("--cols", String(cols));
  // The last panel takes what the last row leaves, so no hole is left in the grid.
  grid.querySelectorAll(".w").forEach((el, i, all) => {
    el.style.setProperty("--span", String(i === all.length - 1 ? cols * Math.ceil(all.length / cols) - all.length + 1 : 1));
  });
  await Promise.all(drawing);
}

/** Columns for n panels in a box of this shape (width / height): cells near 4:3, few holes. */
function columns(n, shape) {
  let best = [Infinity, 1];
  for (let c = 1; c <= Math.max(1, n); c++) {
    const rows = Math.ceil(n / c);
    const score = Math.abs(Math.log((shape * rows) / c / 1.35)) + (c * rows - n) / Math.max(1, n);
    if (score < best[0]) best = [score, c];
  }
  return best[1];
}

// -- figure -----------------------------------------------------------------------------------------

function trend(widget) {
  const n = (v) => num(v, widget.decimals);
  const d = widget.trend;
  if (d === null || d === undefined) return "";
  const [arrow, word] = d > 0 ? ["▲", "+"] : d < 0 ? ["▼", "−"] : ["＝", "±"];
  return `<span class="trend" data-dir="${Math.sign(d)}"><span aria-hidden="true">${arrow}</span> ${word}${n(Math.abs(d))} <small>${t("vs24")}</small></span>`;
}

function figure(body, widget) {
  const n = (v) => num(v, widget.decimals);
  const unit = widget.unit ? `<small class="u">${esc(unitText(widget.unit))}</small>` : "";
  const d = widget.detail;
  const range = d && (d.min !== null && d.min !== undefined)
    ? `<span class="range">${t("min")} ${n(d.min)} · ${t("max")} ${n(d.max)}</span>` : "";
  body.innerHTML = `<div class="fv"><span class="v">${n(widget.value)}</span>${unit}</div>` +
    `<div class="fd">${trend(widget)}${range}</div>`;
  body.closest(".w").querySelector(".w-foot").textContent = widget.time ? `${t("updated")} ${clock(widget.time, true)}` : "";
}

// -- charts -----------------------------------------------------------------------------------------

function chartOf(body, hasData = true) {
  body.classList.add("chart");
  // An empty chart says so in words rather than showing bare axes.
  body.toggleAttribute("data-empty", !hasData);
  body.dataset.none = t("noData");
  let chart = echarts.getInstanceByDom(body);
  if (!chart) chart = echarts.init(body, null, { renderer: "canvas" });
  if (!body._observer) { // resized (rotation, wall ↔ phone): redraw, since type follows the screen
    let last = null;
    body._observer = new ResizeObserver(() => {
      const size = `${body.clientWidth}x${body.clientHeight}`;
      if (size === last || !body.isConnected) return;
      last = size;
      chart.resize();
      const el = body.closest(".w");
      if (el?._widget) render(el, el._widget, el._options);
    });
    body._observer.observe(body);
  }
  return chart;
}

/** Stop a card's chart (it is leaving the page). */
function dispose(el) {
  for (const body of el.querySelectorAll(".chart")) {
    body._observer?.disconnect();
    echarts.getInstanceByDom(body)?.dispose();
  }
}

function base(size) {
  return {
    aria: { enabled: true },
    animation: false,
    textStyle: { fontFamily: fontFamily(), fontSize: size * 0.8 },
    tooltip: { confine: true, textStyle: { fontSize: size * 0.8 }, valueFormatter: num },
  };
}

function series(body, widget) {
  const n = (v) => num(v, widget.decimals);
  const chart = chartOf(body, (widget.series ?? []).some((s) => s.points.length));
  const size = rem();
  const lines = widget.series ?? [];
  const colours = palette(lines.length);
  const legend = lines.length > 1;
  chart.setOption({
    ...base(size),
    tooltip: { ...base(size).tooltip, trigger: "axis" },
    legend: { show: legend, top: 0, textStyle: { fontSize: size * 0.75 }, itemWidth: size * 1.2, itemHeight: size * 0.7 },
    grid: { left: size * 0.6, right: size * 1.2, top: legend ? size * 1.8 : size * 0.8, bottom: size * 0.4, outerBoundsMode: "same", outerBoundsContain: "axisLabel" },
    xAxis: { type: "time", splitNumber: 4, axisLabel: { fontSize: size * 0.75, hideOverlap: true, formatter: (v) => clock(new Date(v).toISOString(), false) } },
    yAxis: { type: "value", splitNumber: 3, scale: true, axisLabel: { fontSize: size * 0.75, formatter: n } },
    series: lines.map((s, i) => ({
      type: "line", name: pick(s.name), data: s.points, symbol: SYMBOLS[i % SYMBOLS.length], symbolSize: size * 0.45,
      showSymbol: s.points.length < 30, lineStyle: { width: size / 7, color: colours[i] }, itemStyle: { color: colours[i] },
    })),
  }, true);
}

function bars(body, widget) {
  const n = (v) => num(v, widget.decimals);
  const chart = chartOf(body, (widget.values ?? []).some((v) => v !== null));
  const size = rem();
  const names = (widget.categories ?? []).map(pick);
  const values = widget.values ?? [];
  const horizontal = names.length > 7 || body.clientWidth < body.clientHeight; // long lists read down the page
  // Down the page, every category keeps its name: the type shrinks to the room each bar has.
  const type = horizontal ? Math.max(9, Math.min(size * 0.72, (body.clientHeight / Math.max(1, names.length)) * 0.72)) : size * 0.72;
  const category = { type: "category", data: names, inverse: horizontal, axisTick: { show: false },
                     axisLabel: { fontSize: type, interval: horizontal ? 0 : "auto", hideOverlap: !horizontal, overflow: "truncate", width: size * 6 } };
  const value = { type: "value", splitNumber: 3, axisLabel: { fontSize: size * 0.72, formatter: n, hideOverlap: true } };
  // Each bar carries its number: the length alone is not the value, and null is said, not drawn as 0.
  const data = values.map((v) => ({ value: v, label: { formatter: v === null ? t("noData") : n(v) } }));
  chart.setOption({
    ...base(size),
    tooltip: { ...base(size).tooltip, trigger: "axis", axisPointer: { type: "shadow" } },
    grid: { left: size * 0.5, right: size * 2.6, top: size * 0.8, bottom: size * 0.3, outerBoundsMode: "same", outerBoundsContain: "axisLabel" },
    xAxis: horizontal ? value : category,
    yAxis: horizontal ? category : value,
    series: [{ type: "bar", data, barMaxWidth: size * 2.2, itemStyle: { color: "#3b528b" },
               label: { show: true, position: horizontal ? "right" : "top", fontSize: type * 0.95, color: INK } }],
  }, true);
}

// -- table ------------------------------------------------------------------------------------------

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d/;
function cell(v, n = num) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return n(v);
  if (typeof v === "string" && ISO.test(v)) return clock(v, true);
  return esc(pick(v));
}

function table(body, widget) {
  const n = (v) => num(v, widget.decimals);
  const cols = widget.columns ?? [];
  const head = cols.map((c) => `<th scope="col"${c.unit !== undefined && c.unit !== null ? ' class="n"' : ""}>${esc(pick(c.label))}${c.unit ? ` <small>${esc(unitText(c.unit))}</small>` : ""}</th>`).join("");
  const rows = widget.rows?.length
    ? widget.rows.map((r) => `<tr>${cols.map((c) =>
      `<td${typeof r[c.id] === "number" ? ' class="n"' : ""}>${cell(r[c.id], n)}</td>`).join("")}</tr>`).join("")
    : `<tr><td class="none" colspan="${Math.max(1, cols.length)}">${t("noData")}</td></tr>`;
  body.innerHTML = `<div class="w-scroll" tabindex="0"><table><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table></div>`;
}

// -- maps -------------------------------------------------------------------------------------------

const ASPECT_SCALE = 0.75; // ECharts' default squeeze of longitude for GeoJSON maps

/** The city as large as the box allows without stretching it (ECharts stretches a map to
 * left/right/top/bottom given together). */
function mapBox(body, geo) {
  const [x0, y0, x1, y1] = bbox(geo.features);
  const aspect = ((x1 - x0) * ASPECT_SCALE) / (y1 - y0);
  const [w, h] = [body.clientWidth * 0.96, body.clientHeight * 0.96];
  const width = Math.min(w, h * aspect);
  const height = width / aspect;
  return { left: (body.clientWidth - width) / 2, top: (body.clientHeight - height) / 2, width, height, aspectScale: ASPECT_SCALE };
}

function mapBase(body, geo, size, narrow) {
  return {
    map: "seoul", nameProperty: "code", roam: false, selectedMode: false, ...mapBox(body, geo),
    itemStyle: { borderColor: INK, borderWidth: Math.max(0.5, size / 18), areaColor: "#f2f4f6" },
    emphasis: { itemStyle: { borderColor: "#000", borderWidth: size / 7 }, label: { show: !narrow } },
    label: { show: false },
  };
}

function legendOf(body) {
  let el = body.parentElement.querySelector(".w-legend");
  if (!el) {
    el = document.createElement("div");
    el.className = "w-legend";
    body.after(el);
  }
  return el;
}

async function choropleth(body, widget) {
  const n = (v) => num(v, widget.decimals);
  const geo = await districtMap();
  const chart = chartOf(body, true); // no value anywhere is still a map: every district says "no data"
  const size = rem();
  const drawn = mapBox(body, geo).width; // how wide the city is drawn decides how much it can say
  const narrow = drawn < size * 24;
  const byCode = new Map((widget.districts ?? []).map((d) => [d.code, d.value]));
  const vals = [...byCode.values()].filter((v) => v !== null && v !== undefined);
  const [lo, hi] = [Math.min(...vals), Math.max(...vals)];
  const fill = (v) => (v === null || v === undefined ? NO_DATA : viridis(hi > lo ? (v - lo) / (hi - lo) : 0.5));
  const name = (code) => {
    const p = geo.features.find((f) => f.properties.code === code)?.properties;
    return p ? (lang() === "ko" ? p.name_ko : p.name_en || p.name_ko) : code;
  };
  await glyphs(geo.features.map((f) => `${f.properties.name_ko}${f.properties.name_en}`).join(""));
  const regions = geo.features.map((f) => {
    const code = f.properties.code;
    const c = fill(byCode.get(code));
    return { name: code, itemStyle: { areaColor: c }, label: { color: inkOn(c) }, emphasis: { itemStyle: { areaColor: c }, label: { color: inkOn(c) } } };
  });
  const unit = unitText(widget.unit);
  chart.setOption({
    ...base(size),
    tooltip: { ...base(size).tooltip, trigger: "item",
      formatter: (p) => `<b>${esc(name(p.name))}</b><br>${n(byCode.get(p.name))} ${esc(unit)}` },
    geo: { ...mapBase(body, geo, size, narrow), regions,
      // The value is written on each district: colour is never the only way to read it.
      label: { show: drawn >= size * 14, fontSize: size * (narrow ? 0.7 : 0.62), lineHeight: size * 0.75,
               formatter: (p) => { const v = byCode.get(p.name); return narrow ? (v === null || v === undefined ? "" : n(v)) : `${name(p.name)}\n${n(v)}`; } },
      tooltip: { show: true } },
    series: [],
  }, true);
  legendOf(body).innerHTML = vals.length
    ? `<span class="ramp"><small>${n(lo)}</small><span class="bar" style="background:linear-gradient(90deg, ${viridis(0)}, ${viridis(0.5)}, ${viridis(1)})"></span><small>${n(hi)}</small></span> <span><span class="sw" style="background:${NO_DATA}"></span>${t("noData")}</span>`
    : `<span><span class="sw" style="background:${NO_DATA}"></span>${t("noData")}</span>`;
}

async function points(body, widget, options) {
  const n = (v) => num(v, widget.decimals);
  const [geo, layer] = await Promise.all([districtMap(), getJSON(widget.url, options)]);
  const chart = chartOf(body, layer.features.length > 0);
  const size = rem();
  const kinds = [...new Set(layer.features.map((f) => f.properties.facility ?? ""))];
  const colours = palette(kinds.length);
  const series = kinds.map((kind, i) => ({
    type: "scatter", coordinateSystem: "geo", name: kind, symbol: SYMBOLS[i % SYMBOLS.length],
    // Dense layers get smaller marks.
    symbolSize: Math.max(5, size * (layer.features.length > 300 ? 0.3 : layer.features.length > 60 ? 0.45 : 0.7)),
    itemStyle: { color: colours[i], borderColor: "#fff", borderWidth: 1 },
    data: layer.features.filter((f) => (f.properties.facility ?? "") === kind).map((f) => ({
      name: pick(f.properties.name), value: [...f.geometry.coordinates.slice(0, 2), f.properties.value ?? null], props: f.properties,
    })),
  }));
  chart.setOption({
    ...base(size),
    tooltip: { ...base(size).tooltip, trigger: "item", formatter: (p) => {
      const f = p.data.props;
      const v = f.value === null || f.value === undefined ? "" : `<br>${n(f.value)} ${esc(unitText(f.unit))}`;
      return `<b>${esc(pick(f.name))}</b><br><small>${esc(pick(f.facility_label ?? f.facility))}</small>${v}${f.time ? `<br><small>${clock(f.time, true)}</small>` : ""}`;
    } },
    geo: mapBase(body, geo, size, true),
    series,
  }, true);
  const label = (kind) => pick(layer.features.find((f) => (f.properties.facility ?? "") === kind)?.properties.facility_label ?? kind);
  legendOf(body).innerHTML = kinds.map((k, i) =>
    `<span><span class="glyph" style="color:${colours[i]}" aria-hidden="true">${GLYPHS[SYMBOLS[i % SYMBOLS.length]]}</span>${esc(label(k))} <small>${layer.features.filter((f) => (f.properties.facility ?? "") === k).length}</small></span>`).join("");
  body.dataset.points = String(layer.features.length);
}

// -- events -----------------------------------------------------------------------------------------

async function eventsList(body, widget, options) {
  const kinds = widget.filter?.length ? widget.filter : [null];
  const pages = await Promise.all(kinds.map((k) =>
    getJSON(`/api/status/events?status=open&limit=20${k ? `&kind=${encodeURIComponent(k)}` : ""}`, options)));
  const items = pages.flatMap((p) => p.events ?? []).sort((a, b) => String(b.opened_at).localeCompare(String(a.opened_at)));
  body.innerHTML = items.length
    ? `<ul class="events">${items.slice(0, 20).map((e) =>
      `<li data-severity="${esc(e.severity)}"><span class="sev">${esc(pick(e.severity_label ?? e.severity))}</span>` +
      `<span class="ti">${esc(pick(e.title))}<small>${esc(pick(e.kind_label ?? e.kind))}${e.district ? ` · ${esc(pick(e.district.name))}` : ""}</small></span>` +
      `<span class="st">${esc(pick(e.status_label ?? e.status))}<small>${clock(e.opened_at, true)}</small></span></li>`).join("")}</ul>`
    : `<p class="none">${t("noEvents")}</p>`;
}

const RENDERERS = { figure, series, bars, table, choropleth, points, events: eventsList };
export const KINDS = Object.keys(RENDERERS);
