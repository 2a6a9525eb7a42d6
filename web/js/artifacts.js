// Artifacts by their type (the model name the registry gives each artifact key): what a
// gate proposes (with its actions) or what was approved. A new workflow's artifacts of a
// known type render the same way; an unknown type is shown as JSON, and so is an artifact
// that is missing or too partial to render (with what is wrong).

import { api, showFile } from "./api.js";
import { openConfig } from "./config.js";
import { h, inScene, label, toast } from "./dom.js";
import { ASSET_KINDS, EDITORS, diffView } from "./editors.js";
import { openInpaint } from "./inpaint.js";
import { openCompare, openLarge } from "./lightbox.js";
import { cast, dialogue } from "./sound.js";

const RENDERERS = {
  Treatments: treatments,
  Script: script,
  MasterScript: masterScript,
  AssetRegistry: assets,
  ReferenceSheets: referenceSheets,
  SceneInstances: sceneInstances,
  ShotList: shots,
  FrameSet: frames,
  ClipSet: clips,
  Video: video,
  Cast: cast,
  DialogueTrack: dialogue,
};

/** "approving this makes shots v2, frames v1 stale", from a gate's `stale`; null if nothing. */
export function staleText(stale) {
  if (!stale?.length) return null;
  const what = stale.map((s) => `${label(s.kind).toLowerCase()} v${s.version}`).join(", ");
  return `Approving this makes ${what} stale.`;
}

// What each artifact made scene by scene holds per scene (the server's `ByScene` parts):
// an item is its `scene`'s, or the scene its shot id starts with ("2A").
const SCENE_PARTS = {
  SceneInstances: ["instances"],
  ShotList: ["shots"],
  DialogueTrack: ["lines", "beds"],
  FrameSet: ["frames"],
  ClipSet: ["clips"],
};

function sceneOf(item) {
  return item.scene ?? Number(/^\d+/.exec(item.shot ?? "")?.[0]);
}

/** Whether artifacts of `type` are made scene by scene. */
export function madeByScene(type) {
  return type in SCENE_PARTS;
}

/** The scenes an artifact made scene by scene has a part of. */
export function scenesIn(type, artifact) {
  return new Set((SCENE_PARTS[type] ?? []).flatMap((part) => (artifact?.[part] ?? []).map(sceneOf)));
}

/** The part of `scene` alone of an artifact made scene by scene (its other fields as they are). */
export function sceneOnly(type, artifact, scene) {
  const part = { ...artifact };
  for (const name of SCENE_PARTS[type] ?? []) part[name] = (artifact?.[name] ?? []).filter((item) => sceneOf(item) === scene);
  return part;
}

const CHIPS = {
  proposed: ["status-awaiting", "Proposed — awaiting your approval"],
  approved: ["status-approved", "Approved"],
  regenerating: ["status-busy", "Regenerating"],
};

/**
 * Render one artifact: `key` is its name in the state, `type` its model name. With `gate`,
 * it is the gate's proposal, editable and with the gate's actions; without, it is the
 * approved artifact (or, `state: "regenerating"`, the draft feedback was given on),
 * read-only, with what `extra` adds (its version, history, actions). `scene`: the scene it
 * is (a part) of, in its heading ("Scene 2 · Frames"); a gate's own by default.
 */
export function renderArtifact({ key, type }, artifact, { gate, view, values, extra = null, state = gate ? "proposed" : "approved", scene = gate?.payload.scene }) {
  const draft = gate ? pendingEdit(gate, artifact) : null;
  const ctx = { gate, view, values, draft, stage: key, type, changed: () => keepEdit(ctx) };
  const editor = gate && view.editing === gate.approval_id ? EDITORS[type] : null;
  const stale = gate ? staleText(gate.payload.stale) : null;
  const failure = gate?.payload.draft_error;
  const [chipClass, chipText] = CHIPS[state];
  return h("article.artifact", { dataset: { stage: key, type, state, scene: scene ?? "" } },
    h("header.artifact-head", {},
      h("h2", {}, inScene(scene, key)),
      h("span.chip", { class: chipClass }, chipText),
    ),
    gate ? h("p.description", {}, gate.payload.action_requests[0].description) : null,
    failure ? h("p.error.draft-error", { role: "alert" }, `There is no valid draft: ${failure}. Give feedback to draft it again, or edit it yourself.`) : null,
    stale ? h("p.stale-warning", { role: "note" }, stale) : null,
    gate ? rearView(type, draft, scene, values) : null,
    extra,
    gate && view.showChanges === gate.approval_id ? changesSince(ctx) : null,
    shown(() => (editor ? editor(ctx.draft, () => ctx.changed(), () => view.render(), gate.payload.review_configs[0].args_schema) : (RENDERERS[type] ?? generic)(draft ?? artifact, ctx)), draft ?? artifact, key),
    gate ? gateActions(ctx) : null,
  );
}

