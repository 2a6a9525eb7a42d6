// Tiny DOM helpers: build elements without a framework or a build step.

/**
 * Create an element.
 * @param {string} tag - tag name with optional classes and id: "button.primary#save"
 * @param {object} [attrs] - attributes; `on*` functions become listeners, `class`, `dataset`
 * @param {...(Node|string|null|undefined|false|Array)} children
 */
export function h(tag, attrs = {}, ...children) {
  const [name, ...parts] = tag.split(/(?=[.#])/);
  const el = document.createElement(name);
  const classes = parts.filter((p) => p.startsWith(".")).map((p) => p.slice(1));
  const id = parts.find((p) => p.startsWith("#"));
  if (classes.length) el.className = classes.join(" ");
  if (id) el.id = id.slice(1);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      el.className = [el.className, value].filter(Boolean).join(" ");
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key in el && typeof value !== "string") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : value);
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** "master_script" → "Master script". */
export function label(name) {
  const text = String(name ?? "").replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** "Scene 2 · Frames" for a stage in a scene's production, the stage alone outside one. */
export function inScene(scene, stage) {
  return scene ? `Scene ${scene} · ${label(stage)}` : label(stage);
}

/** A short relative time: "just now", "5 min ago", or the date. */
export function ago(iso) {
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

/**
 * Show a short message at the bottom of the screen (errors stay longer). With a modal open,
 * the messages show inside it: everything outside a modal is inert, under its backdrop.
 */
export function toast(message, { error = false } = {}) {
  const box = document.getElementById("toast");
  const modal = [...document.querySelectorAll("dialog:modal")].at(-1);
  if (modal && box.parentElement !== modal) {
    modal.append(box);
    modal.addEventListener("close", () => document.body.append(box), { once: true });
  }
  const item = h("div.toast-item", { class: error ? "error" : "", role: error ? "alert" : "status" }, message);
  box.append(item);
  setTimeout(() => item.remove(), error ? 8000 : 3000);
}
