"use strict";
(function () {
  let ctx = null;

  function actions(bot) {
    const box = document.createElement("span");
    box.className = "row-actions";
    if (!ctx.canWrite) return box;
    box.append(
      Dash.button(bot.active ? "Deactivate" : "Activate", "toggle-bot", () => change(() =>
        Dash.api("/telegram-accounts/" + bot.id, { method: "PATCH", body: { active: !bot.active } }))),
      Dash.button("Delete", "delete-bot danger-button", () => change(async () => {
        if (!window.confirm("Remove " + bot.name + "? Its campaigns keep their history.")) return;
        await Dash.api("/telegram-accounts/" + bot.id, { method: "DELETE" });
      })),
    );
    return box;
  }

  async function change(work) {
    const box = document.getElementById("list-error");
    box.textContent = "";
    try {
      await work();
      await load();
    } catch (error) {
      box.textContent = error.message;
    }
  }

  async function load() {
    const result = await Dash.api("/telegram-accounts?perPage=100");
    Dash.fillTable(document.querySelector("#bots-table tbody"), result.items, [
      (b) => b.name,
      (b) => (b.botUsername ? "@" + b.botUsername : ""),
      (b) => "…" + b.tokenLast4,
      (b) => Dash.badge(b.active ? "active" : "inactive"),
      (b) => Dash.when(b.createdAt),
      actions,
    ]);
    document.getElementById("no-bots").hidden = result.items.length > 0;
  }

  async function connect(event) {
    event.preventDefault();
    const form = event.target;
    const done = document.getElementById("connected");
    done.hidden = true;
    await Dash.act(form, async () => {
      const bot = await Dash.api("/telegram-accounts", {
        method: "POST",
        body: { name: form.elements.namedItem("name").value.trim(), token: form.elements.namedItem("token").value.trim() },
      });
      form.reset();
      done.textContent = "Connected " + (bot.botUsername ? "@" + bot.botUsername : bot.name);
      done.hidden = false;
      await load();
    });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    ctx = await Dash.tenantPage(["owner", "admin"]);
    if (!ctx) return;
    document.getElementById("connect-form").addEventListener("submit", connect);
    await load();
    document.body.dataset.ready = "true";
  });
})();
