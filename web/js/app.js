// Entry point: a hash router between the projects page and a project view.
// Every view is rebuilt from the API, so a reload restores exactly what was on screen.

import { api } from "./api.js";
import { mount } from "./dom.js";
import { renderProjects } from "./projects.js";
import { ProjectView } from "./project.js";

const view = document.getElementById("view");
let current = null;

async function route() {
  current?.close();
  current = null;
  const [, page, id, tab] = location.hash.replace(/^#\/?/, "#/").split("/");
  if (page === "projects" && id) {
    current = new ProjectView(view, decodeURIComponent(id), tab ? decodeURIComponent(tab) : null);
    await current.open();
  } else {
    await renderProjects(view);
  }
  view.focus({ preventScroll: true });
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

window.addEventListener("hashchange", route);
window.addEventListener("error", (event) => console.warn("unhandled:", event.message));
showModel();
route().catch((error) => mount(view, `Could not load: ${error.message}`));
