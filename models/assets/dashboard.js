// The eddy dashboard: polls /v1/status every second, keeps the last few minutes client-side and
// draws them on <canvas>. Everything shown comes from the stream and is untrusted: text goes in
// through textContent only (never innerHTML), and the page's CSP forbids inline script anyway.
"use strict";

(function () {
  const POLL_MS = 1000;
  const HISTORY_SECONDS = 300;
  const MIN_SPAN_SECONDS = 30;
  const COLORS = ["#1f6feb", "#d9730d", "#2da44e", "#8250df"];

  // Series are arrays of [uptime_seconds, value]; times come from the server's clock.
  const history = {
    throughput: [],
    deadLetters: [],
    lag: [],
    metrics: new Map(), // chart title -> Map(series name -> points)
  };
  let previous = null;
  let formSignature = "";

  const $ = (id) => document.getElementById(id);

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function integer(n) {
    return n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US");
  }

  function decimal(n) {
    if (n === null || n === undefined || !Number.isFinite(n)) return "–";
    if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString("en-US");
    return String(Number(n.toPrecision(4)));
  }

  function duration(seconds) {
    const s = Math.floor(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + (s % 60) + "s";
  }

  function push(series, t, value) {
    if (value === null || value === undefined || !Number.isFinite(value)) return;
    series.push([t, value]);
    while (series.length && series[0][0] < t - HISTORY_SECONDS) series.shift();
  }

  function replaceRows(tbody, rows) {
    const fresh = rows.map((cells) => {
      const tr = element("tr");
      for (const [text, className] of cells) tr.appendChild(element("td", className, text));
      return tr;
    });
    tbody.replaceChildren(...fresh);
  }

  // --- charts -------------------------------------------------------------------------------

  // Draws named series (Map name -> points) on a canvas sized to its CSS box.
  function draw(canvas, seriesByName, now) {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(canvas.clientWidth, 100);
    const height = Math.max(canvas.clientHeight, 60);
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const all = [];
    for (const points of seriesByName.values()) for (const p of points) all.push(p[1]);
    canvas.dataset.points = String(all.length);
    const left = 56, right = 8, top = 8, bottom = 18;
    const plotW = width - left - right, plotH = height - top - bottom;
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#66707a";
    ctx.strokeStyle = "#d9dee3";
    ctx.lineWidth = 1;
    if (!all.length) {
      ctx.fillText("waiting for data", left, top + plotH / 2);
      return;
    }
    let lo = Math.min(...all), hi = Math.max(...all);
    if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
    if (lo > 0 && lo < hi * 0.5) lo = 0;
    // The time axis grows with the history (at least MIN_SPAN_SECONDS, at most the whole history).
    let oldest = now;
    for (const points of seriesByName.values()) if (points.length) oldest = Math.min(oldest, points[0][0]);
    const span = Math.min(HISTORY_SECONDS, Math.max(MIN_SPAN_SECONDS, now - oldest));
    const t0 = now - span;
    const x = (t) => left + ((t - t0) / span) * plotW;
    const y = (v) => top + (1 - (v - lo) / (hi - lo)) * plotH;

    for (let i = 0; i <= 2; i++) {
      const v = lo + ((hi - lo) * i) / 2;
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, yy); ctx.lineTo(width - right, yy); ctx.stroke();
      ctx.textAlign = "right";
      ctx.fillText(decimal(v), left - 4, yy + 4);
    }
    ctx.textAlign = "left";
    ctx.fillText("−" + duration(span), left, height - 4);
    ctx.textAlign = "right";
    ctx.fillText("now", width - right, height - 4);

    let index = 0;
    for (const points of seriesByName.values()) {
      ctx.strokeStyle = COLORS[index % COLORS.length];
      ctx.lineWidth = 1.8;
      ctx.beginPath();
      points.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
      ctx.stroke();
      if (points.length === 1) {
        ctx.fillStyle = ctx.strokeStyle;
        ctx.fillRect(x(points[0][0]) - 2, y(points[0][1]) - 2, 4, 4);
      }
      index++;
    }
  }

  function legend(names) {
    const box = element("div", "legend");
    names.forEach((name, i) => {
      const item = element("span");
      item.appendChild(element("span", "swatch s" + (i % COLORS.length)));
      item.appendChild(document.createTextNode(name));
      box.appendChild(item);
    });
    return box;
  }

  // One small chart per metric; created the first time a metric appears.
  function metricChart(title, seriesNames) {
    let figure = null;
    for (const f of $("metric-charts").children) if (f.dataset.title === title) figure = f;
    if (!figure) {
      figure = element("figure", "chart");
      figure.dataset.title = title;
      figure.appendChild(element("figcaption", null, title));
      const canvas = element("canvas");
      canvas.dataset.points = "0";
      canvas.dataset.metric = title;
      figure.appendChild(canvas);
      figure.appendChild(legend(seriesNames));
      $("metric-charts").appendChild(figure);
    }
    return figure.querySelector("canvas");
  }

  // --- rendering ----------------------------------------------------------------------------

  function update(status) {
    const now = status.uptime_seconds;
    if (previous && now < previous.uptime_seconds) {
      // The server restarted: its history is not ours any more.
      history.throughput = []; history.deadLetters = []; history.lag = []; history.metrics.clear();
      previous = null;
    }

    // Throughput from the change in events read between two polls (the server's gauge only moves
    // while records arrive); the gauge seeds the first point.
    let rate = status.throughput_events_per_second;
    if (previous && status.events_read !== null && previous.events_read !== null) {
      const dt = now - previous.uptime_seconds;
      if (dt > 0) rate = Math.max(0, (status.events_read - previous.events_read) / dt);
    }
    if (status.events_read !== null) push(history.throughput, now, rate);
    push(history.deadLetters, now, status.dead_letters.total);

    $("uptime").textContent = duration(now);
    $("events-read").textContent = integer(status.events_read);
    $("events-learned").textContent = integer(status.events_learned);
    $("throughput").textContent = decimal(rate);
    $("dead-letters-total").textContent = integer(status.dead_letters.total);
    $("checkpoints").textContent = integer(status.checkpoints_written);

    // Lag, when the source reports it.
    const hasLag = status.lag.length > 0;
    $("lag-tile").hidden = !hasLag;
    $("lag-chart").hidden = !hasLag;
    $("lag-section").hidden = !hasLag;
    if (hasLag) {
      const total = status.lag.reduce((sum, l) => sum + l.lag, 0);
      push(history.lag, now, total);
      $("lag-total").textContent = integer(total);
      replaceRows($("lag"), status.lag.map((l) => [[l.topic], [l.partition, "num"], [integer(l.lag), "num"]]));
    }

    // Progressive metrics: the pipeline's (by scope) or, when nothing trains here, each model's.
    const points = [];
    if (status.events_read !== null) {
      for (const m of status.metrics) points.push([m.metric, m.scope, m.value]);
    } else {
      for (const model of status.models) {
        for (const [name, value] of Object.entries(model.metrics)) points.push([model.name + ": " + name, "current", value]);
      }
    }
    // Sorted, so charts and their colours keep one order whatever order the registry lists them in.
    points.sort((a, b) => (a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : a[0] < b[0] ? -1 : 1));
    for (const [title, series, value] of points) {
      if (!history.metrics.has(title)) history.metrics.set(title, new Map());
      const bySeries = history.metrics.get(title);
      if (!bySeries.has(series)) bySeries.set(series, []);
      push(bySeries.get(series), now, value);
    }
    $("metrics-empty").hidden = history.metrics.size > 0;

    renderDeadLetters(status.dead_letters);
    renderModels(status.models);
    renderForm(status.models);

    draw($("chart-throughput"), new Map([["events/s", history.throughput]]), now);
    draw($("chart-dead-letters"), new Map([["total", history.deadLetters]]), now);
    if (hasLag) draw($("chart-lag"), new Map([["lag", history.lag]]), now);
    for (const [title, bySeries] of history.metrics) {
      draw(metricChart(title, [...bySeries.keys()]), bySeries, now);
    }
    previous = status;
  }

  function renderDeadLetters(dead) {
    replaceRows($("dead-letter-reasons"),
      Object.entries(dead.by_reason).map(([reason, count]) => [[reason], [integer(count), "num"]]));
    $("dead-letters-empty").hidden = dead.latest.length > 0;
    const items = dead.latest.map((letter) => {
      const li = element("li");
      li.appendChild(element("span", "kind", letter.kind));
      if (letter.field !== null) {
        li.appendChild(document.createTextNode(" in "));
        li.appendChild(element("code", "field", letter.field));
      }
      li.appendChild(element("div", "reason", letter.reason));
      const when = new Date(letter.at_unix_ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
      li.appendChild(element("div", "origin", letter.origin + " · " + when));
      return li;
    });
    $("dead-letters-latest").replaceChildren(...items);
  }

  function renderModels(models) {
    replaceRows($("models"), models.map((m) => [
      [m.name], [integer(m.version), "num"], [integer(m.events_learned), "num"], [m.task],
      [decimal(m.snapshot_age_seconds), "num"],
    ]));
  }

  // --- prediction form ----------------------------------------------------------------------

  function renderForm(models) {
    const select = $("predict-model");
    const signature = JSON.stringify(models.map((m) => [m.name, m.fields]));
    if (signature === formSignature) return;
    formSignature = signature;
    const chosen = select.value;
    select.replaceChildren(...models.map((m) => {
      const option = element("option", null, m.name);
      option.value = m.name;
      return option;
    }));
    if (models.some((m) => m.name === chosen)) select.value = chosen;
    renderFields(models);
    select.onchange = () => renderFields(models);
  }

  function renderFields(models) {
    const model = models.find((m) => m.name === $("predict-model").value);
    const inputs = (model ? model.fields : []).map((field) => {
      const label = element("label", "field");
      const title = element("span");
      title.appendChild(element("span", "field-name", field.name));
      title.appendChild(document.createTextNode(" (" + field.type + ")"));
      label.appendChild(title);
      const input = element("input");
      input.type = field.type === "number" ? "number" : "text";
      if (input.type === "number") input.step = "any";
      input.dataset.field = field.name;
      input.dataset.type = field.type;
      label.appendChild(input);
      return label;
    });
    $("predict-fields").replaceChildren(...inputs);
  }

  async function predict(event) {
    event.preventDefault();
    const answer = $("predict-answer");
    const name = $("predict-model").value;
    if (!name) return;
    // No prototype: a field may be called "__proto__" and must still be sent as one.
    const instance = Object.create(null);
    for (const input of $("predict-fields").querySelectorAll("input")) {
      if (input.value === "") continue;
      const number = Number(input.value);
      instance[input.dataset.field] =
        input.dataset.type === "number" && Number.isFinite(number) ? number : input.value;
    }
    const headers = { "content-type": "application/json" };
    const token = $("predict-token").value.trim();
    if (token) headers.authorization = "Bearer " + token;
    answer.className = "answer";
    answer.textContent = "…";
    try {
      const response = await fetch("/v1/models/" + encodeURIComponent(name) + "/predict", {
        method: "POST",
        headers,
        body: JSON.stringify({ instances: [instance] }),
      });
      const body = await response.text();
      let shown = body;
      try { shown = JSON.stringify(JSON.parse(body), null, 2); } catch (_) { /* not JSON */ }
      answer.className = response.ok ? "answer" : "answer bad";
      answer.textContent = response.status + "\n" + shown;
    } catch (error) {
      answer.className = "answer bad";
      answer.textContent = "request failed: " + error;
    }
  }

  // --- polling ------------------------------------------------------------------------------

  async function poll() {
    const connection = $("connection");
    try {
      const response = await fetch("/v1/status", { cache: "no-store", headers: { accept: "application/json" } });
      if (!response.ok) throw new Error("status " + response.status);
      update(await response.json());
      connection.textContent = "live";
      connection.className = "connection ok";
    } catch (error) {
      connection.textContent = "disconnected (" + error.message + "), retrying";
      connection.className = "connection bad";
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  $("predict-form").addEventListener("submit", predict);
  poll();
})();
