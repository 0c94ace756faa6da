// The leadflow dashboard: an overview of a lister's results, a page per listing and the leads
// board, over leadflow's HTTP API. A plain ES module (no build step). Every request carries
// the user's token (a JWT kept in sessionStorage), so the server's access rules decide what
// anyone sees: a lister's token never shows another lister's data, whatever the page asks.

const TOKEN_KEY = "leadflow.token";
const LISTER_KEY = "leadflow.lister";
const TZ_KEY = "leadflow.tz";

const CHANNELS = ["phone", "whatsapp", "direct_message", "email", "appointment", "website"];
const CHANNEL_LABELS = {
  phone: "Phone",
  whatsapp: "WhatsApp",
  direct_message: "Direct message",
  email: "Email",
  appointment: "Appointment",
  website: "Website",
};
const LEAD_TYPES = [
  ["phone_leads", "Phone"],
  ["message_leads", "Message"],
  ["email_leads", "Email"],
  ["appointment_leads", "Appointment"],
  ["website_leads", "Website"],
];
const PLATFORM_LABELS = {
  whatsapp: "WhatsApp", facebook: "Facebook", x: "X", twitter: "Twitter", email: "Email",
  copy_link: "Copy link", linkedin: "LinkedIn", telegram: "Telegram", sms: "SMS", unknown: "Unknown",
};
const STATUSES = [
  "new", "contacted", "qualified", "viewing_scheduled", "negotiating", "won", "lost", "spam",
  "archived",
];
const OPEN_STATUSES = STATUSES.slice(0, 5);
// Okabe-Ito: distinguishable with the common colour-vision deficiencies.
const PALETTE = ["#0072B2", "#009E73", "#CC79A7", "#E69F00", "#D55E00", "#56B4E9", "#F0E442", "#000000"];
const CHANNEL_COLORS = Object.fromEntries(CHANNELS.map((c, i) => [c, PALETTE[i]]));
const VIEWS_COLOR = "#0072B2";
const LEADS_COLOR = "#D55E00";
const UNIQUE_COLOR = "#009E73";

const RANGE_PRESETS = [
  ["1d", "Today", 1],
  ["7d", "Last 7 days", 7],
  ["30d", "Last 30 days", 30],
  ["90d", "Last 90 days", 90],
  ["12m", "Last 12 months", 365],
  ["custom", "Custom", null],
];
const GRANULARITIES = [["hour", "Hour"], ["day", "Day"], ["week", "Week"], ["month", "Month"]];
const LISTINGS_PAGE = 10;
const LEADS_PAGE = 25;

/** `zone` if this browser knows it as an IANA time zone, else `fallback`. */
function knownZone(zone, fallback) {
  if (!zone) return fallback;
  try {
    Intl.DateTimeFormat("en", { timeZone: zone });
    return zone;
  } catch {
    return fallback;
  }
}

const browserZone = knownZone(Intl.DateTimeFormat().resolvedOptions().timeZone, "UTC");
const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  me: null,
  lister: sessionStorage.getItem(LISTER_KEY),
  tz: knownZone(localStorage.getItem(TZ_KEY), browserZone),
  flash: null,
};
const number = new Intl.NumberFormat("en-US");
const percent = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2, minimumFractionDigits: 2 });
let charts = [];
let generation = 0;

// -- DOM -----------------------------------------------------------------------------------------

/** An element: `h("a", {href, class, onclick}, ...children)`; text is never parsed as HTML. */
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, ...children);
  return node;
}

