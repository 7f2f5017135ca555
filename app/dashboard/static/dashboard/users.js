"use strict";
(function () {
  const ROLES = ["owner", "admin", "member"];
  let ctx = null;
  let list = null;

  // A role picker for a user: owners may give or take any role, admins only admin and member (the
  // API's rule), and an owner's row is an owner's to change. The API keeps the last owner one.
  function roleCell(user) {
    if (ctx.role !== "owner" && user.role === "owner") return user.role;
    const select = document.createElement("select");
    select.className = "role-select";
    select.setAttribute("aria-label", "Role of " + user.email);
    ROLES.filter((r) => ctx.role === "owner" || r !== "owner").forEach((r) => select.add(new Option(r, r, false, r === user.role)));
    select.addEventListener("click", (event) => event.stopPropagation());
    select.addEventListener("change", () => change(user, { role: select.value }));
    return select;
  }

  function activeCell(user) {
    if (user.id === ctx.me.user.id || (user.role === "owner" && ctx.role !== "owner")) return "";
    return Dash.button(user.active ? "Deactivate" : "Reactivate", user.active ? "deactivate-user danger-button" : "activate-user",
      () => change(user, { active: !user.active }));
  }

  async function change(user, body) {
    const box = document.getElementById("list-error");
    box.textContent = "";
    try {
      await Dash.api("/users/" + user.id, { method: "PATCH", body });
    } catch (error) {
      box.textContent = error.message;
    }
    await load(list.page);
  }

  async function load(page) {
    const params = new URLSearchParams({ ...list.at(page || 1), perPage: "20" });
    const role = document.getElementById("filter-role").value;
    const active = document.getElementById("filter-active").value;
    if (role) params.set("role", role);
    if (active) params.set("active", active);
    const result = await Dash.api("/users?" + params);
    Dash.fillTable(document.querySelector("#users-table tbody"), result.items, [
      (u) => u.name,
      (u) => u.email,
      roleCell,
      (u) => Dash.badge(u.active ? "active" : "deactivated"),
      (u) => (u.twoFactorEnabled ? "on" : "off"),
      (u) => Dash.when(u.lastLoginAt) || "never",
      activeCell,
    ]);
    list.show(result, "users");
  }

  async function invite(event) {
    event.preventDefault();
    const form = event.target;
    form.querySelector(".saved").hidden = true;
    await Dash.act(form, async () => {
      const body = {};
      ["name", "email", "password", "role"].forEach((name) => { body[name] = form.elements.namedItem(name).value.trim(); });
      await Dash.api("/users", { method: "POST", body });
      form.reset();
      form.querySelector(".saved").hidden = false;
      await load(list.page);
    });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    ctx = await Dash.tenantPage(["owner", "admin"]);
    if (!ctx) return;
    list = Dash.pager(document.getElementById("list"), load);
    if (!ctx.canWrite) {
      document.getElementById("invite").hidden = true;
      document.getElementById("list-error").textContent = "Only owners and admins see and manage the users.";
      document.body.dataset.ready = "true";
      return;
    }
    const roles = document.querySelector("#invite-form [name=role]");
    if (ctx.role !== "owner") Array.from(roles.options).filter((o) => o.value === "owner").forEach((o) => o.remove());
    document.getElementById("filters").addEventListener("submit", (e) => { e.preventDefault(); list.reset(); load(1); });
    document.getElementById("invite-form").addEventListener("submit", invite);
    await load(1);
    document.body.dataset.ready = "true";
  });
})();
