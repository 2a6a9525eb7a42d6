// The projects page: a card per project saying where it is, and the form to start one
// with a run of any workflow type that needs nothing approved yet.

import { api } from "./api.js";
import { ago, h, inScene, toast } from "./dom.js";
import { runForm, startRun, workflows } from "./workflow.js";

export const STATUS_WORDS = {
  idle: "done",
  busy: "running",
  interrupted: "awaiting approval",
  error: "error",
};

/** "Scene 3 · Frames" when the latest progress names a shot or scene, else "Frames". */
export function stageLine(stage, progress) {
  if (!stage) return "Not started";
  const shot = progress?.shot ?? "";
  return inScene(progress?.scene ?? (/^\d+/.exec(shot) ?? [])[0], stage);
}

/** The projects page, once its projects are loaded. */
export async function projectsPage() {
  const projects = await api("/projects?limit=100");
  return (
    h("section.page", {},
      h("div.page-head", {}, h("h1", {}, "Projects"), newProjectButton()),
      projects.length
        ? h("ul.cards", { "aria-label": "Projects" }, projects.map(card))
        : h("p.empty", {}, "No projects yet. Start one from a brief or from your own screenplay."),
    )
  );
}

function card(project) {
  const status = project.latest_status;
  return h("li.card", { dataset: { status: status ?? "none" } },
    h("a.card-link", { href: `#/projects/${encodeURIComponent(project.project_id)}` },
      h("h2", {}, project.name),
      h("p.stage-line", {}, status === "idle" && !project.latest_stage ? "Finished" : stageLine(project.latest_stage, { ...project.latest_progress, scene: project.latest_scene })),
      h("p.muted", {},
        status ? h("span.chip", { class: `status-${status}` }, STATUS_WORDS[status] ?? status) : null,
        " ", `created ${ago(project.created_at)}`),
      h("p.brief", {}, project.brief),
    ),
  );
}

function newProjectButton() {
  return h("button.primary", {
    type: "button",
    onclick: () => openNewProject().catch((error) => toast(error.message, { error: true })),
  }, "New project");
}

/**
 * The form to create a project: its name and the first run — a workflow type (those that
 * start from nothing the project could not have yet) with that workflow's own input form,
 * whose brief and configuration become the project's.
 */
export async function openNewProject() {
  const assistants = (await workflows()).filter((a) => !(a.metadata?.takes ?? []).length);
  const dialog = h("dialog.new-project", { "aria-labelledby": "new-title" });
  const name = h("input", { name: "name", required: true, maxlength: 200, autocomplete: "off" });
  const run = runForm(assistants);
  const form = h("form", { method: "dialog" },
    h("h2#new-title", {}, "New project"),
    h("label.field", {}, "Name", name),
    run.element,
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
    run.set({ brief: sample.brief, config: sample.config ?? {} });
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const input = run.read();
      const project = await api("/projects", {
        method: "POST",
        body: { name: name.value.trim(), brief: input.brief ?? "", config: input.config ?? {} },
      });
      await startRun(project, run.assistant(), input);
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