function append(node, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function replace(node, ...children) {
  node.replaceChildren();
  return append(node, ...children);
}

const main = () => document.getElementById("main");

function alertBox(message, kind = "error") {
  return h("p", { class: `alert ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
}

function label(text) {
  return String(text).replaceAll("_", " ").replace(/^./, (c) => c.toUpperCase());
}

const platformLabel = (platform) => PLATFORM_LABELS[platform] || label(platform);
const channelLabel = (channel) => CHANNEL_LABELS[channel] || label(channel);

/** Share platforms as [label, count], most shared first. */
function platformEntries(counts) {
  return Object.entries(counts || {})
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([platform, count]) => [platformLabel(platform), count]);
}

// -- formatting ----------------------------------------------------------------------------------

const fmt = (value) => (value === null || value === undefined ? "—" : number.format(value));
const fmtPercent = (value) => (value === null || value === undefined ? "—" : `${percent.format(value)} %`);

function parseTime(text) {
  // The API writes microseconds; Date wants at most milliseconds.
  return new Date(String(text).replace(/(\.\d{3})\d+/, "$1"));
}

function fmtTime(text) {
  return new Intl.DateTimeFormat("en-GB", {
    timeZone: state.tz, day: "numeric", month: "short", year: "numeric", hour: "2-digit",
    minute: "2-digit",
  }).format(parseTime(text));
}

/** A bucket's label from its local start as the API writes it (`2025-03-30T00:00:00+01:00`). */
function bucketLabel(start, granularity) {
  const [, y, m, d, hh, mm] = start.match(/^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/);
  const wall = new Date(Date.UTC(+y, +m - 1, +d, +hh, +mm));
  const options = { timeZone: "UTC" };
  if (granularity === "hour") Object.assign(options, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
  else if (granularity === "month") Object.assign(options, { month: "short", year: "numeric" });
  else Object.assign(options, { day: "numeric", month: "short", year: "2-digit" });
  return new Intl.DateTimeFormat("en-GB", options).format(wall);
}

function bucketName(granularity, tz) {
  const unit = { hour: "Hour", day: "Day", week: "Week (from Monday)", month: "Month" }[granularity];
  return `${unit}, ${tz}`;
}

// -- dates as YYYY-MM-DD strings -----------------------------------------------------------------

function today(tz) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" })
    .format(new Date());
}

function addDays(day, days) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

function daysBetween(from, to) {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86400000);
}

const isDay = (text) => /^\d{4}-\d{2}-\d{2}$/.test(text || "") && !Number.isNaN(Date.parse(text));

function fmtDay(day) {
  return new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", day: "numeric", month: "short", year: "numeric" })
    .format(new Date(`${day}T00:00:00Z`));
}

// -- the API -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function errorDetail(response) {
  try {
    const body = await response.json();
    return body.detail || response.statusText;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

/** Calls the API with the user's token; a 401 signs the user out with the server's reason. */
async function api(path, params = {}, options = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) url.searchParams.append(key, item);
  }
  const headers = { Authorization: `Bearer ${state.token}`, Accept: "application/json" };
  const init = { method: options.method || "GET", headers };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, "The leadflow server cannot be reached: is `leadflow serve` still running?");
  }
  if (response.status === 401) {
    const detail = await errorDetail(response);
    signOut(`Your token was refused (${detail}). Paste a new one to go on.`);
    throw new ApiError(401, detail);
  }
  if (!response.ok) throw new ApiError(response.status, await errorDetail(response));
  return options.raw ? response : response.json();
}

async function download(path, params, filename) {
  const response = await api(path, params, { raw: true });
  const link = h("a", { href: URL.createObjectURL(await response.blob()), download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

/** Runs `load` and shows its error in `where` (a 401 has already signed the user out). */
async function guarded(where, load) {
  try {
    return await load();
  } catch (error) {
    if (error.status === 401) return undefined;
    if (where) replace(where, alertBox(error.message));
    else console.error(error);
    return undefined;
  }
}

// -- signing in and out --------------------------------------------------------------------------

function signOut(message, kind = "error") {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(LISTER_KEY);
  state.token = null;
  state.me = null;
  state.lister = null;
  state.flash = message ? { message, kind } : null;
  document.querySelector("dialog")?.close();
  if (window.location.hash !== "#/signin") window.location.hash = "#/signin";
  else route();
}

function renderSignin() {
  document.title = "Sign in · leadflow";
  showAccount();
  const input = h("input", {
    id: "token", name: "token", type: "password", autocomplete: "off", spellcheck: "false",
    required: true, "aria-describedby": "token-help",
  });
  const form = h(
    "form",
    {
      class: "card signin",
      onsubmit: async (event) => {
        event.preventDefault();
        const token = input.value.trim().replace(/^Bearer\s+/i, "");
        if (!token) return;
        state.token = token;
        sessionStorage.setItem(TOKEN_KEY, token);
        state.flash = null;
        window.location.hash = "#/overview";
      },
    },
    h("h1", {}, "Sign in"),
    state.flash ? alertBox(state.flash.message, state.flash.kind) : null,
    h("label", { for: "token" }, "Your token"),
    input,
    h(
      "p",
      { id: "token-help", class: "hint" },
      "A portal user's token (JWT). To try leadflow locally, open the link that ",
      h("code", {}, "leadflow demo"),
      " prints, or mint one with ",
      h("code", {}, "leadflow token --role admin"),
      " or ",
      h("code", {}, "leadflow token --lister LISTER_ID"),
      " (with the server's LEADFLOW_JWT_SECRET). It is kept in this tab only.",
    ),
    h("button", { type: "submit" }, "Sign in"),
  );
  replace(main(), form);
  input.focus();
}

function showAccount() {
  const signedIn = Boolean(state.me);
  document.querySelector(".mainnav").hidden = !signedIn;
  document.querySelector(".account").hidden = !signedIn;
  if (!signedIn) return;
  const who = state.me.role === "admin" ? `${state.me.subject} (admin)` : `${state.me.lister_id}`;
  document.querySelector(".whoami").textContent = who;
  document.querySelector(".lister-picker").hidden = state.me.role !== "admin";
}

function setupChrome() {
  document.querySelector(".signout").addEventListener("click", () => signOut("You signed out.", "info"));
  const picker = document.querySelector(".lister-picker");
  const input = picker.querySelector("input");
  const options = picker.querySelector("datalist");
  let timer;
  // The server searches the listers (there may be thousands); the list offers the first 20.
  const suggest = async (search) => {
    const page = await guarded(null, () => api("/api/listers", { q: search || undefined, limit: 20 }));
    if (!page) return;
    replace(options, page.items.map((l) => h("option", { value: l.lister_id },
      `${fmt(l.listings)} listings · ${fmt(l.total_leads)} leads`)));
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => suggest(input.value.trim()), 200);
  });
  input.addEventListener("focus", () => { if (!options.children.length) suggest(""); });
  picker.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = input.value.trim();
    if (!chosen) return;
    rememberLister(chosen);
    const { segments, params } = parseHash();
    params.set("lister", chosen);
    navigate(segments[0] === "leads" ? "/leads" : "/overview", params);
  });
}

function rememberLister(lister) {
  state.lister = lister;
  sessionStorage.setItem(LISTER_KEY, lister);
  const input = document.getElementById("lister-input");
  if (input && document.activeElement !== input) input.value = lister;
  return lister;
}

/** The lister a page shows: the token's own, or the one an admin chose (else the busiest). */
async function currentLister(params) {
  if (state.me.role !== "admin") return state.me.lister_id;
  const chosen = params.get("lister") || state.lister;
  if (chosen) return rememberLister(chosen);
  const page = await api("/api/listers", { limit: 1 });
  return page.items.length ? rememberLister(page.items[0].lister_id) : null;
}

// -- routing -------------------------------------------------------------------------------------

function parseHash() {
  const raw = window.location.hash.replace(/^#/, "");
  const [path, query = ""] = raw.split("?");
  const segments = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { segments, params: new URLSearchParams(query) };
}

function hashOf(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of params instanceof URLSearchParams ? params : Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.append(key, value);
  }
  const text = query.toString();
  return `#${path}${text ? `?${text}` : ""}`;
}

function navigate(path, params) {
  const target = hashOf(path, params);
  if (window.location.hash === target) route();
  else window.location.hash = target;
}

function takeTokenFromFragment() {
  const raw = window.location.hash.replace(/^#/, "");
  if (!raw.startsWith("token=")) return;
  const token = new URLSearchParams(raw).get("token");
  if (token) {
    state.token = token;
    state.me = null;
    sessionStorage.setItem(TOKEN_KEY, token);
  }
  // Keep the token out of the address bar and the history.
  window.history.replaceState(null, "", `${window.location.pathname}#/overview`);
}

async function route() {
  takeTokenFromFragment();
  const current = ++generation;
  charts.forEach((chart) => chart.destroy());
  charts = [];
  const { segments, params } = parseHash();
  const page = segments[0] || "overview";
  if (!state.token) return renderSignin();
  if (!state.me) {
    main().setAttribute("aria-busy", "true");
    try {
      state.me = await api("/api/me");
    } catch (error) {
      if (error.status !== 401) replace(main(), alertBox(error.message));
      return undefined;
    } finally {
      main().removeAttribute("aria-busy");
    }
    if (current !== generation) return undefined;
  }
  showAccount();
  document.querySelectorAll(".mainnav a").forEach((link) => {
    if (link.dataset.route === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  });
  const isCurrent = () => current === generation;
  if (page === "signin") return renderSignin();
  if (page === "listings" && segments[1]) return renderListing(segments[1], params, isCurrent);
  if (page === "leads") return renderLeads(params, isCurrent);
  return renderOverview(params, isCurrent);
}

// -- the range controls (shared by the overview and the listing page) ----------------------------

function readRange(params) {
  const tz = knownZone(params.get("tz"), state.tz);
  let preset = params.get("range") || "30d";
  let from = params.get("from");
  let to = params.get("to");
  if (!RANGE_PRESETS.some(([key]) => key === preset)) preset = "30d";
  if (preset === "custom" && !(isDay(from) && isDay(to) && from <= to)) preset = "30d";
  if (preset !== "custom") {
    const days = RANGE_PRESETS.find(([key]) => key === preset)[2];
    to = today(tz);
    from = addDays(to, -(days - 1));
  }
  const days = daysBetween(from, to) + 1;
  const automatic = days <= 2 ? "hour" : days <= 120 ? "day" : days <= 800 ? "week" : "month";
  const granularity = params.get("granularity") || automatic;
  // The API's range is [from, to): the inclusive `to` day ends at the next midnight, in `tz`.
  return { preset, from, to, tz, granularity, query: { from, to: addDays(to, 1), tz } };
}

function rangeParams(range) {
  const params = { range: range.preset, tz: range.tz, granularity: range.granularity };
  if (range.preset === "custom") Object.assign(params, { from: range.from, to: range.to });
  return params;
}

function zoneNames(current) {
  const names = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  return [...new Set(["UTC", browserZone, current, ...names])];
}

function select(id, name, options, selected, attrs = {}) {
  return h(
    "select",
    { id, name, ...attrs },
    options.map(([value, text]) => h("option", { value, selected: value === selected }, text)),
  );
}

/** The range form: a preset or custom days, the time zone, and the bucket size. Changing the
 * range lets the bucket size follow it (hours for a day, weeks for a year) unless chosen. */
function rangeForm(range, onChange) {
  const form = h("form", { class: "controls range", "aria-label": "Range" });
  const preset = select("range-preset", "range", RANGE_PRESETS.map(([k, t]) => [k, t]), range.preset);
  const from = h("input", { id: "range-from", name: "from", type: "date", value: range.from, required: true });
  const to = h("input", { id: "range-to", name: "to", type: "date", value: range.to, required: true });
  const tz = select("range-tz", "tz", zoneNames(range.tz).map((z) => [z, z]), range.tz);
  const grain = select("range-granularity", "granularity", GRANULARITIES, range.granularity);
  const custom = [
    h("div", { class: "field custom" }, h("label", { for: "range-from" }, "From"), from),
    h("div", { class: "field custom" }, h("label", { for: "range-to" }, "To (inclusive)"), to),
    h("div", { class: "field custom" }, h("button", { type: "submit", class: "secondary" }, "Apply dates")),
  ];
  const showCustom = () => custom.forEach((field) => { field.hidden = preset.value !== "custom"; });
  const submit = (granularityChosen) => {
    const next = { preset: preset.value, from: from.value, to: to.value, tz: tz.value, granularity: grain.value };
    if (next.preset === "custom" && !(isDay(next.from) && isDay(next.to) && next.from <= next.to)) {
      to.setCustomValidity("The end must be on or after the start.");
      to.reportValidity();
      return;
    }
    to.setCustomValidity("");
    state.tz = next.tz;
    localStorage.setItem(TZ_KEY, next.tz);
    const rangeChanged = next.preset !== range.preset
      || (next.preset === "custom" && (next.from !== range.from || next.to !== range.to));
    onChange(next, granularityChosen || !rangeChanged);
  };
  preset.addEventListener("change", () => {
    showCustom();
    if (preset.value === "custom") from.focus();
    else submit(false);
  });
  tz.addEventListener("change", () => submit(false));
  grain.addEventListener("change", () => submit(true));
  form.addEventListener("submit", (event) => { event.preventDefault(); submit(false); });
  append(
    form,
    h("div", { class: "field" }, h("label", { for: "range-preset" }, "Range"), preset),
    custom,
    h("div", { class: "field" }, h("label", { for: "range-tz" }, "Time zone"), tz),
    h("div", { class: "field" }, h("label", { for: "range-granularity" }, "Per"), grain),
  );
  showCustom();
  return form;
}

function rangeChangeParams(next, keepGranularity, extra = {}) {
  const params = { ...extra, range: next.preset, tz: next.tz };
  if (next.preset === "custom") Object.assign(params, { from: next.from, to: next.to });
  if (keepGranularity) params.granularity = next.granularity;
  return params;
}

// -- pieces of pages -----------------------------------------------------------------------------

function pageHead(title, subtitle, ...controls) {
  return h("section", { class: "page-head" },
    h("div", { class: "titles" }, h("h1", {}, title), subtitle ? h("p", { class: "subtitle" }, subtitle) : null),
    controls);
}

function card(title, ...children) {
  const id = `card-${Math.random().toString(36).slice(2, 9)}`;
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), children);
}

function loading(text = "Loading…") {
  return h("p", { class: "loading", role: "status" }, text);
}

/** Metric tiles; `items` are [key, label, value, formatter, note]. A tile without a value
 * (a unique count the store cannot know) is marked and explained once, under the tiles. */
function kpis(items) {
  const unknown = items.some(([, , value]) => value === null);
  return [
    h("dl", { class: "kpis" }, items.map(([key, name, value, format = fmt, note]) =>
      h("div", { class: "kpi", dataset: { metric: key } },
        h("dt", {}, name),
        value === undefined
          ? h("dd", { class: "pending", "aria-busy": "true" }, "…")
          : h("dd", { dataset: { value: value ?? "" } }, value === null ? h("abbr", { title: UNIQUE_NOTE }, "—*") : format(value)),
        note ? h("p", { class: "hint" }, note) : null))),
    unknown ? h("p", { class: "hint footnote" }, `* ${UNIQUE_NOTE}`) : null,
  ];
}

const UNIQUE_NOTE = "Not known for this range: unique counts over several hours need the "
  + "per-hour seeker identities, which this store has not recorded for these hours.";

function funnel(steps) {
  const top = Math.max(steps[0][1] || 0, 1);
  return h("ol", { class: "funnel" }, steps.map(([name, value], i) => {
    const bar = h("span", { class: "bar" });
    bar.style.setProperty("--share", `${Math.max((100 * (value || 0)) / top, 0.5)}%`);
    const prev = i > 0 ? steps[i - 1] : null;
    const rate = prev && prev[1] ? `${percent.format((100 * value) / prev[1])} % of ${prev[0].toLowerCase()}` : "";
    return h("li", { dataset: { step: name.toLowerCase() } },
      h("span", { class: "step" }, name),
      h("span", { class: "count" }, fmt(value)),
      bar,
      h("span", { class: "rate" }, rate));
  }));
}

/** A chart in a figure: title, a canvas described for screen readers, and its data as a table. */
function chartFigure(key, title, summary, config, table) {
  const canvas = h("canvas", { role: "img", "aria-label": `${title}. ${summary}` });
  const details = h("details", { class: "chart-data" }, h("summary", {}, "Show the data as a table"));
  details.addEventListener("toggle", () => {
    if (details.open && details.children.length === 1) details.append(dataTable(table));
  }, { once: false });
  const figure = h("figure", { class: "chart", dataset: { chart: key } },
    h("figcaption", {}, h("h2", {}, title), h("p", { class: "hint" }, summary)),
    h("div", { class: "chart-box" }, canvas),
    details);
  requestAnimationFrame(() => {
    if (!canvas.isConnected || !window.Chart) return;
    charts.push(new window.Chart(canvas, config));
  });
  return figure;
}

function dataTable({ columns, rows }) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map((c, i) => h("th", { scope: "col", class: i ? "num" : "" }, c)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell, i) =>
      i ? h("td", { class: "num" }, typeof cell === "number" ? fmt(cell) : cell) : h("th", { scope: "row" }, cell)))))));
}

