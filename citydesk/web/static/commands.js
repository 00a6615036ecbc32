// Commands to departments in the browser: the "commands" panel of the dashboard (staff only), and
// the live behaviour of the inbox and the timeline page.
//
// The panel draws /api/status/commands/summary and refetches it when the page's event stream
// announces a `command` notice (dashboard.js re-dispatches it as `citydesk:command`) and once a
// minute, since a command turns overdue by the clock alone, with no notice. The inbox and the
// timeline are server-rendered; on a notice they fetch their own URL again and swap the live part,
// so the page and its JSON twin stay one source. Overdue never relies on colour alone: an icon
// and the word "overdue" go with it.

import { clock, esc, getJSON, int, lang, locale, pick, setLang } from "./common.js";

const SUMMARY = "/api/status/commands/summary";
const REFRESH_MS = 60_000; // overdue is a matter of time: re-read the summary at least this often

const TEXT = {
  ko: { other: "English", open: "진행 중", overdue: "기한 지남", none: "진행 중인 지시가 없습니다",
        late: "늦음", more: "더 있음", returned: "반려", failed: "지시 현황을 불러오지 못했습니다",
        live: "실시간", connecting: "연결 중", reconnecting: "다시 연결 중" },
  en: { other: "한국어", open: "open", overdue: "Overdue", none: "No open commands",
        late: "late", more: "more", returned: "Returned", failed: "Could not load the commands",
        live: "Live", connecting: "Connecting", reconnecting: "Reconnecting" },
};
const t = (key) => TEXT[lang()][key];

/** "in 2 hours" / "35 minutes ago", in the current language. */
function relative(iso) {
  const minutes = Math.round((new Date(iso) - Date.now()) / 60000);
  const fmt = new Intl.RelativeTimeFormat(locale(), { numeric: "auto" });
  if (Math.abs(minutes) < 90) return fmt.format(minutes, "minute");
  if (Math.abs(minutes) < 48 * 60) return fmt.format(Math.round(minutes / 60), "hour");
  return fmt.format(Math.round(minutes / 1440), "day");
}

// -- the dashboard panel ---------------------------------------------------------------------------

function panel(root) {
  const $ = (sel) => root.querySelector(sel);
  let summary = null;

  function draw() {
    if (!summary) return;
    const { totals } = summary;
    $(".cmd-totals").innerHTML =
      `<span class="cmd-total"><b>${int(totals.open)}</b> ${t("open")}</span>` +
      (totals.overdue
        ? ` <span class="cmd-overdue"><span class="icon" aria-hidden="true">⚠</span> <b>${int(totals.overdue)}</b> ${t("overdue")}</span>`
        : "");
    root.dataset.overdue = String(totals.overdue);
    $(".cmd-late").innerHTML = summary.overdue.map((c) =>
      `<li data-id="${c.id}"><a href="${esc(c.url)}"><span class="icon" aria-hidden="true">⚠</span>` +
      `<span class="what"><b class="flag">${t("overdue")}</b> ${esc(c.title)}</span>` +
      `<span class="meta">${esc(pick(c.department_label))} · ${clock(c.due_at, true)} (${relative(c.due_at)})</span></a></li>`,
    ).join("") + (summary.overdue_more ? `<li class="more">… ${t("more")}</li>` : "") +
    summary.returned.map((c) => // handed back in writing: the sender decides anew
      `<li data-id="${c.id}" class="returned"><a href="${esc(c.url)}"><span class="icon" aria-hidden="true">↩</span>` +
      `<span class="what"><b class="flag">${t("returned")}</b> ${esc(c.title)}</span>` +
      `<span class="meta">${esc(pick(c.department_label))} · ${clock(c.updated_at, true)}</span></a></li>`,
    ).join("");
    $(".cmd-depts").innerHTML = summary.departments.length
      ? summary.departments.map((d) =>
        `<li><a href="/inbox?department=${encodeURIComponent(d.name)}"><span class="nm">${esc(pick(d.label))}</span>` +
        `<span class="n">${int(d.open)}</span>` +
        `<span class="late">${d.overdue ? `<span aria-hidden="true">⚠</span> ${int(d.overdue)} ${t("late")}` : ""}</span></a></li>`).join("")
      : `<li class="none">${t("none")}</li>`;
    $(".cmd-error").hidden = true;
  }

  async function load() {
    try {
      summary = await getJSON(SUMMARY);
      draw();
      root.dataset.ready = "1";
    } catch (err) {
      $(".cmd-error").textContent = `${t("failed")}: ${err.message}`;
      $(".cmd-error").hidden = false;
    }
  }

  // "Send a command" about what the dashboard shows: the district picked, else the measure.
  $(".cmd-send")?.addEventListener("click", (e) => {
    const picked = !document.getElementById("back")?.hidden && document.getElementById("detail-name")?.dataset.code;
    const measure = new URLSearchParams(location.search).get("measure") || document.querySelector(".dash")?.dataset.measure;
    const q = picked ? `subject_kind=district&subject_ref=${encodeURIComponent(picked)}`
      : measure ? `subject_kind=figure&subject_ref=${encodeURIComponent(measure)}` : "";
    e.currentTarget.href = `/commands/new${q ? `?${q}` : ""}`;
  });
  document.addEventListener("citydesk:command", load);
  new MutationObserver(draw).observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });
  setInterval(load, REFRESH_MS);
  load();
}

