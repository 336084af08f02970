/* Behaviours of the pages other than review, kept out of the HTML: the Content-Security-Policy runs no inline
   script, no on* attribute and no javascript: link. A confirmation before a destructive post, a Back link, and
   the round and arms pages following their running jobs. */
(function () {
  "use strict";

  const POLL_MS = 2000;

  // <form data-confirm="Question?">: ask before posting.
  document.addEventListener("submit", (event) => {
    const question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);

  // <a data-back href="fallback">: the previous page when there is one.
  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest("a[data-back]");
    if (link && window.history.length > 1) { event.preventDefault(); window.history.back(); }
  });

  function poll(url, update) {
    const step = async () => {
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" } });
        if (update(await response.json()) === false) return; // the page reloads
      } catch (error) { /* the next poll retries */ }
      window.setTimeout(step, POLL_MS);
    };
    window.setTimeout(step, POLL_MS);
  }

  // A round's page: the stage and its figures while the round runs; a reload when its state changes.
  function followRound(live) {
    const finals = ["done", "failed", "cancelled", "draft", "reviewing"];
    if (finals.includes(live.dataset.state)) return;
    poll(live.dataset.url, (s) => {
      if (s.state !== live.dataset.state) { window.location.reload(); return false; }
      document.getElementById("stage").textContent = s.stage || "";
      const p = s.progress, bits = [];
      for (const k of ["done", "total", "selected", "trees", "trees_done", "nodes", "pairs", "step", "max_steps", "loss"]) {
        if (p[k] !== undefined && p[k] !== null) bits.push(k.replace("_", " ") + " " + (k === "loss" ? Number(p[k]).toFixed(4) : p[k]));
      }
      document.getElementById("stage-figures").textContent = bits.join(" · ");
      const bar = document.querySelector("#train-bar > div");
      if (bar && p.max_steps) bar.style.width = (100 * p.step / p.max_steps) + "%";
      return true;
    });
  }

  // A round's arms page: each run's status and progress; a reload when one finishes or all have stopped.
  function followArms(live) {
    if (live.dataset.running !== "1") return;
    poll(live.dataset.url, (s) => {
      for (const run of s.runs) {
        const row = document.querySelector(`#arm-runs tr[data-run="${run.id}"]`);
        if (!row) { window.location.reload(); return false; }
        const status = row.querySelector("[data-status]");
        if (status.textContent !== run.status && run.status === "done") { window.location.reload(); return false; }
        status.textContent = run.status;
        const p = run.progress || {}, done = p.max_steps ? `${p.step}/${p.max_steps}` : (p.total ? `${p.done}/${p.total}` : "");
        row.querySelector("[data-progress]").textContent = run.status === "failed" ? run.error
          : [p.stage || "", done, p.loss !== undefined ? "loss " + Number(p.loss).toFixed(4) : ""].join(" ").trim();
      }
      if (!s.running) { window.location.reload(); return false; }
      return true;
    });
  }

  const round = document.getElementById("live");
  if (round) followRound(round);
  const arms = document.getElementById("arms-live");
  if (arms) followArms(arms);
})();