function axis(title, extra = {}) {
  return {
    beginAtZero: true,
    title: { display: true, text: title, color: "#3a4149", font: { weight: "600" } },
    ticks: { color: "#3a4149", precision: 0 },
    grid: { color: "#e3e6ea" },
    ...extra,
  };
}

function timeAxis(title) {
  return {
    title: { display: true, text: title, color: "#3a4149", font: { weight: "600" } },
    ticks: { color: "#3a4149", autoSkip: true, maxRotation: 0, autoSkipPadding: 12 },
    grid: { display: false },
  };
}

function chartOptions(scales, legend = true) {
  return {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    interaction: { mode: "index", intersect: false },
    plugins: {
      legend: { display: legend, position: "bottom", labels: { boxWidth: 12, color: "#1b1f24" } },
    },
    scales,
  };
}

function line(labelText, data, color, extra = {}) {
  return {
    label: labelText, data, borderColor: color, backgroundColor: color, borderWidth: 2,
    pointRadius: data.length > 60 ? 0 : 2, tension: 0.2, ...extra,
  };
}

function breakdownChart(key, title, entries, unit) {
  const labels = entries.map(([name]) => name);
  const values = entries.map(([, value]) => value);
  const total = values.reduce((a, b) => a + b, 0);
  const config = {
    type: "bar",
    data: { labels, datasets: [{ label: unit, data: values, backgroundColor: entries.map((_, i) => PALETTE[i % PALETTE.length]) }] },
    options: { ...chartOptions({ x: axis(`${unit} (count)`), y: timeAxis("") }, false), indexAxis: "y" },
  };
  config.options.scales.y.title.display = false;
  const summary = total
    ? `${fmt(total)} ${unit.toLowerCase()} in all: ${entries.map(([n, v]) => `${n} ${fmt(v)}`).join(", ")}.`
    : `No ${unit.toLowerCase()} in this range.`;
  return chartFigure(key, title, summary, config, {
    columns: ["", unit, "Share"],
    rows: entries.map(([n, v]) => [n, v, total ? `${percent.format((100 * v) / total)} %` : "—"]),
  });
}

