// Live pages: while <main data-live="1">, re-render the page body every 2 s without a reload.
// Approval buttons: a JSON POST, then the page body is refreshed to show the new state.
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
    });
  }
  document.addEventListener("DOMContentLoaded", () => {
    bind();
    setTimeout(poll, POLL_MS);
  });
})();
