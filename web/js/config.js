// The configuration modal. One component, two ways in:
//  - from the Configuration tab: the saved configuration, edits auto-saved (at most one
//    save per second while typing);
//  - from a gate that proposes configuration: the proposal's changes laid over the saved
//    values (what it changes marked), nothing saved until "Accept and save".
// A field that is not valid (a cleared number) is never sent: the status line says why.
// Leaving the page with unsaved edits asks first.

import { h, toast } from "./dom.js";

const ASPECT_RATIOS = ["16:9", "9:16", "1:1", "4:3", "2.39:1"];
const CAPSULES = {
  "Stop-motion miniature": "Handmade stop-motion miniature: felt, clay and paper textures, warm soft window light, shallow depth of field, pastel palette.",
  "Film noir": "Black-and-white film noir: hard low-key light, venetian-blind shadows, wet streets, high contrast, 35 mm grain.",
  "Watercolour storybook": "Watercolour storybook: soft washes, visible paper texture, loose ink outlines, gentle muted colours.",
  "Neon cyberpunk": "Neon cyberpunk: rain-soaked night city, magenta and cyan neon, reflections, anamorphic flares.",
};
export const SAVE_INTERVAL_MS = 1000;

const DEFAULTS = {
  title: "",
  format: { aspect_ratio: "16:9", fps: 12, target_duration_s: 30, segment_length_s: 3 },
  visual_style: "",
  written_style: "",
  story_rules: [],
  frame_candidates: 1,
};

/**
 * What `proposed` changes from `from` (what the run was started with), one level deep: the
 * rest of a proposal only repeats values that may have been changed and saved since.
 * Without `from`, everything proposed counts.
 */
function proposalChanges(proposed, from) {
  if (!from) return proposed ?? {};
  const changes = {};
  for (const [key, value] of Object.entries(proposed ?? {})) {
    const isObject = value && typeof value === "object" && !Array.isArray(value);
    if (isObject) {
      const inner = Object.fromEntries(Object.entries(value).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(from[key]?.[k])));
      if (Object.keys(inner).length) changes[key] = inner;
    } else if (JSON.stringify(value) !== JSON.stringify(from[key])) {
      changes[key] = value;
    }
  }
  return changes;
}

/** `over` laid on `base`, one level deep (the format is merged key by key). */
export function mergeConfig(base, over) {
  const merged = { ...base };
  for (const [key, value] of Object.entries(over ?? {})) {
    const isObject = value && typeof value === "object" && !Array.isArray(value);
    merged[key] = isObject ? { ...(base[key] ?? {}), ...value } : value;
  }
  return merged;
}

let dirty = false;
window.addEventListener("beforeunload", (event) => {
  if (!dirty) return;
  event.preventDefault();
  event.returnValue = "";
});

/**
 * Open the modal.
 * @param {object} options
 * @param {string} options.title
 * @param {object} options.saved - the project's saved configuration
 * @param {object} [options.proposed] - a gate's proposal (opens in proposal mode)
 * @param {object} [options.proposedFrom] - the configuration the proposal was made from
 * @param {(config: object) => Promise<object>} [options.autosave] - saves, answers the saved config
 * @param {(config: object) => Promise<void>} [options.accept] - proposal mode: accept and save
 * @param {() => void} [options.onClose]
 */