// -- the inbox and the timeline page ----------------------------------------------------------------

function page(root) {
  const button = root.querySelector(".cmd-lang");
  const live = root.querySelector(".cmd-live");

  function localise() {
    root.dataset.lang = lang();
    document.documentElement.lang = lang();
    if (button) {
      button.textContent = t("other");
      button.setAttribute("aria-pressed", String(lang() === "en"));
    }
    for (const el of root.querySelectorAll("time[datetime]")) {
      const iso = el.getAttribute("datetime");
      el.textContent = clock(iso, true) + (el.dataset.rel ? ` (${relative(iso)})` : "");
      el.title = iso;
    }
    if (live) live.textContent = t(live.dataset.state);
  }

  button?.addEventListener("click", () => { setLang(lang() === "ko" ? "en" : "ko"); localise(); });
  localise();
  const region = root.querySelector("[data-live]");
  if (!region) return; // the send form: nothing to keep live

  let pending = null;
  async function refresh() { // the same URL again; keep what the user is typing
    pending = null;
    const r = await fetch(location.href, { headers: { Accept: "text/html" } });
    if (!r.ok) return;
    const fresh = new DOMParser().parseFromString(await r.text(), "text/html").querySelector("[data-live]");
    if (!fresh) return;
    const typed = new Map([...region.querySelectorAll("textarea[id]")].map((x) => [x.id, x.value]));
    const focused = document.activeElement?.id;
    region.innerHTML = fresh.innerHTML;
    for (const [id, value] of typed) { const x = document.getElementById(id); if (x) x.value = value; }
    if (focused) document.getElementById(focused)?.focus();
    localise();
    root.dataset.refreshed = String(Number(root.dataset.refreshed || 0) + 1);
  }

  const setLive = (state) => { if (live) { live.dataset.state = state; live.textContent = t(state); } };
  const stream = new EventSource("/api/status/stream");
  stream.onopen = () => setLive("live");
  stream.onerror = () => setLive("reconnecting");
  stream.addEventListener("command", () => { pending ??= setTimeout(refresh, 150); });
  setInterval(localise, REFRESH_MS); // "in 5 minutes" must not stay "in 5 minutes"
}

const dashboardPanel = document.getElementById("commands-panel");
if (dashboardPanel) panel(dashboardPanel);
const commandPage = document.querySelector(".cmd[data-page]");
if (commandPage) page(commandPage);
