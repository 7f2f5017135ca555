"use strict";
(function () {
  const POLL_MS = 1000; // while sending
  const SCHEDULED_POLL_MS = 30000; // while waiting for its time
  const LIVE = ["scheduled", "sending"];
  const COUNTED = ["held", "queued", "sending", "sent", "failed", "cancelled"];
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
    {
      name: "abTest",
      fill(form, campaign) {
        const test = campaign ? campaign.abTest : null;
        form.elements.namedItem("abEnabled").checked = !!test;
        const variants = test ? test.variants : [{ name: "A", message: { text: "" } }, { name: "B", message: { text: "" } }];
        document.getElementById("variants").replaceChildren(...variants.map(variantRow));
        form.elements.namedItem("testPercent").value = test ? test.testPercent : 20;
        form.elements.namedItem("winnerRule").value = test && test.winnerRule ? test.winnerRule.metric : "";
        form.elements.namedItem("afterMinutes").value = test && test.winnerRule ? test.winnerRule.afterMinutes : 60;
        showTestFields();
      },
      read(form, body) {
        if (!form.elements.namedItem("abEnabled").checked) {
          body.abTest = null;
          return;
        }
        const rule = form.elements.namedItem("winnerRule").value;
        body.abTest = {
          variants: [...document.querySelectorAll("#variants .variant")].map((row) => ({
            name: row.querySelector("[name=variantName]").value.trim(),
            message: {
              text: row.querySelector("[name=variantText]").value,
              parseMode: row.querySelector("[name=variantParseMode]").value || null,
            },
          })),
          testPercent: Number(form.elements.namedItem("testPercent").value),
          winnerRule: rule ? { metric: rule, afterMinutes: Number(form.elements.namedItem("afterMinutes").value) } : null,
        };
        // The variants are the message: the campaign's own may be left empty.
        if (!body.message.text && !body.message.mediaId) delete body.message;
      },
    },
    {
      name: "languages",
      fill(form, campaign) {
        const translations = campaign && campaign.message ? campaign.message.translations || {} : {};
        document.getElementById("translations").replaceChildren(...Object.entries(translations).map(([language, t]) => translationRow(language, t.text)));
        const languages = campaign ? campaign.targetLanguages || {} : {};
        form.elements.namedItem("targetLanguages").value = Object.entries(languages).map(([chat, tag]) => chat + " " + tag).join("\n");
      },
      read(form, body) {
        const translations = {};
        document.querySelectorAll("#translations .translation").forEach((row) => {
          const language = row.querySelector("[name=translationLanguage]").value.trim();
          if (language) translations[language] = { text: row.querySelector("[name=translationText]").value };
        });
        if (body.message) body.message.translations = translations;
        // "chat tag" per line; a line without a tag sends an empty one, which the API names.
        body.targetLanguages = Object.fromEntries(form.elements.namedItem("targetLanguages").value.split("\n")
          .map((line) => line.trim().split(/\s+/)).filter(([chat]) => chat).map(([chat, tag]) => [chat, tag || ""]));
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

  // A row of the form from its <template>, whose Remove button takes it away.
  function formRow(templateId) {
    const row = document.getElementById(templateId).content.firstElementChild.cloneNode(true);
    row.querySelector(".remove-row").addEventListener("click", () => { row.remove(); countVariants(); });
    return row;
  }

  function variantRow(variant) {
    const row = formRow("variant-template");
    row.querySelector("[name=variantName]").value = variant.name;
    row.querySelector("[name=variantText]").value = variant.message.text || "";
    row.querySelector("[name=variantParseMode]").value = variant.message.parseMode || "";
    return row;
  }

  function translationRow(language, text) {
    const row = formRow("translation-template");
    row.querySelector("[name=translationLanguage]").value = language;
    row.querySelector("[name=translationText]").value = text;
    return row;
  }

  // 2 to 5 variants: no Remove at 2, no Add at 5.
  function countVariants() {
    const rows = document.querySelectorAll("#variants .variant");
    rows.forEach((row) => { row.querySelector(".remove-row").hidden = rows.length <= 2; });
    document.getElementById("add-variant").hidden = rows.length >= 5;
  }

  function showTestFields() {
    const form = document.getElementById("campaign-form");
    document.getElementById("ab-fields").hidden = !form.elements.namedItem("abEnabled").checked;
    document.getElementById("after-minutes-label").hidden = !form.elements.namedItem("winnerRule").value;
    countVariants();
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
    const params = new URLSearchParams({ ...list.at(page || 1), perPage: "20" });
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
      ...fact("Message", shown.message ? shown.message.text : "the winning variant's"),
      ...testFacts(),
      ...Object.entries(shown.message && shown.message.translations || {}).flatMap(([language, t]) => fact("In " + language, t.text)),
      ...fact("Scheduled", shown.scheduledAt ? Dash.when(shown.scheduledAt) : "no: sent when you press Send"),
      ...fact("Completed", Dash.when(shown.completedAt) || "not yet"),
    );
  }

  function testFacts() {
    const test = shown.abTest;
    if (!test) return [];
    const rule = test.winnerRule ? "the best delivery rate after " + test.winnerRule.afterMinutes + " minutes" : "picked by an owner or admin";
    return [
      ...fact("A/B test", test.testPercent + "% of the targets, split between " + test.variants.map((v) => v.name).join(", ") + "; winner: " + rule),
      ...test.variants.flatMap((v) => fact("Variant " + v.name, v.message.text)),
    ];
  }

  const GROUP_COLUMNS = [
    (g) => g.targets, (g) => g.queued, (g) => g.sent, (g) => g.failed, (g) => g.cancelled,
    (g) => (g.deliveryRate === null ? "" : Math.round(g.deliveryRate * 100) + "%"),
  ];

  // The figures per variant and per language, the held-out targets, and the winner or its choice.
  function renderGroups(stats) {
    const test = shown.abTest;
    document.getElementById("variant-stats").hidden = !stats.variants;
    if (stats.variants && test) {
      const choosing = ctx.canWrite && !test.winner && test.testPercent < 100 && !["draft", "cancelled"].includes(shown.status);
      Dash.fillTable(document.querySelector("#variants-table tbody"), stats.variants.map((v) => Object.assign({ id: v.name }, v)), [
        (v) => (v.name === test.winner ? v.name + " (winner)" : v.name),
        ...GROUP_COLUMNS,
        (v) => {
          const box = document.createElement("span");
          box.className = "row-actions";
          if (choosing) box.append(Dash.button("Choose winner", "choose-winner", () => chooseWinner(v.name)));
          return box;
        },
      ]);
      const held = stats.holdout;
      document.getElementById("holdout-note").textContent = held && held.targets
        ? "Held out of the test: " + held.targets + " targets, " + held.held + " waiting for the winner, " + held.sent + " sent, " + held.failed + " failed."
        : "Every target is in the test.";
      document.getElementById("winner-note").textContent = test.winner
        ? "Winner: " + test.winner + " (chosen " + Dash.when(test.winnerChosenAt) + ")."
        : test.winnerRule ? "The best delivery rate wins " + test.winnerRule.afterMinutes + " minutes after the send started." : "No winner chosen yet.";
    }
    document.getElementById("language-stats").hidden = !stats.languages;
    if (stats.languages) {
      Dash.fillTable(document.querySelector("#languages-table tbody"), stats.languages.map((l) => Object.assign({ id: l.language }, l)), [
        (l) => l.language,
        ...GROUP_COLUMNS,
      ]);
    }
  }

  async function chooseWinner(name) {
    await detailAction(async () => {
      shown = await Dash.api("/campaigns/" + shown.id + "/winner", { method: "POST", body: { variant: name } });
      renderFacts();
      stopPolling();
      await refreshStats();
    });
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
    renderGroups(stats);
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
    // Held messages wait for an A/B test's winner: only a test has them.
    const counts = COUNTED.filter((status) => status !== "held" || shown.abTest).map((status) => {
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

  // Sent and failed messages (cumulative) against the time since the page started watching, scaled to
  // the campaign's targets, drawn again at every poll.
  function drawChart(targets) {
    Dash.drawChart(document.getElementById("stats-chart"), samples.map((s) => ({ x: s.at, sent: s.sent, failed: s.failed })), {
      top: targets,
      minSpan: 1000,
      label: (span) => Math.round(span / 1000) + " s",
    });
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
    const form = document.getElementById("campaign-form");
    form.addEventListener("submit", save);
    document.querySelector("#campaign-form [name=targets]").addEventListener("input", countTargets);
    document.getElementById("media-upload").addEventListener("change", upload);
    form.elements.namedItem("abEnabled").addEventListener("change", showTestFields);
    form.elements.namedItem("winnerRule").addEventListener("change", showTestFields);
    document.getElementById("add-variant").addEventListener("click", () => {
      const names = "ABCDE";
      const taken = new Set([...document.querySelectorAll("#variants [name=variantName]")].map((input) => input.value));
      document.getElementById("variants").append(variantRow({ name: [...names].find((n) => !taken.has(n)) || "", message: { text: "" } }));
      countVariants();
    });
    document.getElementById("add-translation").addEventListener("click", () => document.getElementById("translations").append(translationRow("", "")));
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
