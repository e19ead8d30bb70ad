// notifyq ops page: refresh the server-rendered panel in place. No framework, no build step.
"use strict";
(function () {
  const panel = document.getElementById("panel");
  const live = document.getElementById("live");
  if (!panel) return;
  const every = Math.max(1, Number(panel.dataset.every) || 2) * 1000;
  let timer = null;

  function say(text, bad) {
    if (!live) return;
    live.textContent = text;
    live.className = bad ? "live stale" : "live";
  }

  async function refresh() {
    try {
      const resp = await fetch(panel.dataset.src, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
        cache: "no-store",
      });
      if (resp.status === 401 || resp.redirected) {
        window.location.assign("/ops/signin?next=" + encodeURIComponent(window.location.pathname));
        return;
      }
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      panel.innerHTML = await resp.text();
      say("live", false);
    } catch (err) {
      say("not refreshed: " + err.message, true);
    } finally {
      window.clearTimeout(timer);
      if (!document.hidden) timer = window.setTimeout(refresh, every);
    }
  }

  // a hidden tab stops refreshing; shown again, it refreshes at once
  document.addEventListener("visibilitychange", function () {
    window.clearTimeout(timer);
    if (!document.hidden) refresh();
  });
  say("live", false);
  timer = window.setTimeout(refresh, every);
})();
