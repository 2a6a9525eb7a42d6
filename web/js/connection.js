// Whether the server can be reached. Once a request fails for want of a server, a banner
// says so, the page is marked (nothing shows as "running" while nobody can know), and /ok is
// polled until the server answers again; then "auteur:online" tells the views to reload.

const POLL_MS = 2000;
let down = false;

const banner = () => document.getElementById("connection");

async function poll() {
  while (down) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    try {
      if ((await fetch("/ok", { cache: "no-store" })).ok) connection.reached();
    } catch {
      // still gone: keep polling
    }
  }
}

export const connection = {
  /** A request found no server. */
  lost() {
    if (down) return;
    down = true;
    document.body.dataset.connection = "lost";
    const box = banner();
    box.textContent = "Lost the connection to the Auteur server. What is shown may be out of date; reconnecting…";
    box.hidden = false;
    poll();
  },
  /** A request got an answer. */
  reached() {
    if (!down) return;
    down = false;
    delete document.body.dataset.connection;
    banner().hidden = true;
    window.dispatchEvent(new Event("auteur:online"));
  },
};
