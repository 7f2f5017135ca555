"use strict";
(function () {
  let tenant = null;
  let canEdit = false;
  let role = null;

  function showTab(name) {
    document.querySelectorAll("[data-tab]").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
    document.querySelectorAll(".tab-panel").forEach((p) => { p.hidden = p.id !== "tab-" + name; });
  }

  function fill(form, values) {
    Object.entries(values || {}).forEach(([name, value]) => {
      const input = form.elements.namedItem(name);
      if (!input) return;
      if (input.type === "checkbox") input.checked = !!value;
      else if (Array.isArray(value)) input.value = value.join("\n");
      else input.value = value === null || value === undefined ? "" : value;
    });
  }

  function read(form) {
    const values = {};
    Array.from(form.elements).forEach((input) => {
      if (!input.name || input.disabled) return;
      if (input.type === "checkbox") values[input.name] = input.checked;
      else if (input.name === "ipWhitelist") values[input.name] = input.value.split(/\s+/).filter(Boolean);
      else if (input.type === "number") values[input.name] = input.value === "" ? null : Number(input.value);
      else values[input.name] = input.value === "" ? null : input.value;
    });
    return values;
  }

  function preview() {
    const form = document.getElementById("tab-branding");
    const box = document.getElementById("brand-preview").style;
    const primary = form.elements.namedItem("primaryColor").value;
    const secondary = form.elements.namedItem("secondaryColor").value;
    if (/^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(primary)) box.setProperty("--primary", primary);
    if (/^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(secondary)) box.setProperty("--secondary", secondary);
  }

  const DAY = 24 * 60 * 60 * 1000;

  // The plan, and the trial: running (and what follows it), or over.
  function renderPlan() {
    const billing = tenant.billing || {};
    const ends = billing.trialEndsAt ? new Date(billing.trialEndsAt) : null;
    document.getElementById("plan-name").textContent = tenant.plan;
    const note = document.getElementById("trial-note");
    note.dataset.status = "";
    note.textContent = "";
    if (ends) {
      const when = ends.toLocaleDateString(undefined, { year: "numeric", month: "long", day: "numeric" });
      const left = Math.ceil((ends.getTime() - Date.now()) / DAY);
      if (billing.status === "trialing" && left > 0) {
        note.dataset.status = "trialing";
        note.textContent = "Trial until " + when + " (" + left + (left === 1 ? " day" : " days") +
          " left). Without a payment method the tenant then moves to the free plan; what it holds is kept.";
      } else if (billing.status === "trialing") {
        note.dataset.status = "ending";
        note.textContent = "The trial ended on " + when + ": the tenant is moving to the free plan.";
      } else if (left > 0) {
        note.dataset.status = "converted";
        note.textContent = "Trial until " + when + "; billing starts then.";
      } else if (tenant.plan === "free") {
        note.dataset.status = "ended";
        note.textContent = "The trial ended on " + when + ".";
      }
    }
    note.hidden = !note.textContent;
  }

  function render() {
    document.getElementById("tenant-name").textContent = tenant.name;
    fill(document.getElementById("tab-general"), tenant.settings.general);
    fill(document.querySelector("form[data-group=security]"), tenant.settings.security);
    fill(document.getElementById("tab-compliance"), tenant.settings.compliance);
    fill(document.getElementById("tab-branding"), tenant.branding);
    const whiteLabel = !!tenant.features.whiteLabel;
    document.getElementById("white-label").disabled = !(whiteLabel && canEdit);
    document.getElementById("white-label-note").textContent = whiteLabel ? "" : "(needs the whiteLabel feature)";
    Dash.applyBranding(tenant);
    renderPlan();
    preview();
    renderSso();
  }

  async function renderUsage() {
    const usage = await Dash.api("/tenants/current/usage");
    const thresholds = (tenant.settings.notifications.usageAlertThresholds || [80, 100]).slice().sort((a, b) => a - b);
    document.getElementById("usage-period").textContent =
      new Date(usage.period.start).toLocaleDateString() + " – " + new Date(usage.period.end).toLocaleDateString();
    const bars = Object.entries(usage.resources).map(([name, r]) => {
      const row = document.createElement("div");
      row.className = "bar";
      row.dataset.resource = name;
      const label = document.createElement("div");
      label.textContent = Dash.label(name) + ": " + Dash.amount(name, r.used) + " of " + Dash.amount(name, r.limit) +
        (r.percent === null ? "" : " (" + r.percent + "%)");
      const track = document.createElement("div");
      track.className = "bar-track";
      const fill = document.createElement("div");
      fill.className = "bar-fill";
      const percent = r.percent === null ? 0 : Math.min(100, r.percent);
      fill.style.width = percent + "%";
      if (r.percent !== null && r.percent >= thresholds[thresholds.length - 1]) fill.classList.add("alert");
      else if (r.percent !== null && r.percent >= thresholds[0]) fill.classList.add("warn");
      track.appendChild(fill);
      row.append(label, track);
      return row;
    });
    document.getElementById("usage-bars").replaceChildren(...bars);
  }

  async function save(event) {
    event.preventDefault();
    const form = event.target;
    const group = form.dataset.group;
    Dash.clearFieldErrors(form);
    form.querySelector(".saved").hidden = true;
    const values = read(form);
    try {
      if (group === "branding") {
        tenant = await Dash.api("/tenants/current/branding", { method: "PATCH", body: values });
      } else {
        tenant = await Dash.api("/tenants/current/settings", { method: "PATCH", body: { [group]: values } });
      }
      render();
      form.querySelector(".saved").hidden = false;
    } catch (error) {
      Dash.showFieldErrors(form, error.details);
      document.getElementById("page-error").textContent = error.message;
    }
  }

  // The caller's own 2FA (not while impersonating: it is the user's own). Turning it on ends every
  // session of theirs, this one too: they sign in again, with a code.
  function showOwnTwoFactor(me) {
    if (!me.user || Dash.acting()) return;
    const on = me.user.twoFactorEnabled;
    document.getElementById("own-two-factor-status").textContent = on
      ? "On: you sign in with a code from your authenticator app."
      : "Off. Turn it on before requiring it of everyone; doing so signs you out, to sign in again with a code.";
    const start = document.getElementById("own-two-factor-start");
    start.hidden = on;
    const disable = document.getElementById("disable-form");
    disable.hidden = !on;
    disable.addEventListener("submit", (event) => {
      event.preventDefault();
      Dash.act(disable, async () => {
        await Dash.api("/auth/2fa/disable", { method: "POST", body: { code: document.getElementById("disable-code").value.trim() } });
        sessionStorage.clear();
        location.href = "/dashboard/login";
      });
    });
    start.addEventListener("click", async () => {
      try {
        await Dash.enrolTwoFactor(Dash.token(), () => {
          sessionStorage.clear();
          location.href = "/dashboard/login";
        });
        start.hidden = true;
      } catch (error) {
        document.getElementById("page-error").textContent = error.message;
      }
    });
    document.getElementById("own-two-factor").hidden = false;
  }

  // Single sign-on: the provider's settings (owners change them; the secret is never shown back).
  function renderSso() {
    const form = document.getElementById("sso-form");
    const sso = tenant.settings.security.sso || {};
    const on = tenant.settings.security.ssoEnabled;
    document.getElementById("sso-status").textContent = !sso.configured
      ? "Not set up."
      : on ? "Set up and on: the login page offers it." : "Set up, but off: turn on “Single sign-on enabled” above to offer it.";
    document.getElementById("sso-redirect").textContent = location.origin + "/dashboard/sso";
    document.getElementById("sso-redirect-api").textContent = location.origin + "/api/v1/auth/sso/callback";
    form.elements.namedItem("issuer").value = sso.issuer || "";
    form.elements.namedItem("clientId").value = sso.clientId || "";
    form.elements.namedItem("clientSecret").value = "";
    form.elements.namedItem("allowedDomains").value = (sso.allowedDomains || []).join("\n");
    form.elements.namedItem("defaultRole").value = sso.defaultRole || "member";
    form.elements.namedItem("passwordLoginAllowed").checked = sso.passwordLoginAllowed !== false;
    const owner = role === "owner" && !Dash.acting();
    form.querySelectorAll("input, textarea, select, button").forEach((el) => { el.disabled = !owner; });
    document.getElementById("sso-owners-note").hidden = owner;
    document.getElementById("sso-remove").hidden = !sso.configured;
  }

  async function saveSso(event, remove) {
    event.preventDefault();
    const form = document.getElementById("sso-form");
    form.querySelector(".saved").hidden = true;
    let sso = null;
    if (!remove) {
      sso = {
        issuer: form.elements.namedItem("issuer").value.trim(),
        clientId: form.elements.namedItem("clientId").value.trim(),
        allowedDomains: form.elements.namedItem("allowedDomains").value.split(/[\s,]+/).filter(Boolean),
        defaultRole: form.elements.namedItem("defaultRole").value,
        passwordLoginAllowed: form.elements.namedItem("passwordLoginAllowed").checked,
      };
      const secret = form.elements.namedItem("clientSecret").value;
      if (secret) sso.clientSecret = secret;
    }
    await Dash.act(form, async () => {
      tenant = await Dash.api("/tenants/current/settings", { method: "PATCH", body: { security: { sso } } });
      render();
      form.querySelector(".saved").hidden = false;
    });
  }

  async function download() {
    try {
      const response = await Dash.api("/tenants/current/export", { raw: true });
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = (response.headers.get("Content-Disposition") || "").split('filename="')[1]?.replace('"', "") || "export.json";
      link.click();
      URL.revokeObjectURL(url);
    } catch (error) {
      document.getElementById("page-error").textContent = error.message;
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const me = await Dash.requireLogin();
    if (!me) return;
    if (!me.tenant) { location.href = "/dashboard/tenants"; return; }
    tenant = me.tenant;
    role = me.credential.role;
    canEdit = ["owner", "admin"].includes(me.credential.role);
    document.querySelectorAll("[data-tab]").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
    document.querySelectorAll("form[data-group]").forEach((form) => {
      form.addEventListener("submit", save);
      if (!canEdit) form.querySelectorAll("input, textarea, select, button.save").forEach((el) => { el.disabled = true; });
    });
    document.getElementById("readonly-note").hidden = canEdit;
    document.getElementById("export-button").disabled = me.credential.role !== "owner";
    document.getElementById("export-button").addEventListener("click", download);
    document.getElementById("tab-branding").addEventListener("input", preview);
    render();
    Dash.showFeatures(document, tenant.features);
    document.getElementById("sso-form").addEventListener("submit", (event) => saveSso(event, false));
    document.getElementById("sso-remove").addEventListener("click", (event) => saveSso(event, true));
    showOwnTwoFactor(me);
    await renderUsage();
    document.body.dataset.ready = "true";
  });
})();
