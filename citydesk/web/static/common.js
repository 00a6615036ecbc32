// What every live screen shares (the dashboard, the section pages, the kiosk, the layout editor):
// the language toggle, number and time formatting per locale, the viridis ramp, fetching JSON and
// the district map. One copy, so the dashboard and the sections cannot drift apart in how a number
// or a colour reads.

const echarts = window.echarts; // the vendored UMD build, loaded by a classic <script> before us

// Reversed viridis (low = light yellow, high = dark purple): ordered in lightness and readable by
// colour-blind viewers; levels take evenly spaced samples of it, other measures the whole ramp.
export const VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"];
export const NO_DATA = "#e3e7ec";
export const LANG_KEY = "citydesk.lang";

let current = localStorage.getItem(LANG_KEY) === "en" ? "en" : "ko";
// Times are shown on the city's clock: the page names its zone on any element (data-timezone).
const TIMEZONE = document.querySelector("[data-timezone]")?.dataset.timezone || undefined;

/** The language shown ("ko" or "en"), kept across pages in localStorage. */
export const lang = () => current;
export function setLang(l) {
  current = l === "en" ? "en" : "ko";
  localStorage.setItem(LANG_KEY, current);
  document.documentElement.lang = current;
}

export const locale = () => (current === "ko" ? "ko-KR" : "en-GB");
// `decimals`: what the datum needs (a widget may say: turbidity is read to 0.001 NTU); 1 by default.
export const num = (v, decimals = 1) => (v === null || v === undefined ? "–" : new Intl.NumberFormat(locale(), { maximumFractionDigits: decimals ?? 1 }).format(v));
export const int = (v) => new Intl.NumberFormat(locale()).format(v ?? 0);
export const clock = (iso, withDate) => (iso ? new Intl.DateTimeFormat(locale(), {
  timeZone: TIMEZONE, hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  ...(withDate ? { month: "short", day: "numeric" } : {}),
}).format(new Date(iso)) : "–");
/** A bilingual label ({ko, en}) in the current language; a plain string as it is. */
export const pick = (label) => (label === null || label === undefined ? "" : typeof label === "object" ? label[current] ?? label.ko ?? label.en ?? "" : String(label));
export const rem = () => parseFloat(getComputedStyle(document.documentElement).fontSize);
export const fontFamily = () => getComputedStyle(document.body).fontFamily;

export function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function viridis(x) { // x in [0, 1]: 0 = lowest (yellow), 1 = highest (purple)
  const p = (1 - Math.min(1, Math.max(0, x))) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(p));
  const [a, b] = [VIRIDIS[i], VIRIDIS[i + 1]].map((h) => [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16)));
  return "#" + a.map((c, k) => Math.round(c + (b[k] - c) * (p - i)).toString(16).padStart(2, "0")).join("");
}

export function inkOn(hex) { // black or white text, whichever reads better on this fill
  const [r, g, b] = [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16) / 255);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 ? "#10253f" : "#ffffff";
}

/** GET a JSON route. ``anonymous`` sends no cookie: the kiosk must see public data only even on a
 * browser where staff signed in. */
