// The live cluster page: polls the cluster's figures and draws them (no library, no CDN).
"use strict";

(function () {
  const main = document.getElementById("cluster");
  const source = main.dataset.source;
  const intervalMs = Math.max(500, Number(main.dataset.intervalMs) || 2000);
  const keep = 150; // points per line: five minutes at a 2 s heartbeat
  const colours = ["#1565c0", "#2e7d32", "#b26a00", "#8e2424", "#6a1b9a", "#00838f", "#5d4037",
                   "#ad1457", "#455a64", "#9e9d24"];
  const charts = {
    "chart-delivered": (n) => n.delivered_per_s,
    "chart-connections": (n) => n.connections,
    "chart-p99": (n) => n.delivery_p99_ms,
    "chart-canary": (n) => n.canary_lag_ms,
  };
  const history = {}; // chart id -> node -> [{t, v}]
  const colourOf = {};
  const updated = document.getElementById("updated");

  function colour(node) {
    if (!(node in colourOf)) colourOf[node] = colours[Object.keys(colourOf).length % colours.length];
    return colourOf[node];
  }

  // a column: what it shows of a row, and whether that is bad news (shown in red)
  const nodeColumns = [
    [(n) => n.node], [(n) => n.connections], [(n) => n.websocket], [(n) => n.polling],
    [(n) => n.rooms], [(n) => n.accepted_per_s], [(n) => n.delivered_per_s],
    [(n) => n.delivery_p99_ms], [(n) => n.canary_lag_ms],
    [(n) => n.canary_silent_s, (n) => n.canary_deaf],
    [(n) => n.canary_lost, (n) => n.canary_lost > 0],
    [(n) => (n.bus_up ? "up" : "down"), (n) => !n.bus_up],
    [redisState, (n) => redisState(n) !== "up"],
    [(n) => (n.draining ? "draining" : n.cut_off ? "cut off" : "serving"),
     (n) => n.draining || n.cut_off],
    [hookCalls],
  ];

  // the app's join and send hooks, since the node started: "-" when none is set
  function hookCalls(n) {
    if (!n.hooks) return "-";
    return n.hooks.calls + " calls, " + n.hooks.failed + " failed";
  }

  // Redis as one node sees it: unreachable masters, writes acknowledged after fewer replicas than
  // asked (degraded), masters out of memory (full)
  function redisState(n) {
    const redis = n.redis;
    if (!redis) return "-";
    const problems = [];
    if (redis.unreachable && redis.unreachable.length) problems.push("unreachable " + redis.unreachable.join(" "));
    if (redis.degraded && redis.degraded.length) {
      problems.push("degraded " + redis.degraded.map((d) => d.master + " (" + d.in_sync + "/" + d.wanted + ")").join(" "));
    }
    if (redis.full && redis.full.length) problems.push("full " + redis.full.join(" "));
    return problems.length ? problems.join("; ") : "up";
  }
  const redisColumns = [
    [(s) => s.address],
    [(s) => (s.up ? "up" : "down" + (s.error ? " (" + s.error + ")" : "")), (s) => !s.up],
    [(s) => s.role], [(s) => s.version], [(s) => s.clients], [(s) => s.memory],
    [(s) => s.maxmemory], [(s) => s.ops_per_s], [(s) => s.replicas],
    [(s) => s.writes, (s) => s.writes && s.writes !== "ok"],
  ];

  // the webhook sender of each node (null where WEBHOOK_URL is unset); pending rooms and inboxes
  // and the oldest pending event are the cluster's, as each node last read them
  const webhookColumns = [
    [(n) => n.node], [(n) => n.webhooks.delivered], [(n) => n.webhooks.failed],
    [(n) => n.webhooks.batches], [(n) => n.webhooks.retries],
    [(n) => n.webhooks.dropped, (n) => n.webhooks.dropped > 0],
    [(n) => n.webhooks.pending], [(n) => n.webhooks.oldest_pending_s, (n) => n.webhooks.oldest_pending_s > 60],
  ];

  function showWebhooks(nodes) {
    const sending = nodes.filter((n) => n.webhooks);
    const state = document.getElementById("webhooks-state");
    fillTable("#webhooks", sending, webhookColumns, "node");
    if (!sending.length) {
      state.textContent = "off";
      state.className = "muted";
      return;
    }
    const pending = Math.max(...sending.map((n) => n.webhooks.pending));
    const oldest = Math.max(...sending.map((n) => n.webhooks.oldest_pending_s));
    const dropped = sum(sending.map((n) => n.webhooks), "dropped");
    state.textContent = pending + " pending, oldest " + oldest.toFixed(1) + " s, " + dropped + " dropped";
    state.className = dropped > 0 || oldest > 60 ? "bad" : "muted";
  }

  function fillTable(selector, items, columns, key) {
    const body = document.querySelector(selector + " tbody");
    body.replaceChildren();
    for (const item of items) {
      const row = document.createElement("tr");
      if (key) row.dataset.node = item[key];
      for (const [show, bad] of columns) {
        const value = show(item);
        const td = document.createElement("td");
        td.textContent = value === null || value === undefined || value === "" ? "-" : String(value);
        if (bad && bad(item)) td.className = "bad";
        row.appendChild(td);
      }
      body.appendChild(row);
    }
  }

  function sum(nodes, field) {
    return nodes.reduce((total, n) => total + (Number(n[field]) || 0), 0);
  }

  function showTotals(nodes) {
    document.getElementById("total-nodes").textContent = String(nodes.length);
    document.getElementById("total-connections").textContent = String(sum(nodes, "connections"));
    document.getElementById("total-accepted").textContent = sum(nodes, "accepted_per_s").toFixed(1);
    document.getElementById("total-delivered").textContent = sum(nodes, "delivered_per_s").toFixed(1);
  }

  function record(at, nodes) {
    for (const [id, pick] of Object.entries(charts)) {
      const lines = history[id] || (history[id] = {});
      const live = new Set(nodes.map((n) => n.node));
      for (const name of Object.keys(lines)) if (!live.has(name)) delete lines[name];
      for (const n of nodes) {
        const value = pick(n);
        if (value === null || value === undefined || value === "") continue;
        const line = lines[n.node] || (lines[n.node] = []);
        line.push({ t: at, v: Number(value) });
        if (line.length > keep) line.shift();
      }
    }
  }

  function draw(id) {
    const canvas = document.getElementById(id);
    const ctx = canvas.getContext("2d");
    const lines = history[id] || {};
    const w = canvas.width, h = canvas.height, left = 44, bottom = 18, top = 8;
    ctx.clearRect(0, 0, w, h);
    let points = 0, max = 0, first = Infinity, last = -Infinity;
    for (const line of Object.values(lines)) {
      for (const p of line) {
        points += 1;
        max = Math.max(max, p.v);
        first = Math.min(first, p.t);
        last = Math.max(last, p.t);
      }
    }
    canvas.dataset.points = String(points);
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#5b6670";
    ctx.strokeStyle = "#c9ced4";
    ctx.beginPath();
    ctx.moveTo(left, top);
    ctx.lineTo(left, h - bottom);
    ctx.lineTo(w, h - bottom);
    ctx.stroke();
    if (!points) {
      ctx.fillText("no data yet", left + 8, h / 2);
      return;
    }
    const ceiling = max > 0 ? max * 1.1 : 1;
    const span = Math.max(last - first, 1);
    ctx.fillText(ceiling.toFixed(ceiling < 10 ? 1 : 0), 2, top + 8);
    ctx.fillText("0", 2, h - bottom);
    ctx.fillText(Math.round(span / 1000) + " s", w - 40, h - 4);
    let legend = left + 6;
    for (const [name, line] of Object.entries(lines)) {
      ctx.strokeStyle = colour(name);
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      line.forEach((p, i) => {
        const x = left + ((p.t - first) / span) * (w - left - 4);
        const y = h - bottom - (p.v / ceiling) * (h - bottom - top);
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
      ctx.fillStyle = colour(name);
      ctx.fillText(name, legend, top + 10);
      legend += ctx.measureText(name).width + 12;
    }
  }

  async function poll() {
    try {
      const response = await fetch(source, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const data = await response.json();
      const nodes = data.nodes.slice().sort((a, b) => a.node.localeCompare(b.node));
      showTotals(nodes);
      fillTable("#nodes", nodes, nodeColumns, "node");
      fillTable("#redis", data.redis, redisColumns);
      showWebhooks(nodes);
      record(data.at, nodes);
      Object.keys(charts).forEach(draw);
      updated.textContent = "live, " + new Date(data.at).toLocaleTimeString();
      updated.className = "state connected";
      main.dataset.polls = String((Number(main.dataset.polls) || 0) + 1);
    } catch (error) {
      updated.textContent = "not updating: " + error.message;
      updated.className = "state offline";
    }
  }

  poll();
  setInterval(poll, intervalMs);
})();