function channelBadges(channels) {
  return h("span", { class: "chips" }, channels.map((c) => h("span", { class: `chip ch-${c}` }, channelLabel(c))));
}

/** What a lead did last: the channel of its newest action (WhatsApp rather than message). */
function lastAction(lead) {
  const newest = lead.actions.length ? lead.actions[lead.actions.length - 1] : null;
  return newest ? channelLabel(newest.channel) : label(lead.last_action_type);
}

function statusBadge(status) {
  return h("span", { class: `status st-${status}` }, label(status));
}

function listingLink(listingId, params = {}) {
  return h("a", { class: "id", href: hashOf(`/listings/${encodeURIComponent(listingId)}`, params) }, listingId);
}

// -- the overview --------------------------------------------------------------------------------

async function renderOverview(params, isCurrent) {
  document.title = "Overview · leadflow";
  const view = h("div", { class: "page overview" }, loading());
  replace(main(), view);
  const lister = await guarded(view, () => currentLister(params));
  if (lister === undefined || !isCurrent()) return;
  if (lister === null) {
    replace(view, pageHead("Overview"), alertBox("The store holds no listings yet: run the pipeline (leadflow run) first.", "info"));
    return;
  }
  const range = readRange(params);
  const base = { lister: state.me.role === "admin" ? lister : undefined, ...rangeParams(range) };
  const form = rangeForm(range, (next, keep) => navigate("/overview", rangeChangeParams(next, keep, { lister: base.lister })));
  const note = h("p", { class: "range-note" }, `${fmtDay(range.from)} – ${fmtDay(range.to)} · ${range.tz}`);
  const tiles = h("div", { class: "tiles" }, loading());
  const timeCharts = h("div", { class: "grid two" }, loading("Loading charts…"));
  const listingsCard = card("Listings");
  const breakdowns = h("div", { class: "grid two" });
  const statuses = h("div");
  replace(view,
    pageHead("Overview", `Lister ${lister}`, form),
    note, tiles, timeCharts,
    h("div", { class: "grid wide-narrow" }, listingsCard, h("div", { class: "stack" }, breakdowns, statuses)));
  const path = `/api/listers/${encodeURIComponent(lister)}`;
  const summaryLoad = guarded(tiles, () => api(`${path}/summary`, { ...range.query, top: 1 }));
  const seriesLoad = guarded(timeCharts, () => api(`${path}/series`, { ...range.query, granularity: range.granularity }));
  const sharesLoad = guarded(breakdowns, () => api(`${path}/shares`, range.query));
  listingsTable(listingsCard, lister, range, base);

  // Each part fills in as soon as its answer comes: the tiles first from the series (the same
  // sums), then with the exact unique counts of the summary.
  let summaryShown = false;
  const overviewTiles = (t) => kpis([
    ["total_views", "Views", t.total_views],
    ["unique_views", "Unique viewers", t.unique_views],
    ["total_leads", "Leads", t.total_leads],
    ["unique_leads", "Unique leads", t.unique_leads],
    ["conversion_rate", "Conversion", t.conversion_rate, fmtPercent, "leads per 100 views"],
  ]);
  seriesLoad.then((series) => {
    if (!series || !isCurrent()) return;
    if (!summaryShown) replace(tiles, overviewTiles(series.totals));
    replace(timeCharts, overviewCharts(series, range));
  });
  summaryLoad.then((summary) => {
    if (!summary || !isCurrent()) return;
    summaryShown = true;
    replace(tiles, overviewTiles(summary.totals));
    const byStatus = Object.entries(summary.leads_by_status).sort((a, b) => STATUSES.indexOf(a[0]) - STATUSES.indexOf(b[0]));
    replace(statuses, card("Leads by status",
      h("p", { class: "hint" }, "Leads (one per seeker and listing) whose last action is in the range."),
      byStatus.length
        ? h("ul", { class: "status-list" }, byStatus.map(([status, count]) => h("li", {},
          h("a", { href: hashOf("/leads", { lister: base.lister, status, from: range.from, to: range.to }) }, statusBadge(status)),
          h("span", { class: "num" }, fmt(count)))))
        : h("p", {}, "No leads in this range.")));
  });
  const [series, shares] = await Promise.all([seriesLoad, sharesLoad]);
  if (!series || !shares || !isCurrent()) return;
  const channels = CHANNELS.map((c) => [CHANNEL_LABELS[c], series.totals.leads_by_channel[c] || 0]);
  replace(breakdowns,
    breakdownChart("channels", "Leads by channel", channels, "Leads"),
    breakdownChart("platforms", "Shares by platform", platformEntries(shares.by_platform), "Shares"));
}

