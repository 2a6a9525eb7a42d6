// Workflow types and their runs. What workflows exist, what each makes and what a run of it
// takes as input all come from the server's registry (/assistants/search and each
// assistant's input schema): a workflow type dropped into graphs/ shows up here unchanged.

import { api } from "./api.js";
import { openConfig } from "./config.js";
import { h, label } from "./dom.js";

// The only stream mode the client reads (progress); values come from the thread's state.
export const STREAM_MODES = ["custom"];
// A string without a (short) length limit is long text: a brief, a screenplay, notes.
const SHORT_TEXT = 200;
// Object-valued inputs with an editor of their own, by model name (from the registry).
const EDITORS = { ProjectConfig: configEditor };

let loading = null;

/**
 * Every production workflow type (an assistant) with its `input_schema`, in the server's
 * order. Chat assistants (the director) are for chat clients: they take messages, not a brief.
 */
export function workflows() {
  loading ??= (async () => {
    const found = await api("/assistants/search", { method: "POST", body: { limit: 100 } });
    const assistants = found.filter((a) => !a.metadata?.chat);
    const schemas = await Promise.all(assistants.map((a) => api(`/assistants/${a.assistant_id}/schemas`)));
    return assistants.map((assistant, i) => ({ ...assistant, input_schema: schemas[i].input_schema }));
  })().catch((error) => {
    loading = null;
    throw error;
  });
  return loading;
}

/** Artifact key → its model name, over every workflow type. */
export function artifactTypes(assistants) {
  const types = new Map();
  for (const assistant of assistants) {
    for (const { key, type } of assistant.metadata?.artifacts ?? []) types.set(key, type);
  }
  return types;
}

/**
 * The artifact keys of the given workflow types in production order: each workflow's own
 * order, merged (a key another workflow made earlier keeps its place).
 */
export function artifactOrder(assistants) {
  const order = [];
  for (const assistant of assistants) {
    let at = 0;
    for (const { key } of assistant.metadata?.artifacts ?? []) {
      const found = order.indexOf(key);
      if (found >= 0) at = found + 1;
      else order.splice(at++, 0, key);
    }
  }
  return order;
}

/** Start a run of `assistant` on a new thread of the project. */
export async function startRun(project, assistant, input) {
  const thread = await api("/threads", {
    method: "POST",
    body: { metadata: { project_id: project.project_id } },
  });
  return api(`/threads/${thread.thread_id}/runs`, {
    method: "POST",
    body: {
      assistant_id: assistant.assistant_id,
      input: { ...input, project_id: project.project_id },
      stream_mode: STREAM_MODES,
    },
  });
}

/** The workflow that makes the most: the default choice of a new production. */
function fullest(assistants) {
  return assistants.reduce((best, a) => ((a.metadata?.artifacts ?? []).length > (best.metadata?.artifacts ?? []).length ? a : best));
}

/**
 * A workflow picker and the chosen workflow's input form.
 * @param {object[]} assistants - from `workflows()`
 * @param {object} options
 * @param {object} [options.prefill] - input values to start from (the project's brief, config)
 * @param {Set<string>} [options.have] - artifact keys the project has (what `takes` needs)
 * @returns {{element: HTMLElement, assistant: () => object, read: () => object, set: (values: object) => void}}
 */
export function runForm(assistants, { prefill = {}, have = null } = {}) {
  const usable = (a) => !have || (a.metadata?.takes ?? []).every((key) => have.has(key));
  let chosen = fullest(assistants.filter(usable).length ? assistants.filter(usable) : assistants);
  let values = { ...prefill };
  let fields = [];
  const select = h("select#run-workflow", { name: "workflow" },
    assistants.map((a) => h("option", { value: a.graph_id, selected: a === chosen, disabled: !usable(a) },
      usable(a) ? label(a.name) : `${label(a.name)} (needs ${(a.metadata.takes ?? []).map((k) => label(k).toLowerCase()).join(", ")})`)));
  const about = h("p.muted.workflow-about");
  const body = h("div.run-fields");
  const build = () => {
    about.textContent = chosen.description ?? "";
    fields = inputFields(chosen.input_schema, values);
    body.replaceChildren(...fields.map((f) => f.element));
  };
  select.addEventListener("change", () => {
    values = { ...values, ...readFields(fields) };
    chosen = assistants.find((a) => a.graph_id === select.value);
    build();
  });
  build();
  return {
    element: h("div.run-form", {}, h("label.field", {}, "Workflow", select), about, body),
    assistant: () => chosen,
    read: () => readFields(fields, { omitEmpty: true }),
    set: (more) => {
      values = { ...values, ...readFields(fields), ...more };
      build();
    },
  };
}

/** The new-run dialog of a project: pick a workflow type, fill in its input, start it. */
export async function openNewRun(project, { have, onStarted }) {
  const assistants = await workflows();
  const form = runForm(assistants, { prefill: { brief: project.brief, config: project.config ?? {} }, have });
  const dialog = h("dialog.new-run", { "aria-labelledby": "new-run-title" });
  const error = h("p.error", { role: "alert" });
  const element = h("form", { method: "dialog" },
    h("h2#new-run-title", {}, "New run"),
    form.element,
    error,
    h("div.actions", {},
      h("button", { type: "button", onclick: () => dialog.close() }, "Cancel"),
      h("button.primary", { type: "submit" }, "Start run")));
  element.addEventListener("submit", async (event) => {
    event.preventDefault();
    const submit = element.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const run = await startRun(project, form.assistant(), form.read());
      dialog.close();
      await onStarted?.(run);
    } catch (problem) {
      error.textContent = problem.message;
    } finally {
      submit.disabled = false;
    }
  });
  dialog.append(element);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

