"use strict";
(function () {
  let list = null;

  function showInvoice(invoice) {
    document.getElementById("invoice-title").textContent =
      "Invoice " + invoice.number + " (" + invoice.period + ", " + invoice.plan + " plan): " + Dash.money(invoice.amountCents, invoice.currency);
    const rows = Object.entries(invoice.usage || {}).map(([resource, figures]) => ({
      id: resource,
      resource,
      used: figures.used,
      limit: figures.limit,
    }));
    Dash.fillTable(document.querySelector("#invoice-usage tbody"), rows, [
      (r) => Dash.label(r.resource),
      (r) => Dash.amount(r.resource, r.used),
      (r) => Dash.amount(r.resource, r.limit),
    ]);
    document.getElementById("invoice-detail").hidden = false;
  }

  async function load(page) {
    const params = new URLSearchParams({ ...list.at(page || 1), perPage: "20" });
    const status = document.getElementById("filter-status").value;
    if (status) params.set("status", status);
    const result = await Dash.api("/billing/invoices?" + params);
    Dash.fillTable(document.querySelector("#invoices-table tbody"), result.items, [
      (i) => i.number,
      (i) => i.period,
      (i) => i.plan,
      (i) => Dash.money(i.amountCents, i.currency),
      (i) => Dash.badge(i.status),
      (i) => Dash.when(i.issuedAt),
      (i) => Dash.when(i.dueAt),
      (i) => Dash.when(i.paidAt),
    ], showInvoice);
    document.getElementById("no-invoices").hidden = result.total > 0;
    list.show(result, "invoices");
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const ctx = await Dash.tenantPage(["owner"]);
    if (!ctx) return;
    const card = document.querySelector("main .card");
    list = Dash.pager(card, load);
    document.getElementById("filters").addEventListener("submit", (e) => { e.preventDefault(); list.reset(); Dash.act(card, () => load(1)); });
    await Dash.act(card, () => load(1));
    document.body.dataset.ready = "true";
  });
})();
