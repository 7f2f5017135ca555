"use strict";
(function () {
  let list = null;

  function summary(entry) {
    return Object.entries(entry.summary || {})
      .map(([key, value]) => Dash.label(key) + ": " + (typeof value === "object" ? JSON.stringify(value) : value))
      .join("; ");
  }

  function who(actor) {
    const name = actor.label || actor.kind;
    return actor.impersonatorLabel ? name + " (by " + actor.impersonatorLabel + ")" : name;
  }

  // The people who can appear as actors: the tenant's users (the API filters by an actor's id).
  async function loadActors() {
    const users = (await Dash.api("/users?perPage=100")).items;
    document.getElementById("filter-actor").append(...users.map((u) => new Option(u.name + " <" + u.email + ">", u.id)));
  }

  async function load(page) {
    const params = new URLSearchParams({ ...list.at(page || 1), perPage: "25" });
    const action = document.getElementById("filter-action").value.trim();
    const actor = document.getElementById("filter-actor").value;
    const since = document.getElementById("filter-since").value;
    const until = document.getElementById("filter-until").value;
    if (action) params.set("action", action);
    if (actor) params.set("actor", actor);
    if (since) params.set("since", new Date(since).toISOString());
    if (until) params.set("until", new Date(until).toISOString());
    const result = await Dash.api("/audit-logs?" + params);
    Dash.fillTable(document.querySelector("#audit-table tbody"), result.items, [
      (e) => Dash.when(e.createdAt),
      (e) => e.action,
      (e) => who(e.actor),
      (e) => (e.targetType ? e.targetType + " " + (e.targetId || "") : ""),
      summary,
      (e) => e.ip || "",
    ]);
    list.show(result, "entries");
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const ctx = await Dash.tenantPage(["owner", "admin"]);
    if (!ctx) return;
    const card = document.querySelector("main .card");
    list = Dash.pager(card, load);
    document.getElementById("filters").addEventListener("submit", (e) => {
      e.preventDefault();
      list.reset();
      Dash.act(card, () => load(1));
    });
    await Dash.act(card, async () => {
      await loadActors();
      await load(1);
    });
    document.body.dataset.ready = "true";
  });
})();
