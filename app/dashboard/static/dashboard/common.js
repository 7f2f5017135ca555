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

  // Put each message of an API error's details next to the field whose data-field is its path.
  function showFieldErrors(root, details, prefix) {
    Object.entries(details || {}).forEach(([key, value]) => {
      const path = prefix ? prefix + "." + key : key;
      if (Array.isArray(value)) {
        const field = root.querySelector('[data-field="' + path + '"]');
        if (!field) return;
        field.classList.add("invalid");
        const note = document.createElement("span");
        note.className = "field-error";
        note.textContent = value.join(" ");
        field.insertAdjacentElement("afterend", note);
      } else if (value && typeof value === "object") {
        showFieldErrors(root, value, path);
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
      document.getElementById("nav-settings").hidden = !me.tenant;
      document.getElementById("nav-tenants").hidden = role !== "superadmin";
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

  document.addEventListener("DOMContentLoaded", () => {
    showImpersonation();
    document.getElementById("end-impersonation").addEventListener("click", endImpersonation);
    document.getElementById("logout").addEventListener("click", logout);
  });

  window.Dash = {
    KEYS, api, token, acting, ApiError, clearFieldErrors, showFieldErrors, applyBranding, requireLogin, showImpersonation,
    enrolTwoFactor,
  };
})();