/** What `draw` makes, or, when the artifact is missing or too partial for it, what is wrong and the artifact as it is. */
function shown(draw, artifact, key) {
  try {
    return draw();
  } catch (error) {
    return h("div.unreadable", {},
      h("p.error", {}, `This ${label(key).toLowerCase()} is incomplete and cannot be shown in full (${error.message}). As it is:`),
      generic(artifact ?? null));
  }
}

// --- what changed since the stage's last draft (a decided gate of the same stage) ------------

const lastDrafts = new Map();

function changesSince(ctx) {
  const { gate, view } = ctx;
  const box = h("div.changes", { "aria-live": "polite" }, h("p.muted", {}, "Loading the last draft…"));
  // the last draft of the same scene's part, for a stage made scene by scene
  const query = new URLSearchParams({ project_id: view.projectId, stage: gate.stage, status: "decided", limit: "20" });
  const sameScene = (a) => (a.payload.scene ?? null) === (gate.payload.scene ?? null);
  if (!lastDrafts.has(gate.approval_id)) lastDrafts.set(gate.approval_id, api(`/approvals?${query}`).then((page) => page.items.find(sameScene) ?? null));
  lastDrafts.get(gate.approval_id)
    .then((last) => box.replaceChildren(last
      ? diffView(ctx.type, last.payload.action_requests[0].args, ctx.draft)
      : h("p.muted", {}, "This is the stage's first draft: nothing to compare with.")))
    .catch((error) => {
      lastDrafts.delete(gate.approval_id);
      box.replaceChildren(h("p.error", {}, error.message));
    });
  return box;
}

// --- a gate's pending edit (kept in sessionStorage: a reload keeps unsent choices) -------

function pendingEdit(gate, proposal) {
  const saved = sessionStorage.getItem(`auteur.edit.${gate.approval_id}`);
  return saved ? JSON.parse(saved) : structuredClone(proposal ?? {});
}

function keepEdit(ctx) {
  sessionStorage.setItem(`auteur.edit.${ctx.gate.approval_id}`, JSON.stringify(ctx.draft));
}

/** Whether the person changed the gate's proposal here (a choice, an edit) and not sent it yet. */
export function isEdited(gate) {
  const proposal = gate.payload.action_requests[0].args;
  return JSON.stringify(pendingEdit(gate, proposal)) !== JSON.stringify(proposal);
}

/** Send `decision` on `gate`; once taken, the edits kept for it are done with. */
async function send(gate, view, decision) {
  const sent = await view.decide(gate, decision);
  if (sent) {
    sessionStorage.removeItem(`auteur.edit.${gate.approval_id}`);
    view.editing = null;
  }
  return sent;
}

/**
 * Approve a gate with what the person chose and edited on it: an edit decision when the
 * proposal was changed, a plain approve when not. Every Approve button means this.
 */
export function approveGate(gate, view) {
  return isEdited(gate)
    ? send(gate, view, { type: "edit", edited_action: { name: gate.stage, args: pendingEdit(gate, gate.payload.action_requests[0].args) } })
    : send(gate, view, { type: "approve" });
}

function gateActions(ctx) {
  const { gate, view } = ctx;
  const allowed = gate.payload.review_configs[0].allowed_decisions.includes("approve");
  const approvable = () => !view.deciding.has(gate.approval_id) && (allowed || isEdited(gate));
  const approve = h("button.primary.approve", { type: "button", disabled: !approvable(), onclick: () => approveGate(gate, view) }, `Approve ${label(gate.stage).toLowerCase()}`);
  ctx.changed = () => {
    keepEdit(ctx);
    approve.disabled = !approvable();
  };
  const editing = view.editing === gate.approval_id;
  const toggle = (field, value) => () => {
    view[field] = view[field] === value ? null : value;
    view.render();
  };
  return h("footer.gate-actions", {},
    approve,
    EDITORS[ctx.type]
      ? h("button.edit", { type: "button", "aria-pressed": String(editing), onclick: toggle("editing", gate.approval_id) }, editing ? "Done editing" : "Edit")
      : h("button", { type: "button", onclick: () => editAsJson(ctx) }, "Edit…"),
    h("button.changes-toggle", { type: "button", "aria-pressed": String(view.showChanges === gate.approval_id), onclick: toggle("showChanges", gate.approval_id) }, "Changes since the last draft"),
    h("button", { type: "button", onclick: () => view.focusChat(gate) }, "Give feedback"),
  );
}

