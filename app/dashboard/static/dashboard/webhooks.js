"use strict";
(function () {
  let ctx = null;
  let selected = null;
  let deliveries = null;

  // The events a webhook may subscribe to, as the API's own document lists them.
  async function loadEvents() {
    const doc = await Dash.api("/openapi.json", { token: null });
    const events = doc.components.schemas.WebhookCreate.properties.events.items.enum;
    document.getElementById("event-choices").replaceChildren(...events.map((name) => {
      const label = document.createElement("label");
      label.className = "check";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "events";
      box.value = name;
      label.append(box, " " + name);
      return label;
    }));
  }

  function rowActions(hook) {
    const box = document.createElement("span");
    box.className = "row-actions";
    box.appendChild(Dash.button("Deliveries", "see-deliveries secondary", () => showDeliveries(hook)));
    if (ctx.canWrite) {
      box.appendChild(Dash.button("Delete", "delete-webhook danger-button", async () => {
        if (!window.confirm("Stop sending events to " + hook.url + "?")) return;
        try {
          await Dash.api("/webhooks/" + hook.id, { method: "DELETE" });
          if (selected && selected.id === hook.id) document.getElementById("deliveries").hidden = true;
        } catch (error) {
          document.getElementById("list-error").textContent = error.message;
        }
        await load();
      }));
    }
    return box;
  }

  async function load() {
    const result = await Dash.api("/webhooks?perPage=100");
    Dash.fillTable(document.querySelector("#webhooks-table tbody"), result.items, [
      (w) => w.url,
      (w) => w.events.join(", "),
      (w) => Dash.badge(w.active ? "active" : "disabled"),
      (w) => w.consecutiveFailures + (w.disabledReason ? " (" + w.disabledReason + ")" : ""),
      rowActions,
    ]);
    document.getElementById("no-webhooks").hidden = result.items.length > 0;
  }

  function lastAnswer(d) {
    const last = d.attemptLog[d.attemptLog.length - 1];
    if (!last) return "";
    return (last.status ? "HTTP " + last.status : last.error || "no answer") + " in " + Math.round(last.ms) + " ms";
  }

  async function loadDeliveries(page) {
    const result = await Dash.api("/webhooks/" + selected.id + "/deliveries?" + new URLSearchParams({ ...deliveries.at(page || 1), perPage: "20" }));
    Dash.fillTable(document.querySelector("#deliveries-table tbody"), result.items, [
      (d) => d.event,
      (d) => Dash.badge(d.status),
      (d) => d.attempts,
      (d) => lastAnswer(d) || d.lastError || "",
      (d) => Dash.when(d.createdAt),
      (d) => Dash.when(d.deliveredAt),
    ]);
    document.getElementById("no-deliveries").hidden = result.total > 0;
    deliveries.show(result, "deliveries");
  }

  async function showDeliveries(hook) {
    selected = hook;
    document.getElementById("deliveries-url").textContent = hook.url;
    document.getElementById("deliveries").hidden = false;
    deliveries.reset();
    await loadDeliveries(1);
  }

  async function subscribe(event) {
    event.preventDefault();
    const form = event.target;
    await Dash.act(form, async () => {
      const events = Array.from(form.querySelectorAll("[name=events]:checked")).map((box) => box.value);
      const created = await Dash.api("/webhooks", { method: "POST", body: { url: form.elements.namedItem("url").value.trim(), events } });
      form.reset();
      document.getElementById("new-secret-value").textContent = created.secret;
      document.getElementById("new-secret").hidden = false;
      await load();
    });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    ctx = await Dash.tenantPage(["owner", "admin"]);
    if (!ctx) return;
    deliveries = Dash.pager(document.getElementById("deliveries"), loadDeliveries);
    if (ctx.canWrite) {
      await loadEvents();
      document.getElementById("webhook-form").addEventListener("submit", subscribe);
    }
    await load();
    document.body.dataset.ready = "true";
  });
})();
