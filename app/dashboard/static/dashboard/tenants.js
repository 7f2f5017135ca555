"use strict";
(function () {
  const LIMITS = ["users", "campaigns", "messagesPerMonth", "telegramAccounts", "storage", "apiCallsPerHour", "webhooks"];
  let list = null;
  let selected = null;
  let me = null;

  async function load(page) {
    const params = new URLSearchParams({ ...list.at(page || 1), perPage: "10" });
    const q = document.getElementById("filter-q").value.trim();
    const status = document.getElementById("filter-status").value;
    const plan = document.getElementById("filter-plan").value;
    if (q) params.set("q", q);
    if (status) params.set("status", status);
    if (plan) params.set("plan", plan);
    const result = await Dash.api("/tenants?" + params);
    const rows = result.items.map((t) => {
      const row = document.createElement("tr");
      row.dataset.slug = t.slug;
      [t.name, t.slug, t.plan, t.status, t.usage.users, new Date(t.createdAt).toLocaleDateString()].forEach((value, i) => {
        const cell = document.createElement("td");
        cell.textContent = value;
        if (i === 3) cell.className = "status-" + t.status;
        row.appendChild(cell);
      });
      row.addEventListener("click", () => select(t));
      return row;
    });
    document.querySelector("#tenants-table tbody").replaceChildren(...rows);
    list.show(result, "tenants");
    document.body.dataset.ready = "true";
  }

  function select(tenant) {
    selected = tenant;
    document.querySelectorAll("#tenants-table tbody tr").forEach((r) => r.classList.toggle("selected", r.dataset.slug === tenant.slug));
    document.getElementById("detail").hidden = false;
    document.getElementById("detail-title").textContent = tenant.name + " (" + tenant.slug + ", " + tenant.status + ")";
    document.getElementById("suspend-tenant").hidden = tenant.status !== "active";
    document.getElementById("activate-tenant").hidden = tenant.status !== "suspended";
    const form = document.getElementById("detail-form");
    Dash.clearFieldErrors(form);
    form.elements.namedItem("plan").value = tenant.plan;
    const fields = LIMITS.map((name) => {
      const label = document.createElement("label");
      label.textContent = Dash.label(name) + (name === "storage" ? " (bytes) " : " ");
      const input = document.createElement("input");
      input.name = "limit-" + name;
      input.dataset.field = "limits." + name;
      const override = tenant.limitOverrides[name];
      input.value = override === undefined ? "" : override === null ? "unlimited" : String(override);
      input.placeholder = "plan: " + Dash.amount(name, tenant.limits[name]);
      label.appendChild(input);
      return label;
    });
    document.getElementById("limit-fields").replaceChildren(...fields);
    document.getElementById("delete-confirm").value = "";
    document.getElementById("delete-tenant").disabled = true;
    document.getElementById("detail-error").textContent = "";
    form.querySelector(".saved").hidden = true;
  }

  async function act(work) {
    const errorBox = document.getElementById("detail-error");
    errorBox.textContent = "";
    try {
      await work();
    } catch (error) {
      Dash.showFieldErrors(document.getElementById("detail"), error.details);
      errorBox.textContent = error.message;
    }
  }

  async function refreshSelected() {
    await load(list.page);
    if (selected) select(await Dash.api("/tenants/" + selected.id));
  }

  async function saveTenant(event) {
    event.preventDefault();
    const form = event.target;
    Dash.clearFieldErrors(form);
    const limits = {};
    LIMITS.forEach((name) => {
      const raw = form.elements.namedItem("limit-" + name).value.trim();
      if (raw === "unlimited") limits[name] = null;
      else if (raw !== "") limits[name] = Number(raw);
    });
    await act(async () => {
      await Dash.api("/tenants/" + selected.id, { method: "PATCH", body: { plan: form.elements.namedItem("plan").value, limits } });
      await refreshSelected();
      form.querySelector(".saved").hidden = false;
    });
  }

  function reason() {
    return document.getElementById("action-reason").value.trim();
  }

  async function impersonate() {
    await act(async () => {
      const result = await Dash.api("/tenants/" + selected.id + "/impersonate", { method: "POST", body: { reason: reason() } });
      sessionStorage.setItem(Dash.KEYS.acting, JSON.stringify({
        token: result.accessToken,
        expiresAt: result.expiresAt,
        tenantName: selected.name,
        startedBy: me.user ? me.user.email : "superadmin",
      }));
      location.href = "/dashboard/tenant/settings";
    });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    me = await Dash.requireLogin();
    if (!me) return;
    if (me.credential.role !== "superadmin") { location.href = "/dashboard/tenant/settings"; return; }
    list = Dash.pager(document, load);
    document.getElementById("filters").addEventListener("submit", (e) => { e.preventDefault(); list.reset(); load(1); });
    document.getElementById("detail-form").addEventListener("submit", saveTenant);
    document.getElementById("suspend-tenant").addEventListener("click", () => act(async () => {
      await Dash.api("/tenants/" + selected.id + "/suspend", { method: "POST", body: { reason: reason() } });
      await refreshSelected();
    }));
    document.getElementById("activate-tenant").addEventListener("click", () => act(async () => {
      await Dash.api("/tenants/" + selected.id + "/activate", { method: "POST" });
      await refreshSelected();
    }));
    document.getElementById("impersonate-tenant").addEventListener("click", impersonate);
    const confirm = document.getElementById("delete-confirm");
    confirm.addEventListener("input", () => {
      document.getElementById("delete-tenant").disabled = !selected || confirm.value !== selected.slug;
    });
    document.getElementById("delete-tenant").addEventListener("click", () => act(async () => {
      await Dash.api("/tenants/" + selected.id, { method: "DELETE" });
      selected = null;
      document.getElementById("detail").hidden = true;
      await load(list.page);
    }));
    await load(list.page);
  });
})();