function editAsJson(ctx) {
  const dialog = h("dialog.json-edit", { "aria-label": `Edit the ${label(ctx.stage)}` });
  const text = h("textarea", { rows: 24, spellcheck: false, "aria-label": "Artifact as JSON" }, JSON.stringify(ctx.draft, null, 2));
  const error = h("p.error", { role: "alert" });
  const form = h("form", { method: "dialog" },
    h("h2", {}, `Edit the ${label(ctx.stage).toLowerCase()}`),
    text, error,
    h("div.actions", {},
      h("button", { type: "button", onclick: () => dialog.close() }, "Cancel"),
      h("button.primary", { type: "submit" }, "Save edit and approve")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let args;
    try {
      args = JSON.parse(text.value);
    } catch (problem) {
      error.textContent = `Not valid JSON: ${problem.message}`;
      return;
    }
    dialog.close();
    await send(ctx.gate, ctx.view, { type: "edit", edited_action: { name: ctx.stage, args } });
  });
  dialog.append(form);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

// --- treatment -----------------------------------------------------------------------------

function treatments(artifact, ctx) {
  const { gate, view } = ctx;
  const options = h("div.options", { role: gate ? "radiogroup" : null, "aria-label": "Treatments" },
    artifact.options.map((option, index) => {
      const number = index + 1;
      const chosen = artifact.chosen === number;
      return h("label.option", { class: chosen ? "chosen" : "" },
        gate ? h("input", {
          type: "radio", name: `chosen-${ctx.stage}`, value: number, checked: chosen,
          onchange: () => { ctx.draft.chosen = number; ctx.changed(); view.render(); },
        }) : null,
        h("h3", {}, `${number}. ${option.title}`, chosen ? h("span.chip.status-approved", {}, gate ? "chosen" : "written") : null),
        h("p.logline", {}, option.logline),
        h("p.muted", {}, option.tone),
        h("p", {}, option.synopsis));
    }));
  const configuration = artifact.configuration;
  return h("div", {},
    options,
    configuration
      ? h("section.proposed-config", {},
        h("h3", {}, gate ? "Proposed configuration" : "Configuration"),
        h("p", {}, [configuration.title, configuration.format?.aspect_ratio, `${configuration.format?.target_duration_s} s`, configuration.written_style].filter(Boolean).join(" · ")),
        gate ? h("button#review-config", {
          type: "button",
          onclick: () => openConfig({
            title: "Proposed configuration",
            saved: view.project.config ?? {},
            proposed: ctx.draft.configuration,
            proposedFrom: ctx.values.project,
            // saves the configuration and keeps it in the gate's draft; the gate is approved
            // by its own Approve, as every gate is
            accept: async (config) => {
              view.project = await api(`/projects/${encodeURIComponent(view.projectId)}`, { method: "PATCH", body: { config } });
              ctx.draft.configuration = view.project.config;
              ctx.changed();
              view.render();
              toast(`Configuration saved. Approving the ${label(gate.stage).toLowerCase()} goes on with it.`);
            },
          }),
        }, "Review configuration") : null)
      : null,
  );
}

// --- script and master script ----------------------------------------------------------

function script(artifact) {
  if (!Array.isArray(artifact.scenes)) throw new Error("it has no scenes");
  return h("div.screenplay", {},
    h("h3.title", {}, artifact.title),
    artifact.logline ? h("p.logline", {}, artifact.logline) : null,
    artifact.scenes.map((scene) => h("section.scene", { dataset: { scene: scene.number } },
      h("h4.slugline", {}, `${scene.number}. ${scene.slugline}`),
      scene.lines.map((line) => line.kind === "dialogue"
        ? h("div.dialogue", {}, h("p.speaker", {}, line.speaker), line.parenthetical ? h("p.parenthetical", {}, `(${line.parenthetical})`) : null, h("p", {}, line.text))
        : h("p.action", {}, line.text)))));
}

function masterScript(artifact) {
  if (!Array.isArray(artifact.scenes)) throw new Error("it has no scenes");
  return h("div.screenplay", {},
    h("h3.title", {}, artifact.title),
    artifact.scenes.map((scene) => h("section.scene", { dataset: { scene: scene.number } },
      h("h4.slugline", {}, `${scene.number}. ${scene.slugline}`),
      h("p.prose", {}, scene.prose))));
}

// --- assets --------------------------------------------------------------------------------

function assets(artifact, ctx) {
  const { gate, view } = ctx;
  const deselected = new Set(artifact.deselected ?? []);
  return h("div.assets", {},
    gate ? h("p.muted", {}, "Untick what you do not want pre-generated.") : null,
    ASSET_KINDS.map(([key, title, appearances]) => h("section.kind", { dataset: { kind: key } },
      h("h3", {}, `${title} (${artifact[key].length})`),
      h("ul.checklist", {}, artifact[key].map((entity) => {
        const usage = artifact.scene_usage.filter((u) => u.entity === entity.id);
        return h("li.asset", { dataset: { entity: entity.id } },
          h("label.check", {},
            h("input", {
              type: "checkbox",
              checked: !deselected.has(entity.id),
              disabled: !gate,
              "aria-label": `Pre-generate ${entity.name}`,
              onchange: (event) => {
                const set = new Set(ctx.draft.deselected ?? []);
                if (event.target.checked) set.delete(entity.id); else set.add(entity.id);
                ctx.draft.deselected = [...set];
                ctx.changed();
                view.render();
              },
            }),
            h("strong", {}, entity.name)),
          h("p.muted", {}, entity.description),
          h("details.looks", {},
            h("summary", {}, `${entity[appearances].length} ${appearances} · ${usage.length} scenes`),
            h("ul", {}, entity[appearances].map((look) => h("li", {}, h("em", {}, look.name), ` — ${look.description}`))),
            usage.length
              ? h("table.usage", {}, h("tbody", {}, usage.map((u) => h("tr", {}, h("td", {}, `Scene ${u.scene}`), h("td", {}, u.look)))))
              : null));
      })))));
}

// --- shots ---------------------------------------------------------------------------------

/** "Egg Gerald (muddy)" for an entity in frame, named from the approved assets. */
function inFrame(entities, assets) {
  const names = namesOf(assets);
  return entities.map((e) => `${names.get(e.entity) ?? label(e.entity)} (${e.look})`).join(", ");
}

function shots(artifact, ctx) {
  const columns = ["Shot", "Size", "Angle", "Movement", "Lens", "Duration", "Action", "Dialogue", "In frame"];
  return h("div.table-wrap", { tabindex: 0, role: "region", "aria-label": "Shot list" },
    h("table.shots", {},
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, artifact.shots.map((shot) => h("tr", { dataset: { shot: shot.id } },
        h("th", { scope: "row" }, shot.id),
        h("td", {}, shot.size), h("td", {}, shot.angle), h("td", {}, shot.movement), h("td", {}, shot.lens),
        h("td", {}, `${shot.duration_s} s`),
        h("td", {}, shot.action),
        h("td", {}, (shot.dialogue ?? []).map((d) => h("p", {}, h("strong", {}, d.speaker), `: ${d.text}`))),
        h("td.in-frame", {}, inFrame(shot.entities ?? [], ctx.values?.assets)))))));
}

