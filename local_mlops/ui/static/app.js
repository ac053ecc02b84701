// Live pages: while <main data-live="1">, re-render the page body every 2 s without a reload.
// Approval buttons: a JSON POST, then the page body is refreshed to show the new state; an
// approval starts a deployment, whose progress is polled until it ends.
"use strict";
(function () {
  const POLL_MS = 2000;
  function fragmentUrl() {
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    return url;
  }
  async function refresh() {
    const main = document.getElementById("main");
    const response = await fetch(fragmentUrl(), { headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const html = await response.text();
    const holder = document.createElement("div");
    holder.innerHTML = html;
    const fresh = holder.querySelector("main");
    if (fresh) {
      main.innerHTML = fresh.innerHTML;
      main.dataset.live = fresh.dataset.live;
      bind();
    }
  }
  function poll() {
    const main = document.getElementById("main");
    if (main && main.dataset.live === "1") {
      refresh().catch(() => {}).finally(() => setTimeout(poll, POLL_MS));
    } else {
      setTimeout(poll, POLL_MS * 2);
    }
  }
  function bind() {
    const box = document.getElementById("approval");
    if (!box || box.dataset.bound) return;
    box.dataset.bound = "1";
    box.addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button) return;
      const action = button.dataset.action;
      const reason = (document.getElementById("reject-reason") || {}).value || "";
      const result = box.querySelector(".result");
      result.textContent = action === "approve" ? "Approving…" : "Rejecting…";
      box.querySelectorAll("button").forEach((b) => (b.disabled = true));
      const response = await fetch(`/api/models/${box.dataset.version}/${action}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ reason }),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        result.textContent = `${body.error || "failed"}${body.fix ? " — " + body.fix : ""}`;
        box.querySelectorAll("button").forEach((b) => (b.disabled = false));
        return;
      }
      result.textContent = body.message || `Now ${body.ModelApprovalStatus}.`;
      await refresh();
      if (body.deployment) startFollow(body.deployment.id);
    });
    const section = document.getElementById("deployment");
    if (section && section.dataset.id && section.dataset.state === "Running") startFollow(section.dataset.id);
  }
  let followed = null;
  function startFollow(id) {
    if (followed === id) return;
    followed = id;
    follow(id);
  }
  // A deployment started by Approve: poll its progress until it ends, then show the endpoint
  // or the error with its fix.
  async function follow(id) {
    const section = document.getElementById("deployment");
    if (!section) return;
    section.hidden = false;
    section.dataset.id = id;
    const state = section.querySelector(".deploy-state");
    const log = section.querySelector(".deploy-log");
    const problem = section.querySelector(".deploy-error");
    const response = await fetch(`/api/deployments/${id}`).catch(() => null);
    const job = response && response.ok ? await response.json() : null;
    if (!job) {
      setTimeout(() => follow(id), POLL_MS);
      return;
    }
    section.dataset.state = job.state;
    log.replaceChildren(
      ...job.lines.map((line) => {
        const item = document.createElement("li");
        const time = document.createElement("time");
        time.textContent = line.time.slice(11, 19);
        item.append(time, " " + line.text);
        return item;
      })
    );
    if (job.state === "Running") {
      state.textContent = `Deploying version ${job.version} to ${job.endpoint}…`;
      setTimeout(() => follow(id), 1000);
    } else if (job.state === "Succeeded") {
      const view = job.endpoint_view || {};
      state.innerHTML = "";
      const link = document.createElement("a");
      link.href = `/endpoints/${encodeURIComponent(view.name || job.endpoint)}`;
      link.textContent = `${view.name || job.endpoint} serves version ${view.version}`;
      state.append("Deployed: ", link, ".");
    } else {
      state.textContent = `The deployment of version ${job.version} failed.`;
      problem.hidden = false;
      problem.textContent = job.error + (job.fix ? ` — fix: ${job.fix}` : "");
    }
  }
  document.addEventListener("DOMContentLoaded", () => {
    bind();
    setTimeout(poll, POLL_MS);
  });
})();
