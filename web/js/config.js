// The configuration modal. One component, two ways in:
//  - from the Configuration tab: the saved configuration, edits auto-saved (at most one
//    save per second while typing);
//  - from a gate that proposes configuration: the proposal merged over the saved values,
//    nothing saved until "Accept and save".
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
 * @param {(config: object) => Promise<object>} [options.autosave] - saves, answers the saved config
 * @param {(config: object) => Promise<void>} [options.accept] - proposal mode: accept and save
 * @param {() => void} [options.onClose]
 */
export function openConfig({ title, saved, proposed, autosave, accept, onClose }) {
  const proposal = proposed !== undefined;
  let values = mergeConfig(mergeConfig(DEFAULTS, saved), proposal ? proposed : {});
  let timer = null;
  let saving = Promise.resolve();
  const status = h("span.save-status", { role: "status", "aria-live": "polite" }, proposal ? "Proposed — not saved yet" : "All changes saved");

  const field = (labelText, input) => h("label.field", {}, labelText, input);
  const input = (name, attrs = {}) => h("input", { name, ...attrs });
  const title_ = input("title", { value: values.title, maxlength: 200 });
  const aspect = h("select", { name: "aspect_ratio" }, ASPECT_RATIOS.map((r) => h("option", { value: r, selected: values.format.aspect_ratio === r }, r)));
  const fps = input("fps", { type: "number", min: 1, max: 60, value: values.format.fps });
  const duration = input("target_duration_s", { type: "number", min: 1, max: 3600, step: "any", value: values.format.target_duration_s });
  const segment = input("segment_length_s", { type: "number", min: 0.5, max: 60, step: "any", value: values.format.segment_length_s });
  const capsuleName = Object.keys(CAPSULES).find((name) => CAPSULES[name] === values.visual_style);
  const mode = h("select", { name: "style_mode", "aria-label": "Visual style kind" },
    h("option", { value: "free", selected: !capsuleName }, "Free-text visual description"),
    Object.keys(CAPSULES).map((name) => h("option", { value: name, selected: capsuleName === name }, `Style capsule: ${name}`)));
  const visual = h("textarea", { name: "visual_style", rows: 3 }, values.visual_style);
  const written = h("textarea", { name: "written_style", rows: 2 }, values.written_style);
  const candidates = input("frame_candidates", { type: "number", min: 1, max: 8, value: values.frame_candidates });
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

  function changed() {
    dirty = true;
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
    field("Title", title_),
    h("fieldset", {}, h("legend", {}, "Format"),
      h("div.row", {}, field("Aspect ratio", aspect), field("Frames per second", fps),
        field("Target duration (s)", duration), field("Segment length (s)", segment))),
    field("Visual style", mode),
    visual,
    field("Written style", written),
    field("Story rules", rules),
    field("Keyframe candidates per frame", candidates),
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
    try {
      await accept(read());
      dirty = false;
      dialog.close();
    } catch (error) {
      status.textContent = error.message;
    }
  });

  async function close(flush) {
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
