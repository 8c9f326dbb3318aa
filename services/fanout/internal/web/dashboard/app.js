// Playpulse dashboard. Event data is only ever written with textContent:
// nothing from the stream is parsed as HTML.
"use strict";
(function () {
  const MAX_ROWS = 100;
  const $ = (id) => document.getElementById(id);
  const status = $("status");
  const tbody = $("tail");
  let skippedTotal = 0;
  let pending = [];      // tail events waiting for the next animation frame
  let lastSnapshot = null;
  let scheduled = false;
  let backoff = 500;

  // Rows are created once and recycled: the table never holds more than MAX_ROWS.
  const rows = [];
  function makeRow() {
    const tr = document.createElement("tr");
    const cells = [];
    for (let i = 0; i < 8; i++) { const td = document.createElement("td"); tr.appendChild(td); cells.push(td); }
    const badge = document.createElement("span");
    cells[0].appendChild(badge);
    return { tr, cells, badge };
  }
  function fill(row, item) {
    const e = item.event;
    row.badge.className = "type t-" + e.event_type;
    row.badge.textContent = e.event_type;
    row.cells[1].textContent = e.movie_id;
    row.cells[2].textContent = e.user_id;
    row.cells[3].textContent = Number(e.position_seconds).toFixed(1) + "s";
    row.cells[4].textContent = e.device;
    row.cells[5].textContent = e.bitrate_kbps ? e.bitrate_kbps + " kbps" : "–";
    row.cells[6].textContent = e.stream;
    row.cells[7].textContent = e.ts.slice(11, 23);
  }

  function render() {
    scheduled = false;
    if (lastSnapshot) {
      $("kpi-rate").textContent = lastSnapshot.events_per_second.toFixed(1);
      $("kpi-total").textContent = String(lastSnapshot.events_total);
      $("kpi-streams").textContent = String((lastSnapshot.streams || []).length);
    }
    $("kpi-skipped").textContent = String(skippedTotal);
    const batch = pending.length > MAX_ROWS ? pending.slice(pending.length - MAX_ROWS) : pending;
    pending = [];
    for (const item of batch) {
      let row;
      if (rows.length < MAX_ROWS) { row = makeRow(); rows.push(row); } else { row = rows.shift(); rows.push(row); }
      fill(row, item);
      tbody.insertBefore(row.tr, tbody.firstChild);
    }
  }
  function schedule() { if (!scheduled) { scheduled = true; requestAnimationFrame(render); } }

  function setStatus(state, text) { status.dataset.state = state; status.textContent = text; }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + location.host + "/ws");
    ws.onopen = () => { backoff = 500; setStatus("live", "live"); };
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch { return; }
      if (msg.type === "snapshot") { lastSnapshot = msg; schedule(); }
      else if (msg.type === "tail") {
        skippedTotal += msg.skipped || 0;
        for (const it of msg.events) pending.push(it);
        if (pending.length > MAX_ROWS) pending.splice(0, pending.length - MAX_ROWS);
        schedule();
      }
    };
    ws.onclose = () => {
      const wait = Math.min(backoff, 15000) * (0.5 + Math.random());
      backoff = Math.min(backoff * 2, 15000);
      setStatus("reconnecting", "reconnecting in " + Math.ceil(wait / 1000) + "s");
      setTimeout(connect, wait);
    };
  }
  connect();
})();