// --- frames: a carousel of candidates per keyframe; choose, regenerate, inpaint ----------

function candidatesOf(frame) {
  return frame.candidates?.length ? frame.candidates : [frame];
}

/**
 * The reference sheets: one figure per asset and look. At the gate a click on a candidate
 * chooses it, a region of the chosen one can be inpainted, and an asset can be skipped (its
 * keyframes then go without a reference). The chosen candidate's note says how it was made.
 */
function referenceSheets(artifact, ctx) {
  const { gate, view } = ctx;
  const change = (i, values) => {
    Object.assign(ctx.draft.sheets[i], values);
    ctx.changed();
    view.render();
  };
  return h("div.sheets", {}, artifact.sheets.map((sheet, i) => {
    const title = `${label(sheet.entity)}, ${sheet.look}`;
    const candidates = sheet.candidates?.length ? sheet.candidates : [{ file: sheet.file }];
    return h("figure.sheet", { dataset: { entity: sheet.entity, look: sheet.look, candidates: candidates.length, skipped: String(Boolean(sheet.skipped)) } },
      h("button.stage-img", { type: "button", "aria-label": `Open ${title} large`, onclick: () => openLarge(sheet.file, title) },
        showFile(h("img", { alt: title, loading: "lazy" }), sheet.file)),
      candidates.length > 1
        ? h("div.candidates", { role: "group", "aria-label": `Candidates of ${title}` }, candidates.map((candidate, j) => h("button.thumb", {
          type: "button",
          "aria-label": `Candidate ${j + 1} of ${title}`,
          "aria-pressed": String(candidate.file.key === sheet.file.key),
          disabled: !gate,
          onclick: () => change(i, { file: candidate.file }),
        }, showFile(h("img", { alt: "", loading: "lazy" }), candidate.file))))
        : null,
      h("figcaption", {},
        h("strong", {}, label(sheet.entity)), ` · ${sheet.look}`,
        sheet.skipped ? h("span.muted", {}, " · skipped") : null,
        gate ? h("button.sheet-skip", { type: "button", onclick: () => change(i, { skipped: !sheet.skipped }) }, sheet.skipped ? `Use ${title}` : `Skip ${title}`) : null),
      gate ? h("div.sheet-actions", {},
        h("button.inpaint", {
          type: "button",
          onclick: () => openInpaint({
            title: `the sheet of ${title}`,
            target: { entity: sheet.entity, look: sheet.look },
            file: sheet.file,
            gate,
            view,
          }),
        }, "Inpaint…"),
        h("button.own-image", { type: "button", onclick: () => useOwnImage(sheet, title, gate, view) }, "Use my image…")) : null,
      sheet.candidates?.length ? h("p.note", {}, sheet.candidates.find((c) => c.file.key === sheet.file.key)?.note ?? "") : null,
      lookDescription(sheet, gate, (description) => change(i, { description })));
  }));
}

