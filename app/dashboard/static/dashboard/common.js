"use strict";
// Shared by the dashboard pages: the token in sessionStorage, calls to /api/v1, errors, the banner.
(function () {
  const KEYS = { token: "dash.token", refresh: "dash.refresh", acting: "dash.impersonation" };

  function acting() {
    const raw = sessionStorage.getItem(KEYS.acting);
    return raw ? JSON.parse(raw) : null;
  }

  function token() {
    const imp = acting();
    return imp ? imp.token : sessionStorage.getItem(KEYS.token);
  }

  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || { code: "error", message: "Request failed" };
      super(error.message);
      this.status = status;
      this.code = error.code;
      this.details = error.details || {};
    }
  }

  // Access tokens last minutes: with the session's refresh token, get a new one (not while
  // impersonating, whose token has no refresh). Tells whether it did.
  async function refreshed() {
    const refresh = sessionStorage.getItem(KEYS.refresh);
    if (acting() || !refresh) return false;
    const response = await fetch("/api/v1/auth/refresh", { method: "POST", headers: { Authorization: "Bearer " + refresh } });
    if (!response.ok) return false;
    sessionStorage.setItem(KEYS.token, (await response.json()).accessToken);
    return true;
  }

  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    const current = options.token === undefined ? token() : options.token;
    if (current) headers.Authorization = "Bearer " + current;
    let body = options.body;
    if (body !== undefined && !(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(body);
    }
    const response = await fetch("/api/v1" + path, { method: options.method || "GET", headers, body });
    if (response.status === 401 && options.token === undefined && !options.retried && await refreshed()) {
      return api(path, Object.assign({}, options, { retried: true }));
    }
    if (options.raw) {
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      return response;
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  function clearFieldErrors(root) {
    root.querySelectorAll(".field-error").forEach((el) => el.remove());
    root.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
  }

  function noteField(field, text) {
    field.classList.add("invalid");
    const note = document.createElement("span");
    note.className = "field-error";
    note.textContent = text;
    field.insertAdjacentElement("afterend", note);
  }

  // The messages of an error's details, nested ones prefixed by their key ("de: ..."), as one line.
  function messagesOf(value) {
    if (Array.isArray(value)) return value.join(" ");
    return Object.entries(value).map(([key, inner]) => (/^(key|value|_schema)$/.test(key) ? "" : key + ": ") + messagesOf(inner)).join(" ");
  }

  // Put each message of an API error's details next to the field whose data-field is its path; the
  // messages about entries of a list (keyed by index) go next to the list's field, numbered from 1, and
  // those about the keys of an object with no field of their own (a translation's language) next to
  // the object's field, which says data-keyed when its keys may be numbers too (chat ids).
  function showFieldErrors(root, details, prefix) {
    Object.entries(details || {}).forEach(([key, value]) => {
      const path = prefix ? prefix + "." + key : key;
      const field = root.querySelector('[data-field="' + path + '"]');
      if (Array.isArray(value)) {
        if (field) noteField(field, value.join(" "));
      } else if (value && typeof value === "object") {
        const entries = Object.entries(value);
        if (field && !field.hasAttribute("data-keyed") && entries.every(([index]) => /^\d+$/.test(index))) {
          noteField(field, entries.map(([index, messages]) => "Entry " + (Number(index) + 1) + ": " + messagesOf(messages)).join(" "));
        } else if (field && !root.querySelector('[data-field^="' + path + '."]')) {
          noteField(field, messagesOf(value));
        } else {
          showFieldErrors(root, value, path);
        }
      }
    });
  }

  function applyBranding(tenant) {
    if (!tenant) return;
    const branding = tenant.branding || {};
    const root = document.documentElement.style;
    if (branding.primaryColor) root.setProperty("--primary", branding.primaryColor);
    if (branding.secondaryColor) root.setProperty("--secondary", branding.secondaryColor);
    const logo = document.getElementById("brand-logo");
    if (branding.logoUrl) { logo.src = branding.logoUrl; logo.hidden = false; }
    document.getElementById("brand-name").textContent = tenant.name;
    document.getElementById("powered-by").hidden = !!branding.hidePoweredBy;
    const css = document.getElementById("tenant-css");
    css.href = "/dashboard/tenant.css?tenant=" + encodeURIComponent(tenant.slug);
    css.disabled = false;
  }

  function showImpersonation() {
    const imp = acting();
    const banner = document.getElementById("impersonation-banner");
    if (!imp) { banner.hidden = true; return; }
    const ends = new Date(imp.expiresAt).toLocaleTimeString();
    document.getElementById("impersonation-text").textContent =
      "Acting as " + imp.tenantName + " — started by " + imp.startedBy + " — ends at " + ends;
    banner.hidden = false;
  }

  // Where a tenant's user lands after signing in.
  const HOME = "/dashboard/campaigns";

  // Keep the tokens of a login and go to `page`.
  function enter(tokens, page) {
    sessionStorage.setItem(KEYS.token, tokens.accessToken);
    sessionStorage.setItem(KEYS.refresh, tokens.refreshToken);
    sessionStorage.removeItem(KEYS.acting);
    location.href = page;
  }

  async function endImpersonation() {
    const imp = acting();
    if (imp) {
      try { await api("/auth/logout", { method: "POST", token: imp.token }); } catch (e) { /* expired already */ }
    }
    sessionStorage.removeItem(KEYS.acting);
    location.href = "/dashboard/tenants";
  }

  async function logout() {
    try { await api("/auth/logout", { method: "POST", body: { refreshToken: sessionStorage.getItem(KEYS.refresh) } }); } catch (e) { /* gone already */ }
    sessionStorage.clear();
    location.href = "/dashboard/login";
  }

  // Load the caller; send them to the login page without a working token.
  async function requireLogin() {
    if (!token()) { location.href = "/dashboard/login"; return null; }
    try {
      const me = await api("/auth/me");
      const role = me.credential.role;
      document.getElementById("whoami").textContent = me.user ? me.user.email + " (" + role + ")" : role;
      document.getElementById("logout").hidden = false;
      // Each link shows for the roles its page serves (data-roles), tenant pages only within a tenant,
      // and a page of a plan feature (data-plan-feature) only when the tenant's plan has it.
      document.querySelectorAll(".topbar nav a[data-roles]").forEach((a) => {
        const tenantLink = a.dataset.roles !== "superadmin";
        const feature = a.dataset.planFeature;
        a.hidden = !a.dataset.roles.split(" ").includes(role) || (tenantLink && !me.tenant) ||
          (feature !== undefined && !(me.tenant && me.tenant.features[feature]));
      });
      return me;
    } catch (error) {
      if (error.status === 401) {
        sessionStorage.removeItem(acting() ? KEYS.acting : KEYS.token);
        location.href = "/dashboard/login";
        return null;
      }
      throw error;
    }
  }

  // Enrol the person behind `token` in two-factor authentication, in the #enrol block
  // (templates/dashboard/_enrol.html): show the QR code and the key, take a code, turn it on, show the
  // recovery codes once, then call done() with the answer of /auth/2fa/enable. Throws when setup fails.
  async function enrolTwoFactor(token, done) {
    const setup = await api("/auth/2fa/setup", { method: "POST", token });
    document.getElementById("enrol-qr").src = setup.qrCode;
    document.getElementById("enrol-secret").textContent = setup.secret;
    document.getElementById("enrol").hidden = false;
    document.getElementById("enrol-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const errorBox = document.getElementById("enrol-error");
      errorBox.textContent = "";
      const code = document.getElementById("enrol-code").value.trim();
      try {
        const enabled = await api("/auth/2fa/enable", { method: "POST", token, body: { code } });
        document.getElementById("enrol-form").hidden = true;
        document.getElementById("recovery-codes").replaceChildren(...enabled.recoveryCodes.map((recoveryCode) => {
          const item = document.createElement("li");
          item.textContent = recoveryCode;
          return item;
        }));
        document.getElementById("recovery").hidden = false;
        document.getElementById("enrol-continue").addEventListener("click", () => done(enabled));
      } catch (error) {
        errorBox.textContent = error.message;
      }
    });
  }

  // Readable names of the API's camelCase keys (limits, features, events, audit actions).
  const NAMES = {
    users: "Users", campaigns: "Campaigns", messagesPerMonth: "Messages per month",
    telegramAccounts: "Bots", storage: "Storage", apiCallsPerHour: "API calls per hour", webhooks: "Webhooks",
  };
  const BYTE_LIMITS = new Set(["storage"]);

  function label(key) {
    if (NAMES[key]) return NAMES[key];
    const words = String(key).replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/[._]/g, " ").toLowerCase();
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  function bytes(n) {
    if (n === null || n === undefined) return "unlimited";
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let value = n;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    const shown = unit === 0 || Number.isInteger(value) ? String(value) : value.toFixed(1);
    return shown + " " + units[unit];
  }

  // A resource's amount in its unit: bytes for storage, a plain count for the rest.
  function amount(resource, n) {
    if (n === null || n === undefined) return "unlimited";
    return BYTE_LIMITS.has(resource) ? bytes(n) : Number(n).toLocaleString("en");
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : "";
  }

  function money(cents, currency) {
    return new Intl.NumberFormat("en", { style: "currency", currency: currency || "USD" }).format(cents / 100);
  }

  // Fill a table body: one row per item, one cell per column (a function of the item giving text or a
  // node); onClick makes rows selectable.
  function fillTable(tbody, items, columns, onClick) {
    tbody.replaceChildren(...items.map((item) => {
      const row = document.createElement("tr");
      row.dataset.id = item.id;
      columns.forEach((column) => {
        const cell = document.createElement("td");
        const value = column(item);
        if (value instanceof Node) cell.appendChild(value);
        else cell.textContent = value === null || value === undefined ? "" : String(value);
        row.appendChild(cell);
      });
      if (onClick) row.addEventListener("click", () => onClick(item, row));
      else row.classList.add("plain");
      return row;
    }));
  }

  // A button of a table row: its click does not also select the row.
  function button(text, className, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = className;
    b.textContent = text;
    b.addEventListener("click", (event) => { event.stopPropagation(); onClick(); });
    return b;
  }

  function badge(text) {
    const span = document.createElement("span");
    span.className = "badge status-" + text;
    span.textContent = text;
    return span;
  }

  const SVG = "http://www.w3.org/2000/svg";

  function svg(name, attributes, text) {
    const el = document.createElementNS(SVG, name);
    Object.entries(attributes).forEach(([k, v]) => el.setAttribute(k, String(v)));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // Draw sent and failed messages in the SVG `chart` (viewBox 600 x 220): points are [{x, sent,
  // failed}] in the order of x (a time in milliseconds), one polyline per series scaled to `top`.
  // options: top, minSpan (the least span of x drawn), label(span) and start under the x axis' ends,
  // legend ({sent, failed}: the figures beside the series' names; by default the last point's).
  function drawChart(chart, points, options) {
    const [W, H, L, B, T, R] = [600, 220, 44, 28, 12, 12];
    const top = Math.max(1, options.top);
    const start = points[0].x;
    const span = Math.max(options.minSpan || 1, points[points.length - 1].x - start);
    const x = (at) => L + ((at - start) / span) * (W - L - R);
    const y = (n) => H - B - (n / top) * (H - B - T);
    const legend = options.legend || points[points.length - 1];
    const children = [
      svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }),
      svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }),
      svg("text", { x: L - 6, y: y(top) + 4, "text-anchor": "end", class: "tick" }, top),
      svg("text", { x: L - 6, y: H - B + 4, "text-anchor": "end", class: "tick" }, 0),
      svg("text", { x: W - R, y: H - 8, "text-anchor": "end", class: "tick" }, options.label(span)),
    ];
    if (options.start) children.push(svg("text", { x: L, y: H - 8, class: "tick" }, options.start));
    [["sent", "series-sent"], ["failed", "series-failed"]].forEach(([key, cls], i) => {
      const line = points.map((p) => x(p.x).toFixed(1) + "," + y(p[key]).toFixed(1)).join(" ");
      children.push(svg("polyline", { points: points.length > 1 ? line : line + " " + (W - R) + "," + y(points[0][key]).toFixed(1), class: cls, "data-series": key }));
      children.push(svg("text", { x: L + 10 + i * 90, y: T + 12, class: "legend " + cls }, key + ": " + legend[key]));
    });
    chart.replaceChildren(...children);
  }

  // Previous / next buttons and "Page x of y" for a list the API pages; load(page) fetches a page,
  // with the query at(page) gives: the cursor that reaches it where one is known (the nextCursor of
  // the page before, which costs the API the same however far the page is), else its number.
  function pager(root, load) {
    const state = { page: 1, cursors: {} };
    const prev = root.querySelector(".prev-page");
    const next = root.querySelector(".next-page");
    prev.addEventListener("click", () => { state.page -= 1; load(state.page); });
    next.addEventListener("click", () => { state.page += 1; load(state.page); });
    state.at = (page) => (state.cursors[page] ? { cursor: state.cursors[page] } : { page: String(page) });
    state.show = (result, noun) => {
      // Past the API's count of a list, its total is a lower bound.
      const more = result.totalIsLowerBound ? "+" : "";
      const pages = Math.max(1, Math.ceil(result.total / result.perPage));
      state.page = result.page;
      if (result.nextCursor) state.cursors[result.page + 1] = result.nextCursor;
      root.querySelector(".page-info").textContent =
        "Page " + result.page + " of " + pages + more + " (" + result.total + more + " " + noun + ")";
      prev.disabled = result.page <= 1;
      next.disabled = !result.nextCursor;
    };
    state.reset = () => { state.page = 1; state.cursors = {}; };
    return state;
  }

  // Elements marked data-feature="name" show only when the tenant's plan has that feature.
  function showFeatures(root, features) {
    root.querySelectorAll("[data-feature]").forEach((el) => { el.hidden = !features[el.dataset.feature]; });
  }

  // The start of every tenant page: the caller (or off to the login page), the navigation, whether
  // the caller may write here (the API's roles), the read-only note; superadmins go to their page.
  async function tenantPage(writers) {
    const me = await requireLogin();
    if (!me) return null;
    if (!me.tenant) { location.href = "/dashboard/tenants"; return null; }
    applyBranding(me.tenant);
    showFeatures(document, me.tenant.features);
    const canWrite = writers.includes(me.credential.role);
    document.querySelectorAll(".writers-only").forEach((el) => { el.hidden = !canWrite; });
    const note = document.getElementById("readonly-note");
    if (note) note.hidden = canWrite;
    return { me, tenant: me.tenant, role: me.credential.role, canWrite };
  }

  // Run an action, showing its error (and the fields' errors) in `root`'s .error box.
  async function act(root, work) {
    const box = root.querySelector(".error");
    box.textContent = "";
    clearFieldErrors(root);
    try {
      await work();
    } catch (error) {
      showFieldErrors(root, error.details);
      box.textContent = error.message;
    }
  }

  // Copy `text`: the Clipboard API, or a selection in the field `input` where it is refused.
  async function copy(text, input) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (error) {
      input.select();
      document.execCommand("copy");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const here = document.body.dataset.nav;
    document.querySelectorAll(".topbar nav a").forEach((a) => {
      if (a.dataset.nav === here) a.setAttribute("aria-current", "page");
    });
    showImpersonation();
    document.getElementById("end-impersonation").addEventListener("click", endImpersonation);
    document.getElementById("logout").addEventListener("click", logout);
  });

  window.Dash = {
    KEYS, api, token, acting, ApiError, clearFieldErrors, showFieldErrors, applyBranding, requireLogin, showImpersonation,
    enrolTwoFactor, HOME, enter, label, bytes, amount, when, money, fillTable, button, badge, drawChart, pager, showFeatures, tenantPage, act, copy,
  };
})();
