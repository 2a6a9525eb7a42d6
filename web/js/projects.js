// The projects page: a card per project saying where it is, and the form to start one
// from a brief or from an existing screenplay ("skip to script").

import { api } from "./api.js";
import { ago, h, label, mount, toast } from "./dom.js";
import { startWorkflow } from "./workflow.js";

const STATUS_WORDS = {
  idle: "done",
  busy: "running",
  interrupted: "awaiting approval",
  error: "error",
};

/** "Scene 3 · Frames" when the latest progress names a shot or scene, else "Frames". */
export function stageLine(stage, progress) {
  if (!stage) return "Not started";
  const shot = progress?.shot ?? "";
  const scene = progress?.scene ?? (/^\d+/.exec(shot) ?? [])[0];
  return scene ? `Scene ${scene} · ${label(stage)}` : label(stage);
}

export async function renderProjects(view) {
  document.getElementById("crumbs").replaceChildren();
  const projects = await api("/projects?limit=100");
  mount(
    view,
    h("section.page", {},
      h("div.page-head", {}, h("h1", {}, "Projects"), newProjectButton()),
      projects.length
        ? h("ul.cards", { "aria-label": "Projects" }, projects.map(card))
        : h("p.empty", {}, "No projects yet. Start one from a brief or from your own screenplay."),
    ),
  );
}

function card(project) {
  const status = project.latest_status;
  return h("li.card", { dataset: { status: status ?? "none" } },
    h("a.card-link", { href: `#/projects/${encodeURIComponent(project.project_id)}` },
      h("h2", {}, project.name),
      h("p.stage-line", {}, stageLine(project.latest_stage, project.latest_progress)),
      h("p.muted", {},
        status ? h("span.chip", { class: `status-${status}` }, STATUS_WORDS[status] ?? status) : null,
        " ", `created ${ago(project.created_at)}`),
      h("p.brief", {}, project.brief),
    ),
  );
}

function newProjectButton() {
  return h("button.primary", { type: "button", onclick: () => openNewProject() }, "New project");
}

/** The form to create a project: a brief, or a screenplay to skip straight to the script. */
export function openNewProject() {
  const dialog = h("dialog.new-project", { "aria-labelledby": "new-title" });
  const name = h("input", { name: "name", required: true, maxlength: 200, autocomplete: "off" });
  const brief = h("textarea", { name: "brief", rows: 5, required: true });
  const script = h("textarea", { name: "script", rows: 8, placeholder: "INT. KITCHEN - DAY\n\nPip hops onto the table…" });
  const skip = h("input", { type: "checkbox", name: "skip", onchange: () => (scriptRow.hidden = !skip.checked) });
  const scriptRow = h("label.field", { hidden: true }, "Your screenplay (Fountain or plain text)", script);
  let config = {};
  const form = h("form", { method: "dialog" },
    h("h2#new-title", {}, "New project"),
    h("label.field", {}, "Name", name),
    h("label.field", {}, "Brief", brief),
    h("label.check", {}, skip, " Skip to script: I have a screenplay"),
    scriptRow,
    h("p.muted", {}, "No LLM configured? ",
      h("button.link", { type: "button", onclick: useSample }, "Use the sample brief"),
      " — the offline sample model knows it."),
    h("div.actions", {},
      h("button", { type: "button", onclick: () => dialog.close() }, "Cancel"),
      h("button.primary", { type: "submit" }, "Create and start")),
  );
  async function useSample() {
    const sample = await api("/sample");
    name.value ||= sample.config?.title ?? "Sample production";
    brief.value = sample.brief;
    config = sample.config ?? {};
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const project = await api("/projects", {
        method: "POST",
        body: { name: name.value.trim(), brief: brief.value.trim(), config },
      });
      await startWorkflow(project, { script: skip.checked ? script.value : undefined });
      dialog.close();
      location.hash = `#/projects/${encodeURIComponent(project.project_id)}`;
    } catch (error) {
      toast(error.message, { error: true });
    } finally {
      submit.disabled = false;
    }
  });
  dialog.append(form);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  name.focus();
}
