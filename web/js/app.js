// Entry point: a hash router between the projects page and a project view.
// Every view is rebuilt from the API, so a reload restores exactly what was on screen.

import { api } from "./api.js";
import { h, mount } from "./dom.js";
import { projectsPage } from "./projects.js";
import { ProjectView } from "./project.js";

const view = document.getElementById("view");
let current = null;
let navigated = false;
let routing = 0;

async function route() {
  const seq = ++routing;
  current?.close();
  current = null;
  view.setAttribute("aria-busy", "true");
  mount(view, h("p.loading", { role: "status" }, "Loading…"));
  const [, page, id, tab, scene] = location.hash.replace(/^#\/?/, "#/").split("/");
  if (page === "projects" && id) {
    const shown = Number.parseInt(scene ?? "", 10);
    current = new ProjectView(view, decodeURIComponent(id), tab ? decodeURIComponent(tab) : null, shown > 0 ? shown : null);
    await current.open();
  } else {
    document.getElementById("crumbs").replaceChildren();
    const page = await projectsPage();
    if (seq !== routing) return; // a later navigation is on screen by now
    mount(view, page);
  }
  view.removeAttribute("aria-busy");
  // a new page is announced from its start; a first load leaves the skip link first in line
  if (navigated) view.focus({ preventScroll: true });
  navigated = true;
}

async function showModel() {
  try {
    const info = await api("/info");
    const model = info.auteur?.models;
    if (model) document.getElementById("model-label").textContent = model;
  } catch {
    // /info is optional decoration
  }
}

function load() {
  route().catch((error) => {
    view.removeAttribute("aria-busy");
    mount(view, h("p.error", { role: "alert" }, `Could not load: ${error.message}`));
  });
}

// The skip link: past the header, pipeline and tabs, to the stage shown (or the page).
document.querySelector("a.skip").addEventListener("click", (event) => {
  event.preventDefault();
  (document.getElementById("artifact") ?? view).focus();
});
window.addEventListener("hashchange", load);
// back from a lost connection: a project view refreshes itself; any other page reloads
window.addEventListener("auteur:online", () => current || load());
window.addEventListener("error", (event) => console.warn("unhandled:", event.message));
showModel();
load();