function overviewCharts(series, range) {
  const labels = series.buckets.map((b) => bucketLabel(b.start, range.granularity));
  const xTitle = bucketName(range.granularity, range.tz);
  const totals = series.totals;
  const stacked = {
    type: "bar",
    data: {
      labels,
      datasets: CHANNELS.map((c) => ({
        label: CHANNEL_LABELS[c], data: series.buckets.map((b) => b.leads_by_channel[c] || 0),
        backgroundColor: CHANNEL_COLORS[c], stack: "leads",
      })),
    },
    options: chartOptions({ x: { ...timeAxis(xTitle), stacked: true }, y: { ...axis("Leads (count)"), stacked: true } }),
  };
  const both = {
    type: "line",
    data: {
      labels,
      datasets: [
        line("Views", series.buckets.map((b) => b.total_views), VIEWS_COLOR, { yAxisID: "y" }),
        line("Leads", series.buckets.map((b) => b.total_leads), LEADS_COLOR, { yAxisID: "y2", borderDash: [6, 3] }),
      ],
    },
    options: chartOptions({
      x: timeAxis(xTitle),
      y: axis("Views (count)"),
      y2: axis("Leads (count)", { position: "right", grid: { drawOnChartArea: false } }),
    }),
  };
  const rows = series.buckets.map((b, i) => [labels[i], ...CHANNELS.map((c) => b.leads_by_channel[c] || 0), b.total_leads]);
  return [
    chartFigure("leads-by-channel", "Leads over time by channel",
      `${fmt(totals.total_leads)} leads, per ${range.granularity} in ${range.tz}, stacked by channel.`,
      stacked, { columns: [xTitle, ...CHANNELS.map((c) => CHANNEL_LABELS[c]), "All leads"], rows }),
    chartFigure("views-and-leads", "Views and leads",
      `${fmt(totals.total_views)} views and ${fmt(totals.total_leads)} leads, per ${range.granularity}; leads on the right axis.`,
      both, {
        columns: [xTitle, "Views", "Leads", "Conversion"],
        rows: series.buckets.map((b, i) => [labels[i], b.total_views, b.total_leads, fmtPercent(b.conversion_rate)]),
      }),
  ];
}

const LISTING_COLUMNS = [
  ["listing", "Listing"],
  ["views", "Views", "total_views"],
  ["leads", "Leads", "total_leads"],
  ["conversion", "Conversion", "conversion_rate"],
  ["saves", "Saves", "saves"],
  ["shares", "Shares", "shares"],
];

/** The lister's listings over the range: sorted, searched and paged on the server. */
function listingsTable(container, lister, range, linkParams) {
  const view = { sort: "leads", order: "desc", offset: 0, q: "" };
  const body = h("div", {}, loading());
  const search = h("input", { id: "listing-search", type: "search", placeholder: "listing id", spellcheck: "false" });
  const searchForm = h("form", { class: "inline-form", role: "search", onsubmit: (e) => { e.preventDefault(); view.q = search.value.trim(); view.offset = 0; load(); } },
    h("label", { for: "listing-search" }, "Find a listing"), search, h("button", { type: "submit", class: "secondary" }, "Find"));
  append(container, h("p", { class: "hint" }, "Every listing of the lister, with its counts in the range. Choose a column to sort by it."), searchForm, body);

  async function load() {
    body.setAttribute("aria-busy", "true");
    const page = await guarded(body, () => api(`/api/listers/${encodeURIComponent(lister)}/listings`, {
      ...range.query, sort: view.sort, order: view.order, limit: LISTINGS_PAGE, offset: view.offset, q: view.q || undefined,
    }));
    body.removeAttribute("aria-busy");
    if (!page) return;
    const header = LISTING_COLUMNS.map(([key, text]) => {
      const active = view.sort === key;
      const button = h("button", {
        type: "button", class: "sort",
        onclick: () => {
          view.order = active && view.order === "desc" ? "asc" : key === "listing" && !active ? "asc" : "desc";
          view.sort = key;
          view.offset = 0;
          load();
        },
      }, text, h("span", { "aria-hidden": "true" }, active ? (view.order === "desc" ? " ▼" : " ▲") : ""));
      return h("th", { scope: "col", class: key === "listing" ? "" : "num", "aria-sort": active ? (view.order === "desc" ? "descending" : "ascending") : null }, button);
    });
    const rows = page.items.map((item) => h("tr", { dataset: { listing: item.listing_id } },
      h("th", { scope: "row" }, listingLink(item.listing_id, linkParams)),
      h("td", { class: "num", dataset: { col: "views" } }, fmt(item.total_views)),
      h("td", { class: "num", dataset: { col: "leads" } }, fmt(item.total_leads)),
      h("td", { class: "num", dataset: { col: "conversion" } }, fmtPercent(item.conversion_rate)),
      h("td", { class: "num", dataset: { col: "saves" } }, fmt(item.saves)),
      h("td", { class: "num", dataset: { col: "shares" } }, fmt(item.shares))));
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.items.length;
    replace(body,
      h("div", { class: "table-wrap" }, h("table", { class: "listings" },
        h("caption", { class: "visually-hidden" }, `Listings of ${lister}, sorted by ${view.sort} ${view.order === "desc" ? "descending" : "ascending"}`),
        h("thead", {}, h("tr", {}, header)),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 6 }, "No listing matches."))))),
      pager(`${fmt(first)}–${fmt(last)} of ${fmt(page.total)} listings`,
        view.offset > 0 ? () => { view.offset = Math.max(0, view.offset - LISTINGS_PAGE); load(); } : null,
        last < page.total ? () => { view.offset += LISTINGS_PAGE; load(); } : null));
  }
  load();
}