// --- a form from a JSON schema ---------------------------------------------------------

/** `{anyOf: [X, {type: "null"}]}` → X; a `$ref` → its definition (named by its title). */
function resolve(schema, root) {
  let resolved = schema;
  if (resolved.anyOf) resolved = resolved.anyOf.find((s) => s.type !== "null") ?? resolved.anyOf[0];
  if (resolved.$ref) {
    const name = resolved.$ref.split("/").pop();
    resolved = { title: name, ...root.$defs?.[name] };
  }
  return { ...resolved, description: schema.description ?? resolved.description, default: schema.default ?? resolved.default };
}

function inputFields(schema, values) {
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties ?? {})
    // the project is the one the dialog was opened on
    .filter(([name]) => name !== "project_id")
    .map(([name, property]) => field(name, resolve(property, schema), values[name], required.has(name), property.title ?? label(name)));
}

function readFields(fields, { omitEmpty = false } = {}) {
  const input = {};
  for (const f of fields) {
    const value = f.read();
    if (omitEmpty && !f.required && (value === undefined || value === "" || value === null)) continue;
    if (value !== undefined) input[f.name] = value;
  }
  return input;
}

function field(name, schema, value, required, title) {
  const editor = EDITORS[schema.title];
  if (editor) return editor(name, schema, value, required, title);
  const initial = value ?? schema.default;
  const hint = schema.description ? h("span.hint.muted", {}, schema.description) : null;
  const row = (control, read) => ({
    name,
    required,
    element: h("label.field", { dataset: { input: name } }, title, control, hint),
    read,
  });
  if (schema.enum) {
    const select = h("select", { name }, schema.enum.map((v) => h("option", { value: v, selected: v === initial }, v)));
    return row(select, () => select.value);
  }
  if (schema.type === "integer" || schema.type === "number") {
    const input = h("input", {
      name, type: "number", required,
      step: schema.type === "integer" ? 1 : "any",
      min: schema.minimum, max: schema.maximum,
      value: initial ?? "",
    });
    return row(input, () => (input.value === "" ? undefined : Number(input.value)));
  }
  if (schema.type === "boolean") {
    const input = h("input", { name, type: "checkbox", checked: Boolean(initial) });
    return row(input, () => input.checked);
  }
  if (schema.type === "string" && !required && schema.default == null && (!schema.maxLength || schema.maxLength > SHORT_TEXT)) {
    return optionalText(name, schema, initial, title);
  }
  if (schema.type === "string") {
    const long = !schema.maxLength || schema.maxLength > SHORT_TEXT;
    const control = long
      ? h("textarea", { name, rows: required ? 5 : 4, required }, initial ?? "")
      : h("input", { name, required, maxlength: schema.maxLength, value: initial ?? "", autocomplete: "off" });
    return row(control, () => control.value.trim());
  }
  if (schema.type === "array" && schema.items?.type === "string") {
    const text = h("textarea", { name, rows: 3, placeholder: "One per line" }, (initial ?? []).join("\n"));
    return row(text, () => text.value.split("\n").map((s) => s.trim()).filter(Boolean));
  }
  // anything else: JSON
  const text = h("textarea.json", { name, rows: 4, spellcheck: false }, initial === undefined ? "" : JSON.stringify(initial, null, 2));
  return row(text, () => {
    if (!text.value.trim()) return undefined;
    try {
      return JSON.parse(text.value);
    } catch (problem) {
      throw new Error(`${title}: not valid JSON (${problem.message})`);
    }
  });
}

/**
 * An optional long text (your own screenplay): a tick box saying what it is for, and the text
 * only once ticked — unticked, it is not sent at all.
 */
function optionalText(name, schema, value, title) {
  const text = h("textarea", { name, rows: 5, "aria-label": title, hidden: !value }, value ?? "");
  const use = h("input", { type: "checkbox", name: `use_${name}`, checked: Boolean(value) });
  use.addEventListener("change", () => {
    text.hidden = !use.checked;
    if (use.checked) text.focus();
  });
  return {
    name,
    required: false,
    element: h("div.field.optional-text", { dataset: { input: name } },
      h("label.check", {}, use, schema.description ?? title), text),
    read: () => (use.checked ? text.value.trim() : undefined),
  };
}

/** The project configuration: a summary and the configuration modal to change it. */
function configEditor(name, schema, value, required, title) {
  let config = value ?? {};
  const summary = h("span.config-line.muted");
  const show = () => {
    const format = config.format ?? {};
    summary.textContent = [config.title, format.aspect_ratio, format.target_duration_s && `${format.target_duration_s} s`, config.visual_style]
      .filter(Boolean).join(" · ") || "Defaults";
  };
  show();
  const edit = h("button", {
    type: "button",
    onclick: () => openConfig({
      title,
      saved: config,
      proposed: {},
      accept: async (edited) => {
        config = edited;
        show();
      },
    }),
  }, "Edit configuration…");
  return {
    name,
    required,
    element: h("div.field", { dataset: { input: name } }, h("span", {}, title), h("div.config-row", {}, summary, edit)),
    read: () => config,
  };
}
