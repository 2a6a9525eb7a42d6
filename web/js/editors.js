// Structured editors for what a person rewrites at a gate — the treatments, a script's scenes
// and lines, a master script's scenes, the assets' names, descriptions and looks, a shot list
// as a table of editable cells — and the changes of a draft since the one before it, line by
// line.
//
// An editor changes `draft` in place and calls `changed()` after each edit; the gate's
// Approve sends the edited draft.

import { h, label } from "./dom.js";

/** A text control bound to `object[key]`. */
function text(object, key, name, changed, { long = false, optional = false } = {}) {
  const control = long
    ? h("textarea", { rows: 3, "aria-label": name })
    : h("input", { "aria-label": name, autocomplete: "off" });
  control.value = object[key] ?? "";
  control.addEventListener("input", () => {
    object[key] = optional && !control.value.trim() ? null : control.value;
    changed();
  });
  return control;
}

function treatmentsEditor(draft, changed) {
  return h("div.structured", {},
    draft.options.map((option, index) => {
      const where = `Treatment ${index + 1}`;
      return h("fieldset.option-edit", { dataset: { option: index + 1 } },
        h("legend", {}, where),
        h("label.field", {}, "Title", text(option, "title", `${where} title`, changed)),
        h("label.field", {}, "Logline", text(option, "logline", `${where} logline`, changed, { long: true })),
        h("label.field", {}, "Tone", text(option, "tone", `${where} tone`, changed)),
        h("label.field", {}, "Synopsis", text(option, "synopsis", `${where} synopsis`, changed, { long: true })));
    }));
}

/** The asset registry's kinds of entity: [list, heading, what each entity appears in]. */
export const ASSET_KINDS = [
  ["characters", "Characters", "looks"],
  ["locations", "Locations", "variants"],
  ["props", "Props", "states"],
];

// An entity's id and its looks' names are what the scenes, shots and frames refer to it by:
// they are not edited here.
function assetsEditor(draft, changed) {
  return h("div.structured", {},
    ASSET_KINDS.map(([kind, title, appearances]) => h("section.kind", { dataset: { kind } },
      h("h3", {}, title),
      draft[kind].map((entity) => {
        const where = label(entity.id);
        return h("fieldset.entity-edit", { dataset: { entity: entity.id } },
          h("legend", {}, where),
          h("label.field", {}, "Name", text(entity, "name", `${where} name`, changed)),
          h("label.field", {}, "Description", text(entity, "description", `${where} description`, changed, { long: true })),
          entity[appearances].map((look) => h("label.field.look-edit", {}, look.name,
            text(look, "description", `${where} ${look.name} description`, changed, { long: true }))));
      }))));
}

function scriptEditor(draft, changed, redraw) {
  return h("div.structured", {},
    h("label.field", {}, "Title", text(draft, "title", "Title", changed)),
    draft.scenes.map((scene) => h("fieldset.scene-edit", { dataset: { scene: scene.number } },
      h("legend", {}, `Scene ${scene.number}`),
      h("label.field", {}, "Slugline", text(scene, "slugline", `Scene ${scene.number} slugline`, changed)),
      h("ol.lines", {}, scene.lines.map((line, index) => {
        const where = `Scene ${scene.number}, line ${index + 1}`;
        const kind = h("select", { "aria-label": `${where} kind` },
          ["action", "dialogue"].map((k) => h("option", { value: k, selected: line.kind === k }, label(k))));
        kind.addEventListener("change", () => {
          line.kind = kind.value;
          if (line.kind === "action") Object.assign(line, { speaker: null, parenthetical: null });
          changed();
          redraw();
        });
        return h("li.line-edit", { dataset: { kind: line.kind } },
          kind,
          line.kind === "dialogue" ? text(line, "speaker", `${where} speaker`, changed) : null,
          line.kind === "dialogue" ? text(line, "parenthetical", `${where} parenthetical`, changed, { optional: true }) : null,
          text(line, "text", `${where} text`, changed, { long: true }),
          h("button", {
            type: "button",
            disabled: scene.lines.length < 2,
            onclick: () => { scene.lines.splice(index, 1); changed(); redraw(); },
          }, "Remove line"));
      })),
      h("button", {
        type: "button",
        onclick: () => { scene.lines.push({ kind: "action", text: "…", speaker: null, parenthetical: null }); changed(); redraw(); },
      }, `Add a line to scene ${scene.number}`))));
}

function masterScriptEditor(draft, changed) {
  return h("div.structured", {},
    h("label.field", {}, "Title", text(draft, "title", "Title", changed)),
    draft.scenes.map((scene) => h("fieldset.scene-edit", { dataset: { scene: scene.number } },
      h("legend", {}, `Scene ${scene.number}`),
      h("label.field", {}, "Slugline", text(scene, "slugline", `Scene ${scene.number} slugline`, changed)),
      h("label.field", {}, "Prose", text(scene, "prose", `Scene ${scene.number} prose`, changed, { long: true })))));
}