function pager(text, previous, next) {
  return h("nav", { class: "pager", "aria-label": "Pages" },
    h("button", { type: "button", class: "secondary", disabled: !previous, onclick: previous || undefined }, "← Previous"),
    h("span", { class: "page-info", "aria-live": "polite" }, text),
    h("button", { type: "button", class: "secondary", disabled: !next, onclick: next || undefined }, "Next →"));
}

// -- the listing page ----------------------------------------------------------------------------

async function renderListing(listingId, params, isCurrent) {
  document.title = `${listingId} · leadflow`;
  const view = h("div", { class: "page listing" }, loading());
  replace(main(), view);
  const range = readRange(params);
  const path = `/api/listings/${encodeURIComponent(listingId)}`;
  const listingLoad = guarded(view, () => api(path));
  const seriesLoad = guarded(null, () => api(`${path}/analytics`, { ...range.query, granularity: range.granularity }).catch((e) => ({ error: e })));
  const listing = await listingLoad;
  if (!listing || !isCurrent()) return;
  const form = rangeForm(range, (next, keep) => navigate(`/listings/${encodeURIComponent(listingId)}`, rangeChangeParams(next, keep)));
  const back = state.me.role === "admin" && listing.lister_id
    ? h("a", { href: hashOf("/overview", { lister: listing.lister_id, ...rangeParams(range) }) }, `Lister ${listing.lister_id}`)
    : h("a", { href: hashOf("/overview", rangeParams(range)) }, "Overview");
  const csv = h("button", {
    type: "button", class: "secondary",
    onclick: () => guarded(null, () => download(`${path}/analytics.csv`, { ...range.query, granularity: range.granularity }, `${listingId}-${range.granularity}.csv`)),
  }, "Download CSV");
  const tiles = h("div", { class: "tiles" }, loading());
  const charts = h("div", { class: "grid two" });
  const funnelCard = card("Funnel in the range");
  const leadsCard = card("Leads on this listing");
  replace(view,
    h("p", { class: "crumbs" }, back, " › ", listingId),
    pageHead(`Listing ${listingId}`, `${listing.lister_id || "no lister"}${listing.lister_type ? ` · ${listing.lister_type}` : ""} · all time: ${fmt(listing.total_views)} views, ${fmt(listing.total_leads)} leads, ${fmtPercent(listing.conversion_rate)} conversion`, form),
    h("p", { class: "range-note" }, `${fmtDay(range.from)} – ${fmtDay(range.to)} · ${range.tz} · per ${range.granularity} `, csv),
    tiles,
    charts,
    h("div", { class: "grid three" },
      funnelCard,
      breakdownChart("listing-channels", "Leads by channel (all time)", CHANNELS.map((c) => [CHANNEL_LABELS[c], listing.leads_breakdown[c] || 0]), "Leads"),
      breakdownChart("listing-platforms", "Shares by platform (all time)", platformEntries(listing.share_breakdown), "Shares")),
    leadsCard);
  leadsList(leadsCard, { listing_id: listingId }, { showListing: false, pageSize: 10 });

  const series = await seriesLoad;
  if (!isCurrent()) return;
  if (!series || series.error) {
    replace(tiles, alertBox(series ? series.error.message : "The series could not be loaded."));
    return;
  }
  const t = series.totals;
  replace(tiles, kpis([
    ["impressions", "Impressions", t.impressions],
    ["total_views", "Views", t.total_views],
    ["unique_views", "Unique viewers", t.unique_views],
    ["total_leads", "Leads", t.total_leads],
    ["unique_leads", "Unique leads", t.unique_leads],
    ["conversion_rate", "Conversion", t.conversion_rate, fmtPercent, "leads per 100 views"],
    ["saves", "Saves", t.saves],
    ["shares", "Shares", t.shares],
  ]));
  append(funnelCard,
    h("p", { class: "hint" }, "From being shown in a list, to being opened, to being contacted, in the range."),
    funnel([["Impressions", t.impressions], ["Views", t.total_views], ["Leads", t.total_leads]]));
  const labels = series.buckets.map((b) => bucketLabel(b.start, range.granularity));
  const xTitle = bucketName(range.granularity, range.tz);
  const hasUniques = series.buckets.some((b) => b.unique_views !== null);
  const views = {
    type: "line",
    data: {
      labels,
      datasets: [
        line("Views", series.buckets.map((b) => b.total_views), VIEWS_COLOR, { yAxisID: "y" }),
        hasUniques ? line("Unique viewers", series.buckets.map((b) => b.unique_views), UNIQUE_COLOR, { yAxisID: "y" }) : null,
        line("Leads", series.buckets.map((b) => b.total_leads), LEADS_COLOR, { yAxisID: "y2", borderDash: [6, 3] }),
      ].filter(Boolean),
    },
    options: chartOptions({
      x: timeAxis(xTitle),
      y: axis("Views (count)"),
      y2: axis("Leads (count)", { position: "right", grid: { drawOnChartArea: false } }),
    }),
  };
  const byType = {
    type: "bar",
    data: {
      labels,
      datasets: LEAD_TYPES.map(([key, name], i) => ({
        label: name, data: series.buckets.map((b) => b[key]), backgroundColor: PALETTE[[0, 1, 3, 4, 5][i]], stack: "leads",
      })),
    },
    options: chartOptions({ x: { ...timeAxis(xTitle), stacked: true }, y: { ...axis("Leads (count)"), stacked: true } }),
  };
  replace(charts,
    chartFigure("listing-views", `Views and leads per ${range.granularity}`,
      `${fmt(t.total_views)} views and ${fmt(t.total_leads)} leads in ${range.tz}; leads on the right axis.`,
      views, {
        columns: [xTitle, "Impressions", "Views", "Unique viewers", "Leads", "Unique leads", "Conversion"],
        rows: series.buckets.map((b, i) => [labels[i], b.impressions, b.total_views, fmt(b.unique_views), b.total_leads, fmt(b.unique_leads), fmtPercent(b.conversion_rate)]),
      }),
    chartFigure("listing-lead-types", `Leads by type per ${range.granularity}`,
      `${fmt(t.total_leads)} leads, stacked by type.`,
      byType, {
        columns: [xTitle, ...LEAD_TYPES.map(([, n]) => n)],
        rows: series.buckets.map((b, i) => [labels[i], ...LEAD_TYPES.map(([k]) => b[k])]),
      }));
}