// --- scene instances: each asset in a scene's look and context -------------------------

/** Entity id → its name, from the approved assets. */
function namesOf(assets) {
  return new Map(["characters", "locations", "props"].flatMap((kind) => (assets?.[kind] ?? []).map((e) => [e.id, e.name])));
}

/**
 * A scene's instances: per asset the chosen image, its candidates, the image it was drawn
 * from and its earlier images (the history: earlier scenes' instances, newest first, then its
 * sheets). At the gate any of them can be chosen — the reference "as is" costs no drawing —,
 * or the asset skipped (its keyframes then use its sheet); feedback naming the asset draws it
 * again. An approved set holds every scene's, under each scene's heading.
 */
function sceneInstances(artifact, ctx) {
  const scenes = [...new Set(artifact.instances.map((i) => i.scene))];
  return h("div.instances", {}, scenes.map((scene) => h("section.scene-instances", { dataset: { scene } },
    ctx.gate ? null : h("h3", {}, `Scene ${scene}`),
    h("div.sheets", {}, artifact.instances.map((instance, i) => (instance.scene === scene ? instanceFigure(instance, i, ctx) : null))))));
}

function instanceFigure(instance, i, ctx) {
  const { gate, view } = ctx;
  const name = namesOf(ctx.values?.assets).get(instance.entity) ?? label(instance.entity);
  const title = `${name}, ${instance.look}`;
  const chosen = instance.skipped ? null : instance.file;
  const candidates = instance.candidates ?? [];
  const history = instance.history ?? [];
  const change = (values) => {
    Object.assign(ctx.draft.instances[i], values);
    ctx.changed();
    view.render();
  };
  const pick = (file) => change({ file, skipped: false });
  const pressed = (file) => String(file?.key === chosen?.key);
  const thumb = (file, text, attrs = {}) => h("button.thumb", {
    type: "button",
    "aria-label": `${text} of ${name}`,
    "aria-pressed": pressed(file),
    disabled: !gate,
    onclick: () => pick(file),
    ...attrs,
  }, showFile(h("img", { alt: "", loading: "lazy" }), file));
  const reference = instance.reference;
  // nothing to draw it from nor to choose (its sheet was skipped): nothing to decide either
  const open = gate && Boolean(reference || candidates.length || history.length);
  return h("figure.instance", { dataset: { entity: instance.entity, look: instance.look, scene: instance.scene, candidates: candidates.length, skipped: String(Boolean(instance.skipped)) } },
    chosen
      ? h("button.stage-img", { type: "button", "aria-label": `Open ${title} large`, onclick: () => openLarge(chosen, `${title}, scene ${instance.scene}`) },
        showFile(h("img", { alt: title, loading: "lazy" }), chosen))
      : h("p.placeholder.no-image", {}, !reference && !history.length
        ? `No image of ${name}: its reference sheet was skipped.`
        : `${name} is skipped in this scene: its keyframes use its reference sheet.`),
    candidates.length
      ? h("div.candidates", { role: "group", "aria-label": `Candidates of ${title}` }, candidates.map((c, j) => thumb(c.file, `Candidate ${j + 1}`)))
      : null,
    h("figcaption", {},
      h("strong", {}, name), ` · ${instance.look}`,
      instance.skipped ? h("span.muted", {}, " · skipped") : null,
      open ? h("button.sheet-skip", { type: "button", onclick: () => change({ skipped: !instance.skipped }) }, instance.skipped ? `Use ${title}` : `Skip ${title}`) : null),
    reference
      ? h("div.instance-reference", {},
        h("button.ref-view", { type: "button", "aria-label": `Open the reference of ${title} large`, onclick: () => openLarge(reference.file, `${title}: ${reference.label}`) },
          showFile(h("img", { alt: "" }), reference.file)),
        h("span", {}, "Drawn from the ", h("em", {}, reference.label)),
        gate ? h("button.use-as-is", { type: "button", "aria-pressed": pressed(reference.file), onclick: () => pick(reference.file) }, "Use as is") : null)
      : null,
    history.length
      ? h("div.instance-history", { role: "group", "aria-label": `Earlier images of ${name}` },
        h("span.muted", {}, "Earlier images:"),
        history.map((option) => h("div.history-item", {}, thumb(option.file, option.label), h("span.muted", { "aria-hidden": "true" }, option.label))))
      : null,
    candidates.length ? h("p.note", {}, candidates.find((c) => c.file.key === chosen?.key)?.note ?? "") : null,
    open ? h("button.instance-feedback", { type: "button", onclick: () => view.focusChat(gate, `${name}: `) }, `Feedback on ${name}…`) : null);
}

