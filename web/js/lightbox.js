// Images at a size that can be judged: one opened large, or two candidates side by side.

import { showFile } from "./api.js";
import { h } from "./dom.js";

function open(dialog) {
  dialog.append(h("div.actions", {}, h("button", { type: "button", onclick: () => dialog.close() }, "Close")));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

/** One image as large as the window allows. */
export function openLarge(file, alt) {
  open(h("dialog.lightbox", { "aria-label": alt },
    h("h2", {}, alt),
    showFile(h("img.large", { alt }), file)));
}

/**
 * Two of `candidates` (each with a `file` and a `name`) side by side, each side's pick
 * changeable; starts with `first` and `second` (indexes).
 */
export function openCompare(title, candidates, first, second) {
  const side = (start, which) => {
    const img = h("img.large", { alt: "" });
    const pick = h("select", { "aria-label": `${which} image` },
      candidates.map((c, i) => h("option", { value: i, selected: i === start }, c.name)));
    const show = () => {
      const candidate = candidates[Number(pick.value)];
      img.alt = `${title}: ${candidate.name}`;
      showFile(img, candidate.file);
    };
    pick.addEventListener("change", show);
    show();
    return h("figure.compare-side", { dataset: { side: which.toLowerCase() } }, img, h("figcaption", {}, pick));
  };
  open(h("dialog.compare", { "aria-label": `Compare: ${title}` },
    h("h2", {}, `Compare: ${title}`),
    h("div.compare-pair", {}, side(first, "Left"), side(second, "Right"))));
}