// -- leads: the board, the listing's list, and one lead ------------------------------------------

function statusFilterValue(params) {
  const status = params.get("status") || "";
  return status === "open" ? OPEN_STATUSES : status ? [status] : undefined;
}

async function renderLeads(params, isCurrent) {
  document.title = "Leads · leadflow";
  const view = h("div", { class: "page leads" }, loading());
  replace(main(), view);
  const lister = await guarded(view, () => currentLister(params));
  if (lister === undefined || !isCurrent()) return;
  const value = (key) => params.get(key) || "";
  const form = h("form", { class: "controls", "aria-label": "Filter and sort leads" });
  const status = select("f-status", "status", [["", "Any status"], ["open", "Open (new → negotiating)"], ...STATUSES.map((s) => [s, label(s)])], value("status"));
  const channel = select("f-channel", "channel", [["", "Any channel"], ...CHANNELS.map((c) => [c, CHANNEL_LABELS[c]])], value("channel"));
  const minScore = h("input", { id: "f-min-score", name: "min_score", type: "number", min: 0, step: 10, value: value("min_score"), inputmode: "numeric" });
  const listing = h("input", { id: "f-listing", name: "listing", type: "search", value: value("listing"), spellcheck: "false", placeholder: "any" });
  const from = h("input", { id: "f-from", name: "from", type: "date", value: value("from") });
  const to = h("input", { id: "f-to", name: "to", type: "date", value: value("to") });
  const sort = select("f-sort", "sort", [["last_action", "Last action"], ["score", "Score"], ["created", "Created"]], value("sort") || "last_action");
  const order = select("f-order", "order", [["desc", "Newest / highest first"], ["asc", "Oldest / lowest first"]], value("order") || "desc");
  const apply = () => navigate("/leads", {
    lister: state.me.role === "admin" ? lister : undefined,
    status: status.value, channel: channel.value, min_score: minScore.value, listing: listing.value.trim(),
    from: from.value, to: to.value, sort: sort.value === "last_action" ? "" : sort.value, order: order.value === "desc" ? "" : order.value,
  });
  for (const control of [status, channel, sort, order]) control.addEventListener("change", apply);
  form.addEventListener("submit", (event) => { event.preventDefault(); apply(); });
  const field = (id, text, control) => h("div", { class: "field" }, h("label", { for: id }, text), control);
  append(form,
    field("f-status", "Status", status), field("f-channel", "Channel", channel),
    field("f-min-score", "Min. score", minScore), field("f-listing", "Listing", listing),
    field("f-from", "Last action from", from), field("f-to", "to (inclusive)", to),
    field("f-sort", "Sort by", sort), field("f-order", "Order", order),
    h("div", { class: "field buttons" },
      h("button", { type: "submit" }, "Apply"),
      h("a", { class: "button secondary", href: hashOf("/leads", { lister: state.me.role === "admin" ? lister : undefined }) }, "Reset")));
  const tz = state.tz;
  const query = {
    lister_id: state.me.role === "admin" ? lister : undefined,
    status: statusFilterValue(params),
    channel: value("channel") || undefined,
    min_score: value("min_score") || undefined,
    listing_id: value("listing") || undefined,
    from: isDay(value("from")) ? value("from") : undefined,
    to: isDay(value("to")) ? addDays(value("to"), 1) : undefined,
    sort: value("sort") || undefined,
    order: value("order") || undefined,
  };
  const board = card("Leads");
  const csv = h("button", {
    type: "button", class: "secondary",
    onclick: () => guarded(null, () => download("/api/leads.csv", query, "leads.csv")),
  }, "Download CSV");
  const active = ["status", "channel", "min_score", "listing", "from", "to"].filter((k) => value(k)).length;
  // Open on a wide screen; on a phone the board comes first, the filters one tap away.
  const filters = h("details", { class: "filters", open: active > 0 || window.matchMedia("(min-width: 761px)").matches },
    h("summary", {}, "Filter and sort", active ? ` · ${active} filter${active > 1 ? "s" : ""} on` : ""),
    form);
  replace(view,
    pageHead("Leads", lister ? `Lister ${lister} · one lead per seeker and listing · times in ${tz}` : "All listers", csv),
    filters, board);
  leadsList(board, query, { showListing: true, pageSize: LEADS_PAGE });
}

/** A paged list of leads (`/api/leads` with `query`), each opening in the lead dialog. */
function leadsList(container, query, { showListing, pageSize }) {
  const body = h("div", {}, loading());
  append(container, body);
  const cursors = [null];
  let index = 0;

  async function load() {
    body.setAttribute("aria-busy", "true");
    const page = await guarded(body, () => api("/api/leads", { ...query, limit: pageSize, cursor: cursors[index] || undefined }));
    body.removeAttribute("aria-busy");
    if (!page) return;
    cursors[index + 1] = page.next_cursor;
    const rows = page.items.map((lead) => leadRow(lead, showListing));
    const columns = ["Seeker", showListing ? "Listing" : null, "Score", "Channels", "Actions", "Last action", "Status", "Notes"].filter(Boolean);
    replace(body,
      h("div", { class: "table-wrap" }, h("table", { class: "leads-table" },
        h("caption", { class: "visually-hidden" }, "Leads; open one to see its timeline, move its status or add a note."),
        h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: ["Score", "Actions", "Notes"].includes(c) ? "num" : "" }, c)))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: columns.length }, "No leads match."))))),
      pager(`Page ${index + 1}${page.items.length ? ` · ${page.items.length} leads` : ""}`,
        index > 0 ? () => { index -= 1; load(); } : null,
        page.next_cursor ? () => { index += 1; load(); } : null));
  }
  load();
}

