"use strict";
(function () {
  const POLL_MS = 1000; // while sending
  const SCHEDULED_POLL_MS = 30000; // while waiting for its time
  const LIVE = ["scheduled", "sending"];
  const COUNTED = ["queued", "sending", "sent", "failed", "cancelled"];
  // The sections of the campaign form (fieldsets with data-section), in order. Each fills its fields
  // from a campaign and adds what they hold to the body sent. A fieldset that also carries
  // data-feature shows only when the tenant's plan has that feature, and a hidden section sends
  // nothing: a plan feature's part of a campaign (variants, languages) is one fieldset and one entry.
  const SECTIONS = [
    {
      name: "details",
      fill(form, campaign) {
        form.elements.namedItem("name").value = campaign ? campaign.name : "";
        form.elements.namedItem("description").value = campaign ? campaign.description || "" : "";
        form.elements.namedItem("telegramAccountId").value = campaign ? campaign.telegramAccountId || "" : "";
        form.elements.namedItem("targets").value = campaign ? campaign.targets.join("\n") : "";
        form.elements.namedItem("scheduledAt").value = campaign && campaign.scheduledAt ? localInput(campaign.scheduledAt) : "";
      },
      read(form, body) {
        body.name = form.elements.namedItem("name").value.trim();
        body.description = form.elements.namedItem("description").value.trim() || null;
        body.telegramAccountId = form.elements.namedItem("telegramAccountId").value || null;
        body.targets = splitTargets(form.elements.namedItem("targets").value);
        const at = form.elements.namedItem("scheduledAt").value;
        body.scheduledAt = at ? new Date(at).toISOString() : null;
      },
    },
    {
      name: "message",
      fill(form, campaign) {
        const message = campaign ? campaign.message : {};
        form.elements.namedItem("text").value = message.text || "";
        form.elements.namedItem("parseMode").value = message.parseMode || "";
        form.elements.namedItem("mediaId").value = message.mediaId || "";
      },
      read(form, body) {
        body.message = {
          text: form.elements.namedItem("text").value,
          parseMode: form.elements.namedItem("parseMode").value || null,
          mediaId: form.elements.namedItem("mediaId").value || null,
        };
      },
    },
  ];

  let ctx = null;
  let list = null;
  let bots = [];
  let editing = null; // the campaign being edited, null for a new one
  let shown = null; // the campaign in the detail card
  let samples = []; // [{at, sent, failed}] of the shown campaign, one per poll
  let timer = null;

  // Targets pasted one per line or separated by commas (or spaces), blanks dropped.
  function splitTargets(text) {
    return text.split(/[\s,;]+/).map((t) => t.trim()).filter(Boolean);
  }

  function localInput(iso) {
    const d = new Date(iso);
    const pad = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  function botName(id) {
    const bot = bots.find((b) => b.id === id);
    if (!bot) return id ? "(removed)" : "";
    return bot.botUsername ? bot.name + " (@" + bot.botUsername + ")" : bot.name;
  }

  async function loadBots() {
    bots = (await Dash.api("/telegram-accounts?perPage=100")).items;
    const select = document.querySelector("#campaign-form [name=telegramAccountId]");
    // Inactive bots stay listed (a draft may name one) but cannot be chosen.
    select.replaceChildren(new Option("Choose a bot", ""), ...bots.map((b) => {
      const option = new Option(botName(b.id) + (b.active ? "" : " (inactive)"), b.id);
      option.disabled = !b.active;
      return option;
    }));
    document.getElementById("no-bots").hidden = bots.length > 0;
  }

  async function loadMedia() {
    const media = (await Dash.api("/media?perPage=100")).items;
    const select = document.querySelector("#campaign-form [name=mediaId]");
    select.replaceChildren(new Option("None", ""), ...media.map((m) => new Option(m.filename + " (" + Dash.bytes(m.size) + ")", m.id)));
  }

  async function load(page) {
    const params = new URLSearchParams({ page: String(page || 1), perPage: "20" });
    const status = document.getElementById("filter-status").value;
    if (status) params.set("status", status);
    const result = await Dash.api("/campaigns?" + params);
    Dash.fillTable(document.querySelector("#campaigns-table tbody"), result.items, [
      (c) => c.name,
      (c) => Dash.badge(c.status),
      (c) => c.targets.length,
      (c) => botName(c.telegramAccountId),
      (c) => Dash.when(c.createdAt),
    ], (c) => show(c.id));
    document.getElementById("no-campaigns").hidden = result.total > 0;
    list.show(result, "campaigns");
  }

  function openEditor(campaign) {
    editing = campaign;
    const form = document.getElementById("campaign-form");
    Dash.clearFieldErrors(form);
    form.querySelector(".error").textContent = "";
    SECTIONS.forEach((section) => section.fill(form, campaign));
    countTargets();
    document.getElementById("editor-title").textContent = campaign ? "Edit " + campaign.name : "New campaign";
    document.getElementById("editor").hidden = false;
    document.getElementById("detail").hidden = true;
    stopPolling();
    form.elements.namedItem("name").focus();
  }

  function countTargets() {
    const n = splitTargets(document.querySelector("#campaign-form [name=targets]").value).length;
    document.getElementById("target-count").textContent = n === 1 ? "1 target" : n + " targets";
  }

  async function save(event) {
    event.preventDefault();
    const form = event.target;
    const body = {};
    SECTIONS.forEach((section) => {
      if (!form.querySelector('[data-section="' + section.name + '"]').hidden) section.read(form, body);
    });
    await Dash.act(form, async () => {
      const saved = editing
        ? await Dash.api("/campaigns/" + editing.id, { method: "PATCH", body })
        : await Dash.api("/campaigns", { method: "POST", body });
      document.getElementById("editor").hidden = true;
      await load(list.page);
      await show(saved.id);
    });
  }

  async function upload(event) {
    const input = event.target;
    if (!input.files.length) return;
    const form = document.getElementById("campaign-form");
    await Dash.act(form, async () => {
      const data = new FormData();
      data.append("file", input.files[0]);
      const media = await Dash.api("/media", { method: "POST", body: data });
      await loadMedia();
      form.elements.namedItem("mediaId").value = media.id;
    });
    input.value = "";
  }

  function fact(term, value) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    return [dt, dd];
  }

  async function show(id) {
    stopPolling();
    shown = await Dash.api("/campaigns/" + id);
    samples = [];
    document.querySelectorAll("#campaigns-table tbody tr").forEach((r) => r.classList.toggle("selected", r.dataset.id === id));
    document.getElementById("detail").hidden = false;
    document.getElementById("editor").hidden = true;
    document.getElementById("detail-error").textContent = "";
    renderFacts();
    renderStatus();
    await refreshStats();
  }

  function renderFacts() {
    document.getElementById("detail-title").textContent = shown.name;
    document.getElementById("detail-facts").replaceChildren(
      ...fact("Bot", botName(shown.telegramAccountId) || "none chosen"),
      ...fact("Targets", shown.targets.length + ": " + shown.targets.slice(0, 5).join(", ") + (shown.targets.length > 5 ? ", …" : "")),
      ...fact("Message", shown.message.text),
      ...fact("Scheduled", shown.scheduledAt ? Dash.when(shown.scheduledAt) : "no: sent when you press Send"),
      ...fact("Completed", Dash.when(shown.completedAt) || "not yet"),
    );
  }

  function renderStatus() {
    document.getElementById("detail-status").replaceChildren(Dash.badge(shown.status));
    const draft = shown.status === "draft";
    document.getElementById("edit-campaign").hidden = !draft;
    document.getElementById("send-campaign").hidden = !draft;
    document.getElementById("cancel-campaign").hidden = !["draft", ...LIVE].includes(shown.status);
    document.getElementById("cancel-campaign").textContent = draft ? "Cancel" : "Cancel sending";
    document.getElementById("delete-campaign").hidden = LIVE.includes(shown.status);
  }

  async function refreshStats() {
    const campaignId = shown.id;
    let stats;
    try {
      stats = await Dash.api("/campaigns/" + campaignId + "/stats");
    } catch (error) {
      document.getElementById("stats-note").textContent = error.message;
      document.body.dataset.polling = "false";
      return;
    }
    if (!shown || shown.id !== campaignId) return;
    samples.push({ at: Date.now(), sent: stats.messages.sent, failed: stats.messages.failed });
    renderCounts(stats);
    drawChart(stats.targets);
    if (stats.status !== shown.status) {
      shown = await Dash.api("/campaigns/" + campaignId);
      renderFacts();
      renderStatus();
      await load(list.page);
    }
    const live = LIVE.includes(stats.status);
    document.body.dataset.polling = String(live);
    const notes = {
      sending: "Sending: refreshed every second.",
      scheduled: "Waiting for its time: looked at every 30 seconds.",
    };
    document.getElementById("stats-note").textContent = notes[stats.status] ||
      (stats.deliveryRate === null ? "" : "Delivery rate: " + Math.round(stats.deliveryRate * 100) + "% of the messages that finished were sent.");
    if (live) timer = setTimeout(refreshStats, stats.status === "sending" ? POLL_MS : SCHEDULED_POLL_MS);
  }

  function stopPolling() {
    if (timer) clearTimeout(timer);
    timer = null;
    document.body.dataset.polling = "false";
  }

  function renderCounts(stats) {
    const counts = COUNTED.map((status) => {
      const n = stats.messages[status] || 0;
      const box = document.createElement("div");
      box.className = "count status-" + status;
      box.dataset.status = status;
      const value = document.createElement("strong");
      value.textContent = n;
      const name = document.createElement("span");
      name.textContent = status;
      box.append(value, name);
      return box;
    });
    document.getElementById("stats-counts").replaceChildren(...counts);
  }

  const SVG = "http://www.w3.org/2000/svg";

  function svg(name, attributes, text) {
    const el = document.createElementNS(SVG, name);
    Object.entries(attributes).forEach(([k, v]) => el.setAttribute(k, String(v)));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // Sent and failed messages (cumulative) against the time since the page started watching, scaled to
  // the campaign's targets: one polyline per series, drawn again at every poll.
  function drawChart(targets) {
    const chart = document.getElementById("stats-chart");
    const [W, H, L, B, T, R] = [600, 220, 44, 28, 12, 12];
    const top = Math.max(1, targets);
    const start = samples[0].at;
    const span = Math.max(1000, samples[samples.length - 1].at - start);
    const x = (at) => L + ((at - start) / span) * (W - L - R);
    const y = (n) => H - B - (n / top) * (H - B - T);
    const children = [
      svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }),
      svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }),
      svg("text", { x: L - 6, y: y(top) + 4, "text-anchor": "end", class: "tick" }, top),
      svg("text", { x: L - 6, y: H - B + 4, "text-anchor": "end", class: "tick" }, 0),
      svg("text", { x: W - R, y: H - 8, "text-anchor": "end", class: "tick" }, Math.round(span / 1000) + " s"),
    ];
    [["sent", "series-sent"], ["failed", "series-failed"]].forEach(([key, cls], i) => {
      const points = samples.map((s) => x(s.at).toFixed(1) + "," + y(s[key]).toFixed(1)).join(" ");
      children.push(svg("polyline", { points: samples.length > 1 ? points : points + " " + (W - R) + "," + y(samples[0][key]).toFixed(1), class: cls, "data-series": key }));
      children.push(svg("text", { x: L + 10 + i * 90, y: T + 12, class: "legend " + cls }, key + ": " + samples[samples.length - 1][key]));
    });
    chart.replaceChildren(...children);
  }

  function quotaMessage(error) {
    const d = error.details;
    if (error.code !== "limit_exceeded" || !d.resource) return error.message;
    const left = d.limit === null ? null : Math.max(0, d.limit - d.used);
    return "Not sent: " + Dash.label(d.resource).toLowerCase() + " would go over the plan's limit. This campaign needs " +
      Dash.amount(d.resource, d.requested) + ", and " + Dash.amount(d.resource, left) + " of " +
      Dash.amount(d.resource, d.limit) + " are left this period. Nothing was queued.";
  }

  async function detailAction(work) {
    const box = document.getElementById("detail-error");
    box.textContent = "";
    try {
      await work();
    } catch (error) {
      box.textContent = quotaMessage(error);
      box.dataset.code = error.code;
      if (error.details && error.details.telegramAccountId) box.textContent += " " + error.details.telegramAccountId.join(" ");
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    ctx = await Dash.tenantPage(["owner", "admin"]);
    if (!ctx) return;
    list = Dash.pager(document.getElementById("list"), load);
    document.getElementById("filters").addEventListener("submit", (e) => { e.preventDefault(); list.reset(); load(1); });
    document.getElementById("new-campaign").addEventListener("click", () => openEditor(null));
    document.getElementById("close-editor").addEventListener("click", () => { document.getElementById("editor").hidden = true; });
    document.getElementById("campaign-form").addEventListener("submit", save);
    document.querySelector("#campaign-form [name=targets]").addEventListener("input", countTargets);
    document.getElementById("media-upload").addEventListener("change", upload);
    document.getElementById("edit-campaign").addEventListener("click", () => openEditor(shown));
    document.getElementById("send-campaign").addEventListener("click", () => detailAction(async () => {
      shown = await Dash.api("/campaigns/" + shown.id + "/send", { method: "POST" });
      renderStatus();
      await load(list.page);
      samples = [];
      await refreshStats();
    }));
    document.getElementById("cancel-campaign").addEventListener("click", () => detailAction(async () => {
      await Dash.api("/campaigns/" + shown.id, { method: "PATCH", body: { status: "cancelled" } });
      await load(list.page);
      await show(shown.id);
    }));
    document.getElementById("delete-campaign").addEventListener("click", () => detailAction(async () => {
      if (!window.confirm("Delete " + shown.name + " and its messages?")) return;
      await Dash.api("/campaigns/" + shown.id, { method: "DELETE" });
      stopPolling();
      shown = null;
      document.getElementById("detail").hidden = true;
      await load(list.page);
    }));
    await loadBots();
    if (ctx.canWrite) await loadMedia();
    await load(1);
    document.body.dataset.ready = "true";
  });
})();