export function openConfig({ title, saved, proposed, proposedFrom, autosave, accept, onClose }) {
  const proposal = proposed !== undefined;
  const changes = proposal ? proposalChanges(proposed, proposedFrom) : {};
  const before = mergeConfig(DEFAULTS, saved);
  let values = mergeConfig(before, changes);
  let timer = null;
  let saving = Promise.resolve();
  const status = h("span.save-status", { role: "status", "aria-live": "polite" }, proposal ? "Proposed — not saved yet" : "All changes saved");

  // a field the proposal changes says so, with the saved value it replaces
  const field = (labelText, input, [key, sub] = []) => {
    const change = sub ? changes[key]?.[sub] : changes[key];
    const was = sub ? before[key]?.[sub] : before[key];
    return h("label.field", { class: change !== undefined ? "proposed-change" : "" }, labelText, input,
      change !== undefined ? h("span.change-note", {}, `Changed by the proposal; saved: ${JSON.stringify(was) ?? "—"}`) : null);
  };
  const input = (name, attrs = {}) => h("input", { name, ...attrs });
  const title_ = input("title", { value: values.title, maxlength: 200 });
  const aspect = h("select", { name: "aspect_ratio" }, ASPECT_RATIOS.map((r) => h("option", { value: r, selected: values.format.aspect_ratio === r }, r)));
  const fps = input("fps", { type: "number", required: true, min: 1, max: 60, value: values.format.fps });
  const duration = input("target_duration_s", { type: "number", required: true, min: 1, max: 3600, step: "any", value: values.format.target_duration_s });
  const segment = input("segment_length_s", { type: "number", required: true, min: 0.5, max: 60, step: "any", value: values.format.segment_length_s });
  const capsuleName = Object.keys(CAPSULES).find((name) => CAPSULES[name] === values.visual_style);
  const mode = h("select", { name: "style_mode", "aria-label": "Visual style kind" },
    h("option", { value: "free", selected: !capsuleName }, "Free-text visual description"),
    Object.keys(CAPSULES).map((name) => h("option", { value: name, selected: capsuleName === name }, `Style capsule: ${name}`)));
  const visual = h("textarea", { name: "visual_style", rows: 3, "aria-label": "Visual style description" }, values.visual_style);
  const written = h("textarea", { name: "written_style", rows: 2 }, values.written_style);
  const candidates = input("frame_candidates", { type: "number", required: true, min: 1, max: 8, value: values.frame_candidates });
  const rules = h("textarea", { name: "story_rules", rows: 4, placeholder: "One rule per line, e.g. All characters are eggs." }, values.story_rules.join("\n"));

  const read = () => ({
    title: title_.value.trim(),
    format: {
      aspect_ratio: aspect.value,
      fps: Number(fps.value),
      target_duration_s: Number(duration.value),
      segment_length_s: Number(segment.value),
    },
    visual_style: visual.value.trim(),
    written_style: written.value.trim(),
    story_rules: rules.value.split("\n").map((r) => r.trim()).filter(Boolean),
    frame_candidates: Number(candidates.value),
  });

  async function save() {
    timer = null;
    const config = read();
    status.textContent = "Saving…";
    saving = autosave(config)
      .then((stored) => {
        values = mergeConfig(values, stored);
        if (!timer) {
          dirty = false;
          status.textContent = "All changes saved";
        }
      })
      .catch((error) => {
        status.textContent = `Not saved: ${error.message}`;
        toast(error.message, { error: true });
      });
    await saving;
  }

  /** The first field that is not valid, said in words; null when all are. */
  function invalid() {
    const bad = [...form.elements].find((el) => el.willValidate && !el.checkValidity());
    if (!bad) return null;
    const name = bad.closest("label")?.firstChild?.textContent ?? bad.name;
    return `${name}: ${bad.validationMessage}`;
  }

  function changed() {
    dirty = true;
    const problem = invalid();
    if (problem) {
      clearTimeout(timer);
      timer = null;
      status.textContent = `Not saved — ${problem}`;
      return;
    }
    if (proposal) {
      status.textContent = "Edited — not saved yet";
      return;
    }
    status.textContent = "Unsaved changes";
    // at most one save per interval: the first edit starts the clock, later edits ride along
    timer ??= setTimeout(save, SAVE_INTERVAL_MS);
  }

  mode.addEventListener("change", () => {
    if (mode.value !== "free") visual.value = CAPSULES[mode.value];
    changed();
  });

  const dialog = document.getElementById("config-dialog");
  const form = h("form.config", { method: "dialog" },
    h("h2#config-title", {}, title),
    field("Title", title_, ["title"]),
    h("fieldset", {}, h("legend", {}, "Format"),
      h("div.row", {}, field("Aspect ratio", aspect, ["format", "aspect_ratio"]), field("Frames per second", fps, ["format", "fps"]),
        field("Target duration (s)", duration, ["format", "target_duration_s"]), field("Segment length (s)", segment, ["format", "segment_length_s"]))),
    field("Visual style", mode, ["visual_style"]),
    visual,
    field("Written style", written, ["written_style"]),
    field("Story rules", rules, ["story_rules"]),
    field("Keyframe candidates per frame", candidates, ["frame_candidates"]),
    h("div.actions", {},
      status,
      proposal ? h("button", { type: "button", value: "cancel", onclick: () => close(false) }, "Cancel") : null,
      proposal
        ? h("button.primary#accept-config", { type: "submit" }, "Accept and save")
        : h("button.primary", { type: "button", onclick: () => close(true) }, "Done")),
  );
  form.addEventListener("input", changed);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const problem = invalid();
    if (problem) {
      status.textContent = `Not saved — ${problem}`;
      return;
    }
    try {
      await accept(read());
      dirty = false;
      dialog.close();
    } catch (error) {
      status.textContent = error.message;
    }
  });

  async function close(flush) {
    if (flush && invalid()) flush = false; // nothing invalid is sent: ask before dropping it
    if (flush && timer) {
      clearTimeout(timer);
      await save();
    }
    await saving;
    if (flush || !dirty || window.confirm("Discard the changes you made?")) {
      dirty = false;
      dialog.close();
    }
  }

  dialog.replaceChildren(form);
  dialog.onclose = () => onClose?.();
  dialog.oncancel = (event) => {
    event.preventDefault();
    close(!proposal);
  };
  dialog.showModal();
  title_.focus();
}
