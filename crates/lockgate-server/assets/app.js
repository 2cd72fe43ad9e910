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
