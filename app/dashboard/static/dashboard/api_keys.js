"use strict";
(function () {
  let list = null;

  function revokeButton(key) {
    return Dash.button("Revoke", "revoke-key danger-button", async () => {
      if (!window.confirm("Revoke " + key.name + "? Programs using it stop working at once.")) return;
      const box = document.getElementById("list-error");
      box.textContent = "";
      try {
        await Dash.api("/api-keys/" + key.id, { method: "DELETE" });
      } catch (error) {
        box.textContent = error.message;
      }
      await load(list.page);
    });
  }

  async function load(page) {
    const result = await Dash.api("/api-keys?" + new URLSearchParams({ ...list.at(page || 1), perPage: "20" }));
    Dash.fillTable(document.querySelector("#keys-table tbody"), result.items, [
      (k) => k.name,
      (k) => k.prefix,
      (k) => k.role,
      (k) => Dash.when(k.createdAt),
      (k) => Dash.when(k.lastUsedAt) || "never",
      revokeButton,
    ]);
    list.show(result, "keys");
  }

  async function create(event) {
    event.preventDefault();
    const form = event.target;
    await Dash.act(form, async () => {
      const created = await Dash.api("/api-keys", {
        method: "POST",
        body: { name: form.elements.namedItem("name").value.trim(), role: form.elements.namedItem("role").value },
      });
      form.reset();
      document.getElementById("new-key-value").value = created.key;
      document.getElementById("copied").hidden = true;
      document.getElementById("new-key").hidden = false;
      await load(1);
    });
  }

  // The key leaves the page once it is dismissed: it is never shown again.
  function forget() {
    document.getElementById("new-key-value").value = "";
    document.getElementById("new-key").hidden = true;
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const ctx = await Dash.tenantPage(["owner", "admin"]);
    if (!ctx) return;
    list = Dash.pager(document, load);
    document.getElementById("no-feature").hidden = !!ctx.tenant.features.apiAccess;
    document.getElementById("key-form").addEventListener("submit", create);
    document.getElementById("copy-key").addEventListener("click", async () => {
      const input = document.getElementById("new-key-value");
      await Dash.copy(input.value, input);
      document.getElementById("copied").hidden = false;
    });
    document.getElementById("hide-key").addEventListener("click", forget);
    try {
      await load(1);
    } catch (error) {
      document.getElementById("list-error").textContent = error.message;
    }
    document.body.dataset.ready = "true";
  });
})();