// --- the rear view: this scene's assets as earlier scenes left them ---------------------

/** "scene 1 instance (muddy)" → 1, when the option is an instance of a scene before `scene`. */
function earlierScene(option, scene) {
  const found = Number(/^scene (\d+) instance/.exec(option?.label ?? "")?.[1]);
  return found < scene ? found : null;
}

/** The approved instances (`values.instances`) as reference options, by entity. */
function approvedInstances(values) {
  const by = new Map();
  for (const i of values?.instances?.instances ?? []) {
    if (i.file) by.set(i.entity, [...(by.get(i.entity) ?? []), { file: i.file, label: `scene ${i.scene} instance (${i.look})` }]);
  }
  return by;
}

// Per gate type: [entity, images of it] for each of the scene's assets: at the instances
// gate each asset's reference and history, at the frames gate each entity in frame's
// reference options and the approved instances.
const REAR_VIEWS = {
  SceneInstances: (artifact) => (artifact.instances ?? []).map((i) => [i.entity, [...(i.history ?? []), i.reference]]),
  FrameSet: (artifact, values) => {
    const approved = approvedInstances(values);
    const options = artifact.reference_options ?? {};
    const entities = new Set([...Object.keys(options), ...(artifact.frames ?? []).flatMap((f) => Object.keys(f.references ?? {}))]);
    return [...entities].map((entity) => [entity, [...(options[entity] ?? []), ...(approved.get(entity) ?? [])]]);
  },
};

/**
 * At a scene's instances and frames gates, a strip with the latest approved image of each of
 * the scene's assets from an earlier scene: what continuity starts from. Nothing in scene 1.
 */
function rearView(type, artifact, scene, values) {
  if (!REAR_VIEWS[type] || !(scene > 1) || !artifact) return null;
  const names = namesOf(values?.assets);
  const latest = REAR_VIEWS[type](artifact, values)
    .map(([entity, options]) => [entity, options.filter((o) => earlierScene(o, scene)).sort((a, b) => earlierScene(b, scene) - earlierScene(a, scene))[0]])
    .filter(([, option]) => option);
  return h("section.rear-view", { "aria-labelledby": "rear-view-title" },
    h("h3#rear-view-title", {}, "Rear view: earlier scenes"),
    latest.length
      ? h("ul", {}, latest.map(([entity, option]) => {
        const name = names.get(entity) ?? label(entity);
        return h("li", { dataset: { entity } },
          h("button.ref-view", { type: "button", "aria-label": `Open ${name}, ${option.label}, large`, onclick: () => openLarge(option.file, `${name}: ${option.label}`) },
            showFile(h("img", { alt: "" }), option.file)),
          h("span", {}, h("strong", {}, name), h("br"), h("span.muted", {}, option.label)));
      }))
      : h("p.muted", {}, "No earlier scene has an approved image of this scene's assets."));
}

const OWN_IMAGE_SIDE = 1024;

/**
 * An image of the person's own for a sheet: picked from disk, sent as a PNG (`POST /files`,
 * at most OWN_IMAGE_SIDE pixels a side), then a reject that asks the reference designer to
 * describe it.
 */
function useOwnImage(sheet, title, gate, view) {
  const input = h("input", { type: "file", accept: "image/*", hidden: true });
  input.addEventListener("change", async () => {
    const [picked] = input.files;
    input.remove();
    if (!picked) return;
    try {
      const image = await createImageBitmap(picked);
      // a photo straight off a camera is far over the body limit (4 MiB) as a PNG: 1024 px a
      // side keeps a photo's PNG under it, and is about what a sheet is drawn at
      const scale = Math.min(1, OWN_IMAGE_SIDE / Math.max(image.width, image.height));
      const canvas = h("canvas", { width: Math.round(image.width * scale), height: Math.round(image.height * scale) });
      canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
      const file = await api("/files", { method: "POST", body: { data_url: canvas.toDataURL("image/png") } });
      await view.decide(gate, {
        type: "reject",
        message: `My own image for ${title}.`,
        own_image: { entity: sheet.entity, look: sheet.look, file: file.key },
      });
    } catch (error) {
      toast(error.message, { error: true });
    }
  });
  document.body.append(input);
  input.click();
}

