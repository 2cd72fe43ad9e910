// Lockgate dashboard: a little progressive enhancement, nothing the pages need to
// work. Text goes into the page with textContent only (never innerHTML).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // A select that shows another table or connection submits its form.
  for (const el of document.querySelectorAll("[data-autosubmit]")) {
    el.addEventListener("change", () => {
      if (el.name === "conn") {
        const t = el.form.querySelector("select[name=table]");
        if (t) t.value = "";
      }
      el.form.submit();
    });
  }
  const job = document.getElementById("job");
  if (job && job.dataset.status === "running") followJob(job);
  const runs = document.querySelector("[data-live-runs]");
  if (runs) pollRuns(runs);
  const upgrades = document.querySelector("[data-live-upgrades]");
  if (upgrades) pollUpgrades(upgrades);
});

// A job's page follows its progress over server-sent events and reloads when the
// job ends, to show the result.
function followJob(el) {
  const id = Number(el.dataset.job);
  const bar = document.getElementById("job-progress");
  const count = document.getElementById("job-count");
  const message = document.getElementById("job-message");
  const status = document.getElementById("job-status");
  const events = new EventSource("/api/events");
  const show = (j) => {
    if (j.total != null) { bar.max = j.total; bar.value = j.done; } else { bar.removeAttribute("value"); }
    count.textContent = j.total != null ? `${j.done} / ${j.total}` : String(j.done);
    message.textContent = j.message || "";
    status.textContent = j.status;
    status.className = "status " + j.status;
    if (j.status !== "running") { events.close(); location.reload(); }
  };
  events.addEventListener("job", (e) => {
    const j = JSON.parse(e.data);
    if (j.id === id) show(j);
  });
  // The job may have ended before the stream opened.
  events.addEventListener("open", () => {
    fetch(`/api/jobs/${id}`, { headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((j) => { if (j && j.status !== "running") show(j); })
      .catch(() => {});
  });
}

// The Overview's runs: reloaded every second while the page is visible.
function pollRuns(table) {
  const body = table.querySelector("tbody");
  const cell = (text, cls) => {
    const td = document.createElement("td");
    if (cls) {
      const s = document.createElement("span");
      s.className = cls;
      s.textContent = text;
      td.appendChild(s);
    } else {
      td.textContent = text;
    }
    return td;
  };
  // The next poll is set only once this one has answered, so a slow database
  // never piles requests up.
  const again = () => setTimeout(tick, 1000);
  const tick = () => {
    if (document.hidden) return again();
    fetch("/api/runs?limit=20", { headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((data) => {
        if (!data || !data.runs.length) return;
        body.replaceChildren(...data.runs.map((r) => {
          const tr = document.createElement("tr");
          const p = document.createElement("td");
          if (r.progress_total != null) {
            const bar = document.createElement("progress");
            bar.max = r.progress_total;
            bar.value = r.progress_done;
            p.append(bar, ` ${r.progress_done} / ${r.progress_total}`);
          } else {
            p.textContent = String(r.progress_done);
          }
          const status = cell(r.status, "status " + r.status);
          if (r.status === "abandoned" && r.error) status.firstChild.title = r.error;
          tr.append(cell(r.connection), cell(String(r.id)), cell(r.kind), cell(r.job),
            status, p, cell(r.started_at), cell(r.holder));
          return tr;
        }));
      })
      .catch(() => {})
      .finally(again);
  };
  again();
}

// Seconds as the server's page writes them: "45 s", "3 min 20 s", "2 h 5 min".
function durationText(seconds) {
  const s = Math.round(Math.max(0, seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// Which buttons a state allows (as upgrades.rs's `allowed` says).
function upgradeAllows(u, action) {
  switch (action) {
    case "pause": return ["pending", "running", "not started"].includes(u.state);
    case "cancel": return ["pending", "running", "paused", "not started"].includes(u.state);
    case "resume": return ["paused", "cancelled"].includes(u.state);
    case "retry": return u.quarantined > 0;
    case "cleanup": return u.cleanup != null;
    default: return false;
  }
}

// The Upgrades page: each card's state, progress, rate, ETA, quarantined rows and
// buttons follow the ledger, read every 1.5 s while the page is visible.
function pollUpgrades(root) {
  const show = (card, u) => {
    const field = (name) => card.querySelector(`[data-field="${name}"]`);
    const state = field("state");
    if (state.textContent !== u.state) {
      state.textContent = u.state;
      state.className = "status " + u.state.replace(/ /g, "-");
    }
    const bar = field("bar");
    const count = field("count");
    if (u.remaining != null) {
      const total = u.rows_done + u.remaining;
      bar.hidden = false;
      bar.max = Math.max(total, 1);
      bar.value = u.rows_done;
      count.textContent = total > 0
        ? `${u.rows_done} of ${total} rows (${Math.floor((u.rows_done * 100) / total)}%)`
        : "no rows in its scope";
    } else {
      bar.hidden = true;
      count.textContent = `table ${u.table} has no applied_upgrades column yet: add it with ` +
        `\`lockgate upgrade init --table ${u.table}\``;
    }
    field("rate").textContent = u.rows_per_second != null ? `${u.rows_per_second.toFixed(1)} rows/s` : "–";
    field("eta").textContent = u.eta_seconds != null ? durationText(u.eta_seconds)
      : u.remaining === 0 ? "none: no row lacks it" : "–";
    field("quarantined").textContent = String(u.quarantined);
    const rows = field("quarantine");
    rows.replaceChildren(...u.quarantine.map((q) => {
      const tr = document.createElement("tr");
      const key = document.createElement("code");
      key.textContent = q.key;
      const cells = [key, q.error, String(q.attempts), q.at].map((v) => {
        const td = document.createElement("td");
        if (typeof v === "string") td.textContent = v; else td.appendChild(v);
        return td;
      });
      cells[1].className = "error";
      tr.append(...cells);
      return tr;
    }));
    rows.closest(".quarantine").hidden = u.quarantine.length === 0;
    for (const b of card.querySelectorAll("button[data-action]")) b.disabled = !upgradeAllows(u, b.dataset.action);
  };
  // The next poll is set only once this one has answered, so a slow database
  // never piles requests up.
  const again = () => setTimeout(tick, 3000);
  const tick = () => {
    if (document.hidden) return again();
    fetch("/api/upgrades", { headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((data) => {
        if (!data) return;
        for (const u of data.upgrades) {
          const card = root.querySelector(`[data-upgrade="${CSS.escape(u.upgrade)}"]`);
          if (card) show(card, u);
        }
      })
      .catch(() => {})
      .finally(again);
  };
  again();
}
