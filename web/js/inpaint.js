// Inpainting: paint a mask over a keyframe or a reference sheet with a brush, say what should
// be there instead, and the stage's agent adds a new candidate for that image.

import { api, showFile } from "./api.js";
import { h, toast } from "./dom.js";

/** The mask as ComfyUI wants it: white where the frame is repainted, black elsewhere. */
export function maskPng(paint) {
  const mask = document.createElement("canvas");
  mask.width = paint.width;
  mask.height = paint.height;
  const ctx = mask.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, mask.width, mask.height);
  const painted = paint.getContext("2d").getImageData(0, 0, paint.width, paint.height);
  const out = ctx.getImageData(0, 0, mask.width, mask.height);
  for (let i = 3; i < painted.data.length; i += 4) {
    if (painted.data[i] > 0) out.data.fill(255, i - 3, i);
  }
  ctx.putImageData(out, 0, 0);
  return mask.toDataURL("image/png");
}

/**
 * The inpainting dialog of one image: `title` names it ("shot 1A · end frame"), `target` is
 * what the decision's `inpaint` names it by ({shot, position} or {entity, look}), `file` the
 * candidate painted on.
 */
export function openInpaint({ title, target, file, gate, view }) {
  const dialog = h("dialog.inpaint-dialog", { "aria-label": `Inpaint ${title}` });
  const img = h("img", { alt: title });
  const paint = h("canvas.mask", { "aria-label": "Mask: paint over what should change" });
  const size = h("input", { type: "range", min: 4, max: 120, value: 32, "aria-label": "Brush size" });
  const prompt = h("input", { name: "prompt", required: true, placeholder: "What should be there instead?", autocomplete: "off" });
  let painting = false;
  let empty = true;

  // Sizing a canvas erases it, so the mask takes strokes only once the image has its size.
  img.addEventListener("load", () => {
    paint.width = img.naturalWidth;
    paint.height = img.naturalHeight;
    empty = true;
    paint.dataset.ready = "true";
  });
  const dab = (event) => {
    if (!paint.dataset.ready) return;
    const box = paint.getBoundingClientRect();
    const scale = paint.width / box.width;
    const ctx = paint.getContext("2d");
    ctx.fillStyle = "rgba(255, 64, 160, 0.55)";
    ctx.beginPath();
    ctx.arc((event.clientX - box.left) * scale, (event.clientY - box.top) * scale, (Number(size.value) * scale) / 2, 0, Math.PI * 2);
    ctx.fill();
    empty = false;
  };
  paint.addEventListener("pointerdown", (event) => {
    painting = true;
    paint.setPointerCapture(event.pointerId);
    dab(event);
  });
  paint.addEventListener("pointermove", (event) => painting && dab(event));
  paint.addEventListener("pointerup", () => (painting = false));

  const form = h("form", { method: "dialog" },
    h("h2", {}, `Inpaint ${title}`),
    h("div.inpaint-stage", {}, showFile(img, file), paint),
    h("div.row", {},
      h("label.field", {}, "Brush", size),
      h("button", { type: "button", onclick: () => { paint.getContext("2d").clearRect(0, 0, paint.width, paint.height); empty = true; } }, "Clear mask")),
    h("label.field", {}, "Prompt", prompt),
    h("div.actions", {},
      h("button", { type: "button", onclick: () => dialog.close() }, "Cancel"),
      h("button.primary", { type: "submit" }, "Inpaint")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (empty) {
      toast("Paint over the part of the image that should change first.", { error: true });
      return;
    }
    try {
      const mask = await api("/files", { method: "POST", body: { data_url: maskPng(paint) } });
      dialog.close();
      await view.decide(gate, {
        type: "reject",
        message: prompt.value.trim(),
        inpaint: { ...target, mask: mask.key, source: file.key },
      });
    } catch (error) {
      toast(error.message, { error: true });
    }
  });
  dialog.append(form);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}