function leadRow(lead, showListing) {
  const open = h("button", { type: "button", class: "link", onclick: () => openLead(lead.seeker_id, lead.listing_id, row) }, lead.seeker_id);
  const row = h("tr", { dataset: { seeker: lead.seeker_id, listing: lead.listing_id } },
    h("th", { scope: "row", dataset: { label: "Seeker" } }, open, lead.re_engaged ? h("span", { class: "chip reengaged", title: "New actions since the last status change" }, "re-engaged") : null),
    showListing ? h("td", { dataset: { label: "Listing" } }, listingLink(lead.listing_id)) : null,
    h("td", { class: "num", dataset: { label: "Score", col: "score" } }, fmt(lead.score)),
    h("td", { dataset: { label: "Channels" } }, channelBadges(lead.channels)),
    h("td", { class: "num", dataset: { label: "Actions" } }, fmt(lead.total_actions)),
    h("td", { dataset: { label: "Last action" } }, h("span", {}, h("span", { class: "nowrap" }, fmtTime(lead.last_action_at)), ` · ${lastAction(lead)}`)),
    h("td", { dataset: { label: "Status", col: "status" } }, statusBadge(lead.status)),
    h("td", { class: "num", dataset: { label: "Notes", col: "notes" } }, fmt(lead.note_count)));
  return row;
}

function leadPath(seekerId, listingId) {
  return `/api/leads/${encodeURIComponent(seekerId)}/${encodeURIComponent(listingId)}`;
}

async function openLead(seekerId, listingId, row) {
  document.querySelector("dialog.lead")?.remove();
  const dialog = h("dialog", { class: "lead", "aria-labelledby": "lead-title" });
  document.body.append(dialog);
  dialog.addEventListener("close", () => dialog.remove());
  replace(dialog, h("p", { class: "loading", role: "status" }, "Loading the lead…"));
  dialog.showModal();
  const lead = await guarded(dialog, () => api(leadPath(seekerId, listingId)));
  if (lead) showLead(dialog, lead, row);
}

function showLead(dialog, lead, row, message) {
  const close = h("button", { type: "button", class: "secondary close", onclick: () => dialog.close() }, "Close");
  const moveSelect = select("lead-move", "status", lead.allowed_moves.map((s) => [s, label(s)]), lead.allowed_moves[0]);
  const moveNote = h("input", { id: "lead-move-note", name: "note", type: "text", maxlength: 2000, placeholder: "optional" });
  const feedback = h("div", { class: "feedback", "aria-live": "polite" }, message ? alertBox(message, "success") : null);
  const moveForm = h("form", {
    class: "lead-form move",
    onsubmit: async (event) => {
      event.preventDefault();
      const button = moveForm.querySelector("button");
      button.disabled = true;
      const body = { status: moveSelect.value };
      if (moveNote.value.trim()) body.note = moveNote.value.trim();
      const updated = await guarded(feedback, () => api(`${leadPath(lead.seeker_id, lead.listing_id)}/status`, {}, { method: "PATCH", body }));
      button.disabled = false;
      if (updated) done(updated, `Moved to ${label(updated.status)}.`);
    },
  },
  h("label", { for: "lead-move" }, "Move to"),
  lead.allowed_moves.length ? moveSelect : h("span", {}, "no further status"),
  h("label", { for: "lead-move-note" }, "with a note"),
  moveNote,
  h("button", { type: "submit", disabled: !lead.allowed_moves.length }, "Move"));
  const noteText = h("textarea", { id: "lead-note", name: "text", rows: 2, maxlength: 2000, required: true });
  const noteForm = h("form", {
    class: "lead-form note",
    onsubmit: async (event) => {
      event.preventDefault();
      const text = noteText.value.trim();
      if (!text) return;
      const button = noteForm.querySelector("button");
      button.disabled = true;
      const updated = await guarded(feedback, () => api(`${leadPath(lead.seeker_id, lead.listing_id)}/notes`, {}, { method: "POST", body: { text } }));
      button.disabled = false;
      if (updated) done(updated, "Note added.");
    },
  },
  h("label", { for: "lead-note" }, "Add a note"), noteText, h("button", { type: "submit" }, "Add note"));

  function done(updated, text) {
    if (row?.isConnected) {
      const fresh = leadRow(updated, Boolean(row.querySelector('[data-label="Listing"]')));
      row.replaceWith(fresh);
      row = fresh;
    }
    showLead(dialog, updated, row, text);
  }

  replace(dialog,
    h("header", { class: "dialog-head" },
      h("h2", { id: "lead-title" }, `Lead of ${lead.seeker_id}`),
      close),
    h("p", { class: "subtitle" }, "on ", listingLink(lead.listing_id), lead.lister_id ? ` · ${lead.lister_id}` : ""),
    h("dl", { class: "facts" },
      h("div", {}, h("dt", {}, "Status"), h("dd", { dataset: { field: "status" } }, statusBadge(lead.status), lead.re_engaged ? h("span", { class: "chip reengaged" }, "re-engaged") : null)),
      h("div", {}, h("dt", {}, "Score"), h("dd", { dataset: { field: "score" } }, fmt(lead.score))),
      h("div", {}, h("dt", {}, "Actions"), h("dd", {}, fmt(lead.total_actions))),
      h("div", {}, h("dt", {}, "Channels"), h("dd", {}, channelBadges(lead.channels))),
      h("div", {}, h("dt", {}, "First action"), h("dd", {}, fmtTime(lead.first_action_at))),
      h("div", {}, h("dt", {}, "Last action"), h("dd", {}, fmtTime(lead.last_action_at)))),
    feedback,
    moveForm,
    noteForm,
    h("h3", {}, "Timeline"),
    timeline(lead));
}

function timeline(lead) {
  const entries = [
    ...lead.actions.map((a) => ({
      at: a.timestamp, kind: "action",
      text: `${channelLabel(a.channel)}${a.appointment_type ? ` (${label(a.appointment_type).toLowerCase()})` : ""}`,
    })),
    ...lead.status_tracker.map((s) => ({ at: s.at, kind: "status", text: `Status: ${label(s.status)}`, by: s.by })),
    ...lead.notes.map((n) => ({ at: n.at, kind: "note", text: n.text, by: n.by })),
  ].sort((a, b) => parseTime(b.at) - parseTime(a.at));
  const kinds = { action: "Action", status: "Status", note: "Note" };
  return h("ol", { class: "timeline" }, entries.map((e) => h("li", { class: `tl-${e.kind}`, dataset: { kind: e.kind } },
    h("span", { class: "tl-kind" }, kinds[e.kind]),
    h("time", { datetime: e.at }, fmtTime(e.at)),
    h("span", { class: "tl-text" }, e.text),
    e.by ? h("span", { class: "tl-by" }, `by ${e.by}`) : null)));
}

// -- start ---------------------------------------------------------------------------------------

setupChrome();
window.addEventListener("hashchange", route);
route();