const SHOT_CELLS = [
  ["size", "Size"],
  ["angle", "Angle"],
  ["movement", "Movement"],
  ["lens", "Lens"],
  ["duration_s", "Duration (s)"],
  ["action", "Action"],
];

function shotsEditor(draft, changed, redraw, schema) {
  const sizes = schema?.$defs?.Shot?.properties?.size?.enum;
  const cell = (shot, key, name) => {
    const where = `Shot ${shot.id} ${name.toLowerCase()}`;
    if (key === "size" && sizes) {
      const select = h("select", { "aria-label": where }, sizes.map((s) => h("option", { value: s, selected: shot.size === s }, s)));
      select.addEventListener("change", () => { shot.size = select.value; changed(); });
      return select;
    }
    if (key === "duration_s") {
      const input = h("input", { type: "number", min: 0.1, max: 60, step: "any", required: true, "aria-label": where, value: shot.duration_s });
      input.addEventListener("input", () => {
        if (input.value !== "" && input.checkValidity()) { shot.duration_s = Number(input.value); changed(); }
      });
      return input;
    }
    return text(shot, key, where, changed, { long: key === "action" });
  };
  return h("div.table-wrap", { tabindex: 0, role: "region", "aria-label": "Shot list" },
    h("table.shots.editing", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Shot"), SHOT_CELLS.map(([, name]) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, draft.shots.map((shot) => h("tr", { dataset: { shot: shot.id } },
        h("th", { scope: "row" }, shot.id),
        SHOT_CELLS.map(([key, name]) => h("td", { dataset: { cell: key } }, cell(shot, key, name))))))));
}

/** The structured editor of each artifact type that has one. */
export const EDITORS = {
  Treatments: treatmentsEditor,
  AssetRegistry: assetsEditor,
  Script: scriptEditor,
  MasterScript: masterScriptEditor,
  ShotList: shotsEditor,
};

// --- what changed since the last draft -------------------------------------------------------

/** A paragraph as its sentences (none for no text). */
function sentences(text) {
  return text ? text.split(/(?<=[.!?])\s+/) : [];
}

/** An artifact as lines of text, the unit a diff compares. */
function linesOf(type, artifact) {
  if (type === "Script" || type === "MasterScript") {
    return [artifact.title, ...(artifact.scenes ?? []).flatMap((scene) => [
      `${scene.number}. ${scene.slugline}`,
      ...sentences(scene.prose),
      ...(scene.lines ?? []).map((line) => (line.kind === "dialogue"
        ? `${line.speaker}${line.parenthetical ? ` (${line.parenthetical})` : ""}: ${line.text}`
        : line.text)),
    ])];
  }
  if (type === "Treatments") {
    return (artifact.options ?? []).flatMap((option, index) => [
      `${index + 1}. ${option.title} (${option.tone})`,
      option.logline,
      ...sentences(option.synopsis),
    ]);
  }
  if (type === "AssetRegistry") {
    return ASSET_KINDS.flatMap(([kind, , appearances]) => (artifact[kind] ?? []).flatMap((entity) => [
      `${entity.name}: ${entity.description}`,
      ...(entity[appearances] ?? []).map((look) => `${entity.name}, ${look.name}: ${look.description}`),
    ]));
  }
  if (type === "ShotList") {
    return (artifact.shots ?? []).map((s) => `${s.id} · ${s.size} · ${s.angle} · ${s.movement} · ${s.lens} · ${s.duration_s} s · ${s.action}`);
  }
  return JSON.stringify(artifact, null, 2).split("\n");
}

/** The lines of `after` against `before`: ["same"|"added"|"removed", line] by longest common subsequence. */
function diffLines(before, after) {
  const n = before.length;
  const m = after.length;
  const common = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      common[i][j] = before[i] === after[j] ? common[i + 1][j + 1] + 1 : Math.max(common[i + 1][j], common[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && before[i] === after[j]) {
      out.push(["same", after[j]]);
      i++;
      j++;
    } else if (j < m && (i === n || common[i][j + 1] >= common[i + 1][j])) out.push(["added", after[j++]]);
    else out.push(["removed", before[i++]]);
  }
  return out;
}

/** The changes from the draft `before` to `after`, both of artifact type `type`. */
export function diffView(type, before, after) {
  const lines = diffLines(linesOf(type, before), linesOf(type, after));
  const added = lines.filter(([kind]) => kind === "added").length;
  const removed = lines.filter(([kind]) => kind === "removed").length;
  const tags = { same: "span", added: "ins", removed: "del" };
  return h("section.diff", { "aria-label": "Changes since the last draft" },
    h("p.muted", {}, added || removed ? `${added} lines added, ${removed} removed since the last draft.` : "No changes since the last draft."),
    h("pre.diff-lines", { tabindex: 0 }, lines.map(([kind, line]) => h(`${tags[kind]}.diff-${kind}`, {}, `${{ same: " ", added: "+", removed: "−" }[kind]} ${line}\n`))));
}
