"use strict";
(function () {
  const TOTALS = ["messages", "sent", "failed", "cancelled", "pending"];

  // The period and filters of the form as the API's query (a day's "until" counts that whole day).
  function query() {
    const form = document.getElementById("report-filters");
    const params = new URLSearchParams({ interval: form.elements.namedItem("interval").value });
    const from = form.elements.namedItem("from").value;
    const until = form.elements.namedItem("until").value;
    if (from) params.set("from", new Date(from + "T00:00").toISOString());
    if (until) {
      const end = new Date(until + "T00:00");
      end.setDate(end.getDate() + 1);
      params.set("until", end.toISOString());
    }
    ["campaignId", "telegramAccountId"].forEach((name) => {
      const value = form.elements.namedItem(name).value;
      if (value) params.set(name, value);
    });
    return params;
  }

  function rate(figures) {
    return figures.deliveryRate === null ? "" : Math.round(figures.deliveryRate * 1000) / 10 + "%";
  }

  function seconds(n) {
    return n === null ? "–" : n.toFixed(1) + " s";
  }

  function failures(figures) {
    return Object.entries(figures.failures).map(([reason, n]) => Dash.label(reason) + ": " + n).join(", ");
  }

  const COLUMNS = [
    (f) => f.messages, (f) => f.sent, (f) => f.failed, (f) => f.pending, rate,
    (f) => (f.latency.count ? seconds(f.latency.averageSeconds) + " / " + seconds(f.latency.maxSeconds) : ""),
    failures,
  ];

  function renderTotals(totals) {
    document.getElementById("report-totals").replaceChildren(...TOTALS.map((key) => {
      const box = document.createElement("div");
      box.className = "count status-" + key;
      box.dataset.figure = key;
      const value = document.createElement("strong");
      value.textContent = totals[key];
      const name = document.createElement("span");
      name.textContent = key;
      box.append(value, name);
      return box;
    }), Object.assign(document.createElement("p"), {
      className: "muted",
      textContent: "Delivery rate " + (rate(totals) || "–") + "; latency " + seconds(totals.latency.averageSeconds) + " on average, " +
        seconds(totals.latency.maxSeconds) + " at most" + (failures(totals) ? "; failures: " + failures(totals) : "") + ".",
    }));
  }

  function stamp(iso, interval) {
    const d = new Date(iso);
    return interval === "hour" ? d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit" }) : d.toLocaleDateString();
  }

  function drawSeries(report) {
    const chart = document.getElementById("report-chart");
    if (!report.series.length) { chart.replaceChildren(); return; }
    const points = report.series.map((b) => ({ x: Date.parse(b.start), sent: b.sent, failed: b.failed }));
    Dash.drawChart(chart, points, {
      top: Math.max(...points.map((p) => Math.max(p.sent, p.failed))),
      start: stamp(report.series[0].start, report.interval),
      label: () => stamp(report.series[report.series.length - 1].start, report.interval),
      legend: report.totals,
    });
  }

  async function load() {
    const root = document.getElementById("report");
    await Dash.act(root, async () => {
      const report = await Dash.api("/reports/delivery?" + query());
      document.getElementById("report-period").textContent = "From " + Dash.when(report.from) + " until " + Dash.when(report.until) +
        ", by the " + report.interval + " in " + report.timezone + ".";
      renderTotals(report.totals);
      drawSeries(report);
      Dash.fillTable(document.querySelector("#campaign-figures tbody"), report.campaigns.map((c) => Object.assign({ id: c.campaignId }, c)),
        [(c) => c.name || "(deleted)", ...COLUMNS]);
      Dash.fillTable(document.querySelector("#bot-figures tbody"), report.bots.map((b) => Object.assign({ id: b.telegramAccountId }, b)),
        [(b) => b.name || "(removed)", ...COLUMNS]);
    });
  }

  // The CSV needs the token in a header: fetched, then saved from a blob under the server's name.
  async function exportCsv() {
    const root = document.getElementById("report");
    await Dash.act(root, async () => {
      const response = await Dash.api("/reports/delivery/csv?" + query(), { raw: true });
      const named = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "");
      const link = document.createElement("a");
      link.href = URL.createObjectURL(await response.blob());
      link.download = named ? named[1] : "delivery-report.csv";
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 1000);
    });
  }

  // A figure of a suggestion: a list of rows as a table, an object as "key: value" pairs, else itself.
  function figure(value) {
    if (Array.isArray(value)) {
      if (!value.length || typeof value[0] !== "object") return value.join(", ");
      const table = document.createElement("table");
      const keys = Object.keys(value[0]);
      const head = table.createTHead().insertRow();
      keys.forEach((key) => { head.appendChild(document.createElement("th")).textContent = Dash.label(key); });
      const body = table.createTBody();
      Dash.fillTable(body, value, keys.map((key) => (row) => text(row[key])));
      return table;
    }
    return text(value);
  }

  function text(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "object") return Object.entries(value).map(([k, v]) => Dash.label(k) + ": " + text(v)).join(", ");
    if (typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value)) return Dash.when(value);
    if (typeof value === "number" && !Number.isInteger(value)) return String(Math.round(value * 1000) / 1000);
    return String(value);
  }

  async function loadSuggestions() {
    const root = document.getElementById("suggestions");
    await Dash.act(root, async () => {
      const items = (await Dash.api("/suggestions")).items;
      document.getElementById("suggestion-list").replaceChildren(...items.map((s) => {
        const box = document.createElement("article");
        box.className = "suggestion";
        box.dataset.kind = s.kind;
        const heading = document.createElement("h3");
        heading.textContent = Dash.label(s.kind);
        const message = document.createElement("p");
        message.textContent = s.message;
        const facts = document.createElement("dl");
        facts.className = "facts";
        Object.entries(s.figures).forEach(([key, value]) => {
          const dt = document.createElement("dt");
          dt.textContent = Dash.label(key);
          const dd = document.createElement("dd");
          const shown = figure(value);
          if (shown instanceof Node) dd.appendChild(shown);
          else dd.textContent = shown;
          facts.append(dt, dd);
        });
        box.append(heading, message, facts);
        return box;
      }));
      document.getElementById("no-suggestions").hidden = items.length > 0;
    });
  }

  async function loadFilters() {
    const form = document.getElementById("report-filters");
    const [campaigns, bots] = await Promise.all([Dash.api("/campaigns?perPage=100"), Dash.api("/telegram-accounts?perPage=100")]);
    form.elements.namedItem("campaignId").append(...campaigns.items.map((c) => new Option(c.name, c.id)));
    form.elements.namedItem("telegramAccountId").append(...bots.items.map((b) => new Option(b.name, b.id)));
    // A campaign is sent by one bot: one filter at a time.
    form.elements.namedItem("campaignId").addEventListener("change", () => { form.elements.namedItem("telegramAccountId").value = ""; });
    form.elements.namedItem("telegramAccountId").addEventListener("change", () => { form.elements.namedItem("campaignId").value = ""; });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const ctx = await Dash.tenantPage(["owner", "admin", "member"]);
    if (!ctx) return;
    const features = ctx.tenant.features;
    document.getElementById("no-reports").hidden = !!(features.customReports || features.aiSuggestions);
    if (features.customReports) {
      document.getElementById("report-filters").addEventListener("submit", (event) => { event.preventDefault(); load(); });
      document.getElementById("export-csv").addEventListener("click", exportCsv);
      await loadFilters();
      await load();
    }
    if (features.aiSuggestions) await loadSuggestions();
    document.body.dataset.ready = "true";
  });
})();