export async function getJSON(url, { anonymous = false } = {}) {
  const r = await fetch(url, { headers: { Accept: "application/json" }, credentials: anonymous ? "omit" : "same-origin" });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

/** [west, south, east, north] of GeoJSON features. */
export function bbox(features) {
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  const walk = (c) => {
    if (typeof c[0] === "number") { x0 = Math.min(x0, c[0]); x1 = Math.max(x1, c[0]); y0 = Math.min(y0, c[1]); y1 = Math.max(y1, c[1]); }
    else c.forEach(walk);
  };
  features.forEach((f) => walk(f.geometry.coordinates));
  return [x0, y0, x1, y1];
}

/** Load the web font's glyphs for ``text`` before a canvas draws it: the Korean font comes in
 * subsets fetched when the page's own text needs them, and a chart's labels alone never ask. */
export function glyphs(text) {
  const family = fontFamily().split(",")[0].trim();
  return document.fonts.load(`16px ${family}`, text).catch(() => []);
}

let districts = null;
/** Seoul's 25 districts as GeoJSON, registered once as the ECharts map "seoul". */
export function districtMap() {
  districts ??= getJSON("/api/geo/districts", { anonymous: true }) // public geography
    .then((geo) => { echarts.registerMap("seoul", geo); return geo; });
  return districts;
}

// -- perspectives, layouts and the section bar -------------------------------------------------------

const PERSPECTIVE_OF = { wall: "mayor", desktop: "official", mobile: "citizen", kiosk: "kiosk" };
const VIEW_OF_ROLE = { mayor: "wall", admin: "desktop", official: "desktop", department_staff: "desktop", anonymous: "mobile" };
const PHONE_PX = 700;

/** The device and perspective of a page whose element carries data-view (the URL's ?view=, or
 * empty) and data-role: the device asked for, else the role's own (the mayor's wall, staff's
 * desktop, a citizen's phone), except that a phone-sized viewport reads the citizens' layout. */
export function perspectiveOf(ds) {
  const view = ds.view || (window.innerWidth < PHONE_PX ? "mobile" : VIEW_OF_ROLE[ds.role] ?? "mobile");
  return { view, perspective: PERSPECTIVE_OF[view] ?? "citizen", explicit: Boolean(ds.view) };
}

/** The sections of a perspective's layout, in its order, each with its title, size and widget ids
 * (null: all). Ids the server does not know, or has nothing of for this viewer, are skipped: later
 * issues add sections to layouts before every city has them. ``mine`` (the viewer's department's
 * section ids) come first. */
export async function loadLayout(perspective, { anonymous = false, mine = [] } = {}) {
  const [layout, listing] = await Promise.all([
    getJSON(`/api/status/layouts/${encodeURIComponent(perspective)}`, { anonymous }),
    getJSON("/api/status/sections", { anonymous }),
  ]);
  const known = new Map(listing.sections.map((s) => [s.id, s]));
  const sections = layout.sections.filter((s) => known.has(s.id)).map((s) => ({ ...s, title: known.get(s.id).title }));
  const first = sections.filter((s) => mine.includes(s.id));
  return { layout, sections: [...first, ...sections.filter((s) => !mine.includes(s.id))] };
}

/** Fill ``nav`` with links to the main page and every section of the layout; ``current`` is marked
 * (aria-current) and an explicit ?view= is kept from page to page. */
export function sectionBar(nav, sections, { current = null, view = null } = {}) {
  const q = view ? `?view=${encodeURIComponent(view)}` : "";
  const link = (href, label, here) => `<li><a href="${href}${q}"${here ? ' aria-current="page"' : ""}>${label}</a></li>`;
  nav.innerHTML = `<ul>${link("/dashboard", lang() === "ko" ? "종합" : "Overview", current === null)}${sections.map((s) =>
    link(`/status/${encodeURIComponent(s.id)}`, esc(pick(s.title)), s.id === current)).join("")}</ul>`;
}

// -- the live stream ------------------------------------------------------------------------------------

/** Follow the status stream (Server-Sent Events) and call ``on[event]`` with each event's data;
 * ``on.open``/``on.error`` report the connection. Read with fetch rather than EventSource so that an
 * anonymous screen (the kiosk) can leave its cookies at home; reconnects after a drop like
 * EventSource does. Returns a function that stops it. */
export function liveStream(url, on, { anonymous = false } = {}) {
  let stopped = false;
  let abort = null;
  const dispatch = (block) => {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (data.length || event !== "message") on[event]?.(data.length ? JSON.parse(data.join("\n")) : null);
  };
  (async () => {
    while (!stopped) {
      abort = new AbortController();
      try {
        const r = await fetch(url, { headers: { Accept: "text/event-stream" }, credentials: anonymous ? "omit" : "same-origin", signal: abort.signal });
        if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
        on.open?.();
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer = (buffer + value).replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            dispatch(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch (err) {
        if (stopped) return;
      }
      on.error?.();
      await new Promise((done) => setTimeout(done, 3000));
    }
  })();
  return () => { stopped = true; abort?.abort(); };
}

/** ``fn`` at most once per ``ms``, and always after the last call: a steady stream of observations
 * must not postpone a refresh forever (throttled, not debounced). */
export function throttled(fn, ms) {
  let pending = null;
  return () => { pending ??= setTimeout(() => { pending = null; fn(); }, ms); };
}