/**
 * The look's description from the person's own image: what the model saw, and the
 * registry's merged with it. At the gate either replaces the look's description (or the
 * registry's is kept); the chosen one is what the keyframes are drawn from.
 */
function lookDescription(sheet, gate, choose) {
  const own = sheet.candidates?.find((c) => c.file.key === sheet.file.key && c.described);
  if (!own && !sheet.description) return null;
  const option = (name, text) => h("li", { dataset: { option: name } },
    h("p", {}, text),
    gate ? h("button", {
      type: "button",
      "aria-pressed": String(sheet.description === text),
      onclick: () => choose(sheet.description === text ? null : text),
    }, name === "described" ? "Replace the description with this" : "Use the merged description") : null);
  return h("div.look-description", {},
    h("p.muted", {}, sheet.description ? "Keyframes use the chosen description." : "Keyframes use the registry's description unless you choose one:"),
    own ? h("ul", {}, option("described", own.described), option("merged", own.merged)) : h("p", {}, sheet.description));
}

function frames(artifact, ctx) {
  const { gate, view } = ctx;
  const byShot = new Map();
  for (const frame of artifact.frames) {
    if (!byShot.has(frame.shot)) byShot.set(frame.shot, []);
    byShot.get(frame.shot).push(frame);
  }
  return h("div.frames", {},
    [...byShot].map(([shot, keyframes]) => h("section.shot-frames", { dataset: { shot } },
      h("h3", {}, `Shot ${shot}`),
      h("div.pair", {}, keyframes.map((frame) => carousel(frame, ctx, view, gate))))));
}

/** The reference image each entity in frame was drawn from; at a gate, each can be changed. */
function references(frame, ctx) {
  const entries = Object.entries(frame.references ?? {});
  if (!entries.length) return null;
  const options = ctx.draft?.reference_options ?? {};
  return h("div.refs", {}, h("span.muted", {}, "References:"),
    entries.map(([entity, file]) => {
      const thumb = showFile(h("img", { alt: "" }), file);
      const choices = options[entity] ?? [];
      return ctx.gate && choices.length > 1
        ? h("button.ref", { type: "button", title: `Pick another reference for ${entity}`, onclick: () => pickReference(entity, file, choices, ctx) }, thumb, entity)
        : h("button.ref-view", { type: "button", title: `Open the reference for ${entity} large`, onclick: () => openLarge(file, `Reference for ${entity}`) }, thumb, entity);
    }));
}

