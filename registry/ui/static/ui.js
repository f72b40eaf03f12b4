// Progressive enhancement only: every page works without this file.
"use strict";

function enableCopyButtons(root) {
  if (!navigator.clipboard) return;
  for (const button of root.querySelectorAll("button.copy[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      await navigator.clipboard.writeText(button.dataset.copy);
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
  }
}

function searchAsYouType() {
  const form = document.getElementById("search");
  const input = document.getElementById("q");
  if (!form || !input) return;
  let timer = null;
  let latest = 0;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const asked = ++latest;
      const url = new URL(form.action, location.href);
      url.searchParams.set("q", input.value);
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok || asked !== latest) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const results = page.getElementById("results");
      const current = document.getElementById("results");
      if (results && current) {
        current.replaceWith(document.adoptNode(results));
        history.replaceState(null, "", url);
      }
    }, 250);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  enableCopyButtons(document);
  searchAsYouType();
});