function pickReference(entity, current, choices, ctx) {
  const dialog = h("dialog.reference-picker", { "aria-label": `Reference for ${entity}` });
  const choose = async (option) => {
    dialog.close();
    await ctx.view.decide(ctx.gate, {
      type: "reject",
      message: `Use the ${option.label} as the reference for ${entity}.`,
      references: { [entity]: option.file.key },
    });
  };
  dialog.append(
    h("h2", {}, `Reference for ${entity}`),
    h("p.muted", {}, "The frames with it in shot are drawn again from the image you pick."),
    h("ul.reference-options", {}, choices.map((option) => h("li", {},
      h("button", { type: "button", disabled: option.file.key === current.key, onclick: () => choose(option) },
        showFile(h("img", { alt: "" }), option.file),
        h("span", {}, option.file.key === current.key ? `${option.label} (in use)` : option.label))))),
    h("div.actions", {}, h("button", { type: "button", onclick: () => dialog.close() }, "Cancel")),
  );
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

function carousel(frame, ctx, view, gate) {
  const candidates = candidatesOf(frame);
  const chosenIndex = Math.max(0, candidates.findIndex((c) => c.file.key === frame.file.key));
  // the candidate last viewed, kept per chosen candidate
  const keyOf = (fileKey) => `auteur.carousel.${frame.shot}.${frame.position}.${fileKey}`;
  const key = keyOf(frame.file.key);
  let index = Math.min(Number(sessionStorage.getItem(key) ?? chosenIndex), candidates.length - 1);
  const title = `Shot ${frame.shot}, ${frame.position} frame`;
  const img = h("img", { alt: title, loading: "lazy" });
  const name = (i) => `Candidate ${i + 1}${candidates[i].file.key === frame.file.key ? " (chosen)" : ""}`;
  // every candidate at once, side by side: a click shows it in the carousel
  const thumbs = candidates.map((candidate, i) => h("button.thumb", {
    type: "button",
    "aria-label": `Show candidate ${i + 1}`,
    onclick: () => { index = i; show(); },
  }, showFile(h("img", { alt: "", loading: "lazy" }), candidate.file)));
  const counter = h("span.counter", { "aria-live": "polite" });
  const use = h("button.use", { type: "button" });
  const note = h("p.muted.note");
  const show = () => {
    const candidate = candidates[index];
    showFile(img, candidate.file);
    counter.textContent = `${index + 1} / ${candidates.length}`;
    const isChosen = candidate.file.key === frame.file.key;
    use.textContent = isChosen ? "Chosen" : "Use this one";
    use.disabled = !gate || isChosen;
    note.textContent = candidate.note ?? "";
    thumbs.forEach((thumb, i) => thumb.setAttribute("aria-pressed", String(i === index)));
    sessionStorage.setItem(key, String(index));
  };
  use.addEventListener("click", () => {
    const target = ctx.draft.frames.find((f) => f.shot === frame.shot && f.position === frame.position);
    const candidate = candidates[index];
    Object.assign(target, { file: candidate.file, prompt: candidate.prompt, seed: candidate.seed, workflow: candidate.workflow });
    // the carousel of the new choice opens at it, not at what was last viewed under that choice
    sessionStorage.setItem(keyOf(candidate.file.key), String(index));
    ctx.changed();
    view.render();
  });
  const step = (delta) => () => {
    index = (index + delta + candidates.length) % candidates.length;
    show();
  };
  const figure = h("figure.carousel", { dataset: { position: frame.position, candidates: candidates.length } },
    h("button.stage-img", { type: "button", "aria-label": `Open ${title} large`, onclick: () => openLarge(candidates[index].file, `${title}: ${name(index).toLowerCase()}`) }, img),
    candidates.length > 1 ? h("div.candidates", { role: "group", "aria-label": "All candidates" }, thumbs) : null,
    h("figcaption", {},
      h("strong", {}, label(frame.position)),
      h("button.nav", { type: "button", "aria-label": "Previous candidate", disabled: candidates.length < 2, onclick: step(-1) }, "‹"),
      counter,
      h("button.nav", { type: "button", "aria-label": "Next candidate", disabled: candidates.length < 2, onclick: step(1) }, "›"),
      candidates.length > 1 ? h("button.compare", {
        type: "button",
        onclick: () => openCompare(title, candidates.map((c, i) => ({ file: c.file, name: name(i) })), chosenIndex, index === chosenIndex ? (index + 1) % candidates.length : index),
      }, "Compare…") : null,
      gate ? use : null,
      gate ? h("button.inpaint", {
        type: "button",
        onclick: () => openInpaint({
          title: `shot ${frame.shot} · ${frame.position} frame`,
          target: { shot: frame.shot, position: frame.position },
          file: candidates[index].file,
          gate,
          view,
        }),
      }, "Inpaint…") : null),
    note,
    references(frame, ctx));
  show();
  return figure;
}

// --- clips and the video -------------------------------------------------------------------

function clips(artifact) {
  return h("div.clips", {}, artifact.clips.map((clip) => h("figure.clip", { dataset: { shot: clip.shot } },
    showFile(h("video", { controls: true, preload: "metadata", muted: true }), clip.file),
    h("figcaption", {}, `Shot ${clip.shot} · ${clip.duration_s.toFixed(1)} s`))));
}

/** The film with its subtitles, its downloads, and its cut for an editor. */
function video(artifact, ctx) {
  const { srt, vtt } = artifact.subtitles ?? {};
  const player = h("video#video-preview", { controls: true, preload: "metadata" },
    vtt ? showFile(h("track", { kind: "subtitles", srclang: "en", label: "Dialogue", default: true }), vtt) : null);
  const thread = ctx.view.current?.get("video")?.thread_id ?? ctx.view.thread?.thread_id;
  const link = (href, text, name) => h("a", { href, download: name }, text);
  return h("figure.video-preview", {},
    showFile(player, artifact.file),
    h("figcaption", {}, `${artifact.duration_s.toFixed(1)} s · ${artifact.fps} fps`,
      artifact.loudness_lufs != null ? ` · ${artifact.loudness_lufs} LUFS` : "", " · ",
      link(`/files/${artifact.file.key}`, "Download", "auteur.mp4"),
      srt ? [" · ", link(`/files/${srt.key}`, "Subtitles (SRT)", "auteur.srt")] : null,
      thread ? [" · For an editor: ", ["otio", "fcpxml", "edl"].flatMap((format, i) => [i ? ", " : "",
        link(`/threads/${thread}/export?format=${format}`, format.toUpperCase(), `auteur.${format}`)])] : null));
}

function generic(artifact) {
  return h("pre.json", {}, JSON.stringify(artifact, null, 2));
}

