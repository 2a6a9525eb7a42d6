// The project view: the stage pipeline, the project's artifacts (current versions, what is
// stale, their history, reopening a stage), its branches, every run of every workflow type,
// the approval queue and the chat. What stages and artifacts there are, and how each
// artifact renders, comes from the workflow registry (/assistants), never from stage names.
// State is rebuilt from the API on every open; live updates come from two SSE streams (the
// approval queue, and each active run, resumed from its last event id after a reload). A
// render replaces only the regions whose content changed: typed text, open details, focus
// and loaded images elsewhere stay as they are.

import { api, follow } from "./api.js";
import { approveGate, isEdited, madeByScene, renderArtifact, sceneOnly, scenesIn, staleText } from "./artifacts.js";
import { openConfig } from "./config.js";
import { ago, h, inScene, label, mount, toast } from "./dom.js";
import { STATUS_WORDS, stageLine } from "./projects.js";
import { STREAM_MODES, artifactOrder, artifactTypes, openNewRun, workflows } from "./workflow.js";

export const STATUSES = {
  "not-started": "Not started",
  running: "Running",
  awaiting: "Awaiting approval",
  approved: "Approved",
  error: "Error",
};
// The status in a word beside each stage's colour (never colour alone).
const STATUS_MARKS = { "not-started": "to do", running: "running", awaiting: "review", approved: "done", error: "failed" };
const ACTIVE = new Set(["pending", "running"]);
const RUN_LIMIT = 10;
const PROGRESS_LIMIT = 40;
// The HTML each region was drawn from: a region is replaced only when that changes.
const drawn = new WeakMap();

/** A short stable digest of a text (cyrb53): the same decision gets the same key. */
function digest(text) {
  let a = 0xdeadbeef;
  let b = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 2654435761);
    b = Math.imul(b ^ c, 1597334677);
  }
  a = Math.imul(a ^ (a >>> 16), 2246822507) ^ Math.imul(b ^ (b >>> 13), 3266489909);
  b = Math.imul(b ^ (b >>> 16), 2246822507) ^ Math.imul(a ^ (a >>> 13), 3266489909);
  return (4294967296 * (2097151 & b) + (a >>> 0)).toString(36);
}

/** The thread's values with the running stage's own (newer) values laid over them. */
export function mergedValues(state) {
  let values = { ...(state?.values ?? {}) };
  for (const task of state?.tasks ?? []) {
    if (task.state?.values) values = { ...values, ...task.state.values };
  }
  return values;
}

export class ProjectView {
  constructor(root, projectId, tab, scene = null) {
    this.root = root;
    this.projectId = projectId;
    this.requestedTab = tab;
    this.follows = new Map();
    this.progress = [];
    this.values = {};
    this.approvals = [];
    this.runs = [];
    this.threads = [];
    this.stages = [];
    this.sceneStages = [];
    // the scene picked in the scene navigator (kept in the URL after the tab): the stage's
    // tab shows that scene's part
    this.sceneShown = tab ? scene : null;
    this.current = new Map();
    this.versions = [];
    this.branches = [];
    this.thread = null;
    this.elsewhere = 0;
    // gates answered here, until the server's view catches up: what was approved (shown as
    // approved while the next stage runs) and what got feedback (shown while regenerating)
    this.decided = new Map();
    this.regenerating = new Map();
    this.deciding = new Set();
    // the gate whose proposal is open in its structured editor, and whose changes are shown
    this.editing = null;
    this.showChanges = null;
  }

  // --- loading -------------------------------------------------------------------------

  async open() {
    await this.load();
    // A tab the person chose (in the URL, or last time) sticks; otherwise the view follows
    // the production until there is something to look at, and then stays there.
    this.tab = this.requestedTab ?? this.storedTab();
    this.tabChosen = Boolean(this.tab);
    this.render();
    this.queue = follow("/approvals/stream", { endless: true, onEvent: (event) => this.onQueue(event.data) });
    this.online = () => this.refresh();
    window.addEventListener("auteur:online", this.online);
    for (const run of this.runs.filter((r) => ACTIVE.has(r.status))) this.followRun(run);
  }

  close() {
    this.queue?.stop();
    window.removeEventListener("auteur:online", this.online);
    for (const stream of this.follows.values()) stream.stop();
    this.follows.clear();
    this.closed = true;
  }

  /**
   * Fetch the project's view from the API. Loads overlap (a queue event and a run's end
   * arrive together); only the latest one started is applied, so an answer that comes back
   * late can never put an older view over a newer one. Returns whether this one applied.
   */
  async load() {
    const seq = (this.loadSeq = (this.loadSeq ?? 0) + 1);
    const id = encodeURIComponent(this.projectId);
    const [project, threads, approvals, runs, artifacts, branches, progress, assistants] = await Promise.all([
      api(`/projects/${id}`),
      api("/threads/search", {
        method: "POST",
        body: { metadata: { project_id: this.projectId }, limit: 100, sort_by: "updated_at", sort_order: "desc" },
      }),
      api(`/approvals?project_id=${id}&limit=50`),
      api(`/projects/${id}/runs?limit=${RUN_LIMIT}`),
      api(`/projects/${id}/artifacts?history=true`),
      api(`/projects/${id}/branches`),
      api(`/projects/${id}/progress?limit=${PROGRESS_LIMIT}`),
      workflows(),
    ]);
    // the live thread: the one waiting for the person, else the one that moved last
    const waiting = approvals.items[0]?.thread_id;
    const thread = threads.find((t) => t.thread_id === waiting) ?? threads[0] ?? null;
    const state = thread ? await api(`/threads/${thread.thread_id}/state?subgraphs=true`) : null;
    if (seq !== this.loadSeq) return false;
    this.project = project;
    this.threads = threads;
    this.approvals = approvals.items;
    this.runs = runs;
    this.branch = artifacts.branch;
    this.current = new Map(artifacts.current.map((row) => [row.kind, row]));
    this.versions = artifacts.versions ?? [];
    this.branches = branches;
    this.progress = progress;
    // what was answered here gives way to what the server has: a new gate, a new version,
    // or (for a regeneration) a run that ended without one
    for (const key of [...this.approvals.map((a) => a.stage), ...this.current.keys()]) this.decided.delete(key);
    for (const key of this.regenerating.keys()) {
      if (this.approvals.some((a) => a.stage === key) || !runs.some((r) => ACTIVE.has(r.status))) this.regenerating.delete(key);
    }
    this.assistants = new Map(assistants.map((a) => [a.graph_id, a]));
    this.types = artifactTypes(assistants);
    this.thread = thread;
    this.values = mergedValues(state);
    // the stages of every workflow the project ran, and whatever else it has, in order
    const used = new Set([...threads.map((t) => t.metadata?.graph_id), ...runs.map((r) => r.workflow)]);
    const keys = new Set([
      ...[...used].flatMap((name) => (this.assistants.get(name)?.metadata?.artifacts ?? []).map((a) => a.key)),
      ...this.current.keys(),
      ...this.approvals.map((a) => a.stage),
    ]);
    this.stages = artifactOrder(assistants).filter((key) => keys.has(key));
    for (const key of keys) if (!this.stages.includes(key)) this.stages.push(key);
    // the stages made once per scene (a production's scene cycle), in the same order
    const cycle = new Set([...used].flatMap((name) => this.assistants.get(name)?.metadata?.scene_stages ?? []));
    this.sceneStages = this.stages.filter((key) => cycle.has(key));
    return true;
  }

  async refresh() {
    if (this.closed) return;
    try {
      if (!(await this.load())) return; // a later refresh is under way and will render
    } catch (error) {
      toast(`Could not refresh: ${error.message}`, { error: true });
      return;
    }
    for (const run of this.runs.filter((r) => ACTIVE.has(r.status))) this.followRun(run);
    this.render();
  }

  /**
   * A queue change: this project's gates changed (refresh), or only another project's (the
   * count of what waits elsewhere changes, nothing else).
   */
  onQueue(queue) {
    const items = queue?.items ?? [];
    const mine = items.filter((a) => a.project_id === this.projectId).map((a) => a.approval_id).sort();
    this.elsewhere = (queue?.total ?? items.length) - mine.length;
    const shown = this.approvals.map((a) => a.approval_id).sort();
    if (mine.join() !== shown.join()) this.refresh();
    else this.render();
  }

  followRun(run) {
    if (this.follows.has(run.run_id)) return;
    const modes = STREAM_MODES.map((mode) => `stream_mode=${mode}`).join("&");
    const stream = follow(`/threads/${run.thread_id}/runs/${run.run_id}/stream?${modes}`, {
      resumeKey: `auteur.lastEvent.${run.run_id}`,
      onEvent: (event) => this.onRunEvent(run, event),
      onEnd: () => this.onRunEnd(run),
    });
    this.follows.set(run.run_id, stream);
  }

  onRunEvent(run, event) {
    const kind = event.event.split("|")[0];
    const row = this.runs.find((r) => r.run_id === run.run_id);
    if (kind === "custom" && event.data?.message) {
      if (row) Object.assign(row, { stage: event.data.stage, message: event.data.message, status: "running" });
      const id = Number(event.id);
      if (!this.progress.some((p) => p.id === id)) {
        this.progress.push({ id, run_id: run.run_id, stage: event.data.stage, message: event.data.message });
        this.progress = this.progress.slice(-PROGRESS_LIMIT);
      }
      this.render();
    } else if (kind === "error") {
      if (row) Object.assign(row, { status: "error", error: event.data });
      this.render();
    }
  }

  async onRunEnd(run) {
    this.follows.delete(run.run_id);
    sessionStorage.removeItem(`auteur.lastEvent.${run.run_id}`);
    await this.refresh();
    const done = this.runs.find((r) => r.run_id === run.run_id);
    if (done?.status !== "success") return;
    // What a workflow makes after its last gate (an assembled video) nobody has seen yet:
    // it opens by itself when the run completes. Nothing else moves the tab.
    const workflow = this.assistants.get(done.workflow)?.metadata;
    const last = workflow?.artifacts?.at(-1)?.key;
    if (last && !workflow.stages.includes(last) && this.approved(last)) this.select(last);
  }

  // --- where the production is ----------------------------------------------------------

  storedTab() {
    const tab = localStorage.getItem(`auteur.tab.${this.projectId}`);
    return tab && (this.stages.includes(tab) || tab === "configuration") ? tab : null;
  }

  /** An artifact the project has (current version), or the live thread approved. */
  approved(key) {
    return this.current.has(key) || this.decided.has(key) || Boolean(this.values[key]) || (this.values.approved ?? []).includes(key);
  }

  /**
   * The artifact a run is working on: the stage of its latest progress when that is one of
   * its workflow's artifacts, else the first of them not approved yet (a step without a gate
   * of its own, such as an assembly, reports under its own name).
   */
  runKey(run) {
    if (!run) return null;
    const keys = (this.assistants.get(run.workflow)?.metadata?.artifacts ?? []).map((a) => a.key);
    if (keys.includes(run.stage)) return run.stage;
    return keys.find((key) => !this.approved(key)) ?? run.stage ?? null;
  }

  /** The stage to open at: the gate waiting, else the stage running, else the last approved. */
  currentStage() {
    const pending = this.approvals[0]?.stage;
    if (pending) return pending;
    const active = this.runKey(this.runs.find((r) => ACTIVE.has(r.status)));
    if (active && this.stages.includes(active)) return active;
    return [...this.stages].reverse().find((key) => this.approved(key)) ?? this.stages[0] ?? "configuration";
  }

  stageStatus(stage) {
    if (this.approvals.some((a) => a.stage === stage)) return "awaiting";
    if (this.runs.some((r) => ACTIVE.has(r.status) && this.runKey(r) === stage)) return "running";
    if (this.approved(stage)) return "approved";
    const latest = this.runs[0];
    if (latest?.status === "error" && this.runKey(latest) === stage) return "error";
    return "not-started";
  }

  select(tab, scene = null) {
    this.tab = tab;
    this.sceneShown = scene;
    this.tabChosen = true;
    localStorage.setItem(`auteur.tab.${this.projectId}`, tab);
    const path = `#/projects/${encodeURIComponent(this.projectId)}/${tab}${scene ? `/${scene}` : ""}`;
    history.replaceState(null, "", path);
    this.render();
  }

  // --- rendering -------------------------------------------------------------------------

  render() {
    if (this.closed) return;
    if (!this.tab || (!this.tabChosen && !this.hasSomethingToShow)) {
      this.tab = this.currentStage();
      this.hasSomethingToShow = this.approvals.length > 0 || (this.values.approved ?? []).length > 0;
    }
    const crumbs = document.getElementById("crumbs");
    mount(crumbs, h("a", { href: "#/" }, "Projects"), " / ", h("span", {}, this.project.name));
    const focused = document.activeElement?.id;
    this.update(
      h("section.project", {},
        h("div.project-head", {},
          h("h1", {}, this.project.name),
          h("p.stage-line", { dataset: { region: "stage-line" } }, stageLine(this.runs[0]?.stage ?? this.thread?.stage, { ...this.runs[0], scene: this.approvals[0]?.payload.scene ?? this.values.scene })),
          h("button.primary#new-run", { type: "button", onclick: () => this.start() }, "New run"),
        ),
        this.pipeline(),
        this.sceneNavigator(),
        h("div.layout", {},
          h("div.main", {},
            this.tabs(),
            h("div.panel#artifact", { role: "tabpanel", tabindex: 0, "aria-labelledby": `tab-${this.tab}`, dataset: { region: "artifact" } }, this.panel()),
            this.artifactsSection(),
            this.branchesSection(),
            this.workflowRuns(),
            this.history()),
          h("aside.side", {}, this.queueSection(), this.chat()),
        ),
      ),
    );
    if (focused && document.activeElement?.id !== focused) document.getElementById(focused)?.focus();
  }

  /**
   * Put `next` on screen: the first time whole, then region by region (each element with a
   * `data-region`), replacing only those drawn from different HTML than before.
   */
  update(next) {
    const regions = (root) => new Map([...root.querySelectorAll("[data-region]")].map((el) => [el.dataset.region, el]));
    const old = this.root.querySelector("section.project") ? regions(this.root) : null;
    const replaced = [];
    if (!old) {
      mount(this.root, next);
      replaced.push(...regions(next).values());
    } else {
      for (const [name, fresh] of regions(next)) {
        const shown = old.get(name);
        if (shown && drawn.get(shown) === fresh.outerHTML) continue;
        shown?.replaceWith(fresh);
        replaced.push(fresh);
      }
    }
    for (const el of replaced) drawn.set(el, el.outerHTML);
    const messages = replaced.find((el) => el.dataset.region === "messages");
    if (messages) messages.scrollTop = messages.scrollHeight; // the newest message in view
  }

  pipeline() {
    return h("nav.pipeline#pipeline", { "aria-label": "Stage pipeline", dataset: { region: "pipeline" } },
      h("ol", {}, this.stages.map((stage) => {
        const status = this.stageStatus(stage);
        return h("li", {},
          h("button.stage", {
            type: "button",
            class: `status-${status}${this.tab === stage ? " current" : ""}`,
            "aria-label": `${label(stage)}: ${STATUSES[status]}`,
            dataset: { stage, status },
            onclick: () => this.select(stage),
          }, h("span.dot", { "aria-hidden": "true" }), label(stage), h("span.mark", { "aria-hidden": "true" }, STATUS_MARKS[status])));
      })),
      h("ul.legend", { "aria-label": "Legend" },
        Object.entries(STATUSES).map(([key, text]) => h("li", { class: `status-${key}` }, h("span.dot", { "aria-hidden": "true" }), text))),
    );
  }

  /**
   * Each scene of the production (from the master script) with the stages made once per
   * scene and where each is: waiting for the person, running, approved or not started. A
   * scene's stage is approved when the approved artifact has a part of that scene, or when
   * anything after it in the production has started.
   */
  sceneNavigator() {
    const master = this.values.master_script ?? this.current.get("master_script")?.data;
    const scenes = master?.scenes ?? [];
    // always drawn (a region appears only where one was): empty until there are scenes
    if (!this.sceneStages.length || !scenes.length) return h("div#scene-navigator", { hidden: true, dataset: { region: "scenes" } });
    const active = this.runs.find((r) => ACTIVE.has(r.status));
    const status = (scene, stage) => {
      if (this.approvals.some((a) => a.stage === stage && a.payload.scene === scene)) return "awaiting";
      if (active && this.runKey(active) === stage && this.values.scene === scene) return "running";
      const type = this.types.get(stage);
      const made = [this.decided.get(stage), this.values[stage], this.current.get(stage)?.data];
      return made.some((data) => scenesIn(type, data).has(scene)) ? "approved" : "not-started";
    };
    const rows = scenes.map((scene) => ({ scene, stages: this.sceneStages.map((stage) => ({ stage, status: status(scene.number, stage) })) }));
    const cells = rows.flatMap((row) => row.stages);
    const last = cells.findLastIndex((cell) => cell.status !== "not-started");
    cells.slice(0, Math.max(last, 0)).forEach((cell) => {
      if (cell.status === "not-started") cell.status = "approved";
    });
    return h("nav.scene-navigator#scene-navigator", { "aria-labelledby": "scenes-title", dataset: { region: "scenes" } },
      h("h2#scenes-title", {}, "Scenes"),
      h("ol.scenes", {}, rows.map(({ scene, stages }) => h("li.scene-row", { dataset: { scene: scene.number } },
        h("h3", {}, `Scene ${scene.number}`, h("span.muted", {}, ` ${scene.slugline ?? ""}`)),
        h("ol.scene-stages", {}, stages.map(({ stage, status }) => h("li", {},
          h("button.stage", {
            type: "button",
            class: `status-${status}${this.tab === stage && this.sceneShown === scene.number ? " current" : ""}`,
            "aria-label": `${inScene(scene.number, stage)}: ${STATUSES[status]}`,
            dataset: { stage, status },
            onclick: () => this.select(stage, scene.number),
          }, h("span.dot", { "aria-hidden": "true" }), label(stage), h("span.mark", { "aria-hidden": "true" }, STATUS_MARKS[status]))))))),
      ));
  }

  tabs() {
    const tabs = [...this.stages, "configuration"];
    // one tab stop; the arrow keys, Home and End move between the tabs
    const keys = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    const onkeydown = (event) => {
      const at = tabs.indexOf(this.tab);
      let to = null;
      if (event.key in keys) to = tabs[(at + keys[event.key] + tabs.length) % tabs.length];
      else if (event.key === "Home") to = tabs[0];
      else if (event.key === "End") to = tabs.at(-1);
      if (to === null) return;
      event.preventDefault();
      this.select(to);
      document.getElementById(`tab-${to}`)?.focus();
    };
    return h("div.tabs", { role: "tablist", "aria-label": "Stages", onkeydown, dataset: { region: "tabs" } },
      tabs.map((tab) => h("button.tab", {
        type: "button",
        role: "tab",
        id: `tab-${tab}`,
        tabindex: this.tab === tab ? 0 : -1,
        "aria-selected": String(this.tab === tab),
        "aria-controls": "artifact",
        onclick: () => this.select(tab),
      }, label(tab))));
  }

  panel() {
    if (this.tab === "configuration") return this.configurationPanel();
    const key = this.tab;
    const type = this.types.get(key);
    // a scene picked in the navigator: that scene's gate, or its part of the artifact
    const scene = madeByScene(type) ? this.sceneShown : null;
    const ofScene = (gate) => !scene || !gate.payload.scene || gate.payload.scene === scene;
    const part = (data) => (scene ? sceneOnly(type, data, scene) : data);
    const everyScene = scene
      ? h("p.scene-shown", {}, `Scene ${scene} only. `, h("button.link", { type: "button", onclick: () => this.select(key) }, "Show every scene"))
      : null;
    const gate = this.approvals.find((a) => a.stage === key && ofScene(a));
    if (gate) {
      return renderArtifact({ key, type: gate.payload.artifact_type ?? type }, gate.payload.action_requests[0].args, { gate, view: this, values: this.values });
    }
    const run = this.runs.find((r) => ACTIVE.has(r.status) && this.runKey(r) === key);
    const previous = this.regenerating.get(key);
    if (previous && ofScene(previous)) {
      // the draft the feedback was on stays in view until the new one comes
      const regenerating = h("p.regenerating", { role: "status" }, "Regenerating from your feedback… ", h("span.live", {}, run?.message ?? ""));
      return renderArtifact({ key, type: previous.payload.artifact_type ?? type }, previous.payload.action_requests[0].args, { view: this, values: this.values, extra: regenerating, state: "regenerating", scene: previous.payload.scene });
    }
    // just approved here: what was approved, until the server records its version
    if (this.decided.has(key)) return renderArtifact({ key, type }, part(this.decided.get(key)), { view: this, values: this.values, scene, extra: everyScene });
    const row = this.current.get(key);
    if (row) return renderArtifact({ key, type }, part(row.data), { view: this, values: this.values, scene, extra: [everyScene, this.versionInfo(row)] });
    if (this.values[key]) return renderArtifact({ key, type }, part(this.values[key]), { view: this, values: this.values, scene, extra: everyScene });
    const status = this.stageStatus(key);
    if (status === "running") {
      return h("p.placeholder", {}, `The agent is working on the ${label(key).toLowerCase()}… `, h("span.live", {}, run?.message ?? ""));
    }
    if (status === "error") {
      return h("div.failed", {},
        h("p.placeholder.error", {}, `This stage failed: ${errorText(this.runs[0]?.error)}`),
        h("button.primary", { type: "button", disabled: this.deciding.has(this.runs[0].run_id), onclick: () => this.resume(this.runs[0]) }, "Retry from the last checkpoint"));
    }
    return h("p.placeholder", {}, `${label(key)}: not started yet.`);
  }

  /** The current version of an artifact: where it came from, whether it is stale, its history. */
  versionInfo(row) {
    const history = this.versions.filter((v) => v.kind === row.kind);
    const reopenable = row.stage && row.thread_id && this.threads.some((t) => t.thread_id === row.thread_id);
    return h("div.version-info", { dataset: { kind: row.kind, version: row.version } },
      h("p", {},
        h("strong", {}, `v${row.version}`),
        ` on ${row.branch} · approved by ${row.approved_by ?? "—"} ${row.approved_at ? ago(row.approved_at) : ""}`,
        row.stale ? h("span.chip.stale", { title: staleWhy(row) }, "stale") : null,
        reopenable ? h("button.reopen", { type: "button", onclick: () => this.reopen(row) }, "Reopen") : null),
      row.stale ? h("p.stale-warning", {}, staleWhy(row)) : null,
      history.length > 1
        ? h("details.versions", {},
          h("summary", {}, `History (${history.length} versions)`),
          h("ol", {}, history.map((v) => h("li", { dataset: { version: v.version }, class: v.version === row.version ? "current" : "" },
            `v${v.version} on ${v.branch}`,
            v.parent_version ? ` (from v${v.parent_version})` : "",
            ` · ${v.approved_by ?? "—"} · ${v.approved_at ? ago(v.approved_at) : ""}`,
            v.version === row.version ? h("span.chip.status-approved", {}, "current") : null))))
        : null,
    );
  }

  artifactsSection() {
    const rows = this.stages.map((key) => this.current.get(key)).filter(Boolean);
    return h("section.artifacts-list#project-artifacts", { "aria-labelledby": "artifacts-title", dataset: { region: "artifacts" } },
      h("h2#artifacts-title", {}, `Artifacts on ${this.branch ?? "main"}`),
      rows.length
        ? h("table.artifact-versions", {},
          h("thead", {}, h("tr", {}, ["Artifact", "Version", "Versions", "Approved", ""].map((t) => h("th", {}, t)))),
          h("tbody", {}, rows.map((row) => h("tr", { dataset: { kind: row.kind, version: row.version, stale: String(row.stale) } },
            h("td", {}, h("button.link", { type: "button", onclick: () => this.select(row.kind) }, label(row.kind))),
            h("td.version", {}, `v${row.version}`),
            h("td", {}, String(this.versions.filter((v) => v.kind === row.kind).length)),
            h("td", {}, row.approved_at ? ago(row.approved_at) : "—"),
            h("td", {}, row.stale ? h("span.chip.stale", { title: staleWhy(row) }, `stale: ${staleWhy(row)}`) : null)))))
        : h("p.muted", {}, "Nothing approved yet."),
    );
  }

  branchesSection() {
    return h("section.branches#branches", { "aria-labelledby": "branches-title", dataset: { region: "branches" } },
      h("h2#branches-title", {}, "Branches"),
      h("ul.branch-list", {}, this.branches.map((b) => h("li.branch", { dataset: { branch: b.branch, current: String(b.current) } },
        h("code", {}, b.branch),
        b.parent ? h("span.muted", {}, ` from ${b.parent}, reopened at ${label(b.stage).toLowerCase()}`) : null,
        b.current
          ? h("span.chip.status-approved", {}, "current")
          : h("button", { type: "button", onclick: () => this.switchTo(b.branch) }, "Switch"),
      ))),
    );
  }

  /** Every workflow run of the project: one thread each, whatever its workflow type. */
  workflowRuns() {
    return h("section.workflow-runs#workflow-runs", { "aria-labelledby": "workflow-runs-title", dataset: { region: "workflow-runs" } },
      h("h2#workflow-runs-title", {}, "Workflow runs"),
      this.threads.length
        ? h("table.threads", {},
          h("thead", {}, h("tr", {}, ["Workflow", "Status", "Stage", "Started", "Updated"].map((t) => h("th", {}, t)))),
          h("tbody", {}, this.threads.map((t) => h("tr", { dataset: { thread: t.thread_id, workflow: t.metadata?.graph_id ?? "", status: t.status } },
            h("td", {}, label(t.metadata?.graph_id ?? "—")),
            h("td", {}, h("span.chip", { class: `status-${t.status}` }, STATUS_WORDS[t.status] ?? t.status)),
            h("td", {}, label(t.stage ?? "")),
            h("td", {}, ago(t.created_at)),
            h("td", {}, ago(t.updated_at))))))
        : h("p.muted", {}, "No runs yet."),
    );
  }

  configurationPanel() {
    const config = this.project.config ?? {};
    const format = config.format ?? {};
    return h("div.config-summary", {},
      h("h2", {}, "Configuration"),
      h("dl", {},
        h("dt", {}, "Title"), h("dd", {}, config.title || "—"),
        h("dt", {}, "Format"), h("dd", {}, [format.aspect_ratio ?? "16:9", `${format.fps ?? 12} fps`, `${format.target_duration_s ?? 30} s`, `segments of ${format.segment_length_s ?? 3} s`].join(" · ")),
        h("dt", {}, "Visual style"), h("dd", {}, config.visual_style || "—"),
        h("dt", {}, "Written style"), h("dd", {}, config.written_style || "—"),
        h("dt", {}, "Story rules"), h("dd", {}, (config.story_rules ?? []).length ? h("ul", {}, config.story_rules.map((r) => h("li", {}, r))) : "—"),
      ),
      h("button.primary#edit-config", { type: "button", onclick: () => this.editConfiguration() }, "Edit configuration"),
    );
  }

  editConfiguration() {
    openConfig({
      title: "Project configuration",
      saved: this.project.config ?? {},
      autosave: async (config) => {
        this.project = await api(`/projects/${encodeURIComponent(this.projectId)}`, { method: "PATCH", body: { config } });
        return this.project.config;
      },
      onClose: () => this.render(),
    });
  }

  queueSection() {
    return h("section.queue", { "aria-labelledby": "queue-title", dataset: { region: "queue" } },
      h("h2#queue-title", {}, `Approvals (${this.approvals.length})`),
      this.approvals.length
        ? h("ol.approvals", { tabindex: 0, "aria-label": "Gates waiting for you" }, this.approvals.map((gate) => this.approvalItem(gate)))
        : h("p.muted", {}, "Nothing waiting for you."),
      this.elsewhere ? h("p.elsewhere", {}, h("a", { href: "#/" }, `${this.elsewhere} more waiting in other projects`)) : null,
    );
  }

  approvalItem(gate) {
    const request = gate.payload.action_requests[0];
    const problems = gate.payload.problems ?? [];
    const canApprove = gate.payload.review_configs[0].allowed_decisions.includes("approve") || isEdited(gate);
    return h("li.approval", { dataset: { stage: gate.stage } },
      h("div.approval-head", {}, h("strong", {}, inScene(gate.payload.scene, gate.stage)), h("span.muted", {}, ago(gate.created_at))),
      h("p", {}, request.description),
      staleText(gate.payload.stale) ? h("p.stale-warning", {}, staleText(gate.payload.stale)) : null,
      gate.payload.draft_error ? h("p.error", {}, gate.payload.draft_error) : null,
      gate.payload.error ? h("p.error", {}, gate.payload.error) : null,
      problems.length ? h("ul.problems", {}, problems.map((p) => h("li", {}, p))) : null,
      h("div.actions", {},
        h("button.primary", { type: "button", disabled: this.deciding.has(gate.approval_id) || !canApprove, onclick: () => approveGate(gate, this) }, "Approve"),
        h("button", { type: "button", onclick: () => this.select(gate.stage) }, "Review & edit"),
        h("button", { type: "button", onclick: () => this.focusChat(gate) }, "Feedback"),
      ),
    );
  }

  chat() {
    const gate = this.approvals[0];
    const unsent = `auteur.chat.${this.projectId}`;
    const input = h("textarea#chat-input", {
      rows: 3,
      disabled: !gate,
      "aria-label": "Message to the agents",
      placeholder: gate ? `Feedback on the ${label(gate.stage).toLowerCase()} — e.g. "make it funnier"` : "The agents will ask you when something needs your eyes.",
      oninput: () => sessionStorage.setItem(unsent, input.value),
    });
    input.value = sessionStorage.getItem(unsent) ?? ""; // a property: not part of the drawn HTML
    const form = h("form.chat-form", { dataset: { region: "chat-form" } },
      input,
      h("button.primary", { type: "submit", disabled: !gate || this.deciding.has(gate.approval_id) }, "Send"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const message = input.value.trim();
      if (!message || !gate) return;
      if (await this.decide(gate, { type: "reject", message })) {
        input.value = "";
        sessionStorage.removeItem(unsent);
      }
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
    });
    const turns = (this.values.conversation ?? []).slice(-30);
    return h("section.chat", { "aria-labelledby": "chat-title" },
      h("h2#chat-title", {}, "Chat with the agents"),
      h("ol.messages", { "aria-live": "polite", tabindex: 0, "aria-label": "Conversation", dataset: { region: "messages" } },
        turns.map((turn) => h("li", { class: `turn ${turn.role}` },
          h("span.who", {}, turn.role === "user" ? "You" : `${label(turn.stage)} agent`),
          turn.role === "user" ? turn.content : `Drafted the ${label(turn.stage).toLowerCase()}.`))),
      this.progressLog(),
      form,
    );
  }

  progressLog() {
    return h("ol.progress#progress-log", { "aria-label": "Progress", dataset: { region: "progress" } },
      this.progress.slice(-6).map((p) => h("li", {}, h("span.muted", {}, label(p.stage)), " ", p.message)));
  }

  /** Put the cursor in the chat for feedback on `gate`, starting with `text` ("Dora: ") if given. */
  focusChat(gate, text = "") {
    const input = this.root.querySelector("#chat-input");
    input.placeholder = `Feedback on the ${label(gate.stage).toLowerCase()}`;
    if (text && !input.value.startsWith(text)) {
      input.value = text;
      sessionStorage.setItem(`auteur.chat.${this.projectId}`, text);
    }
    input.focus();
  }

  history() {
    return h("section.history#run-history", { "aria-labelledby": "history-title", dataset: { region: "history" } },
      h("h2#history-title", {}, "Run history"),
      this.runs.length
        ? h("table.runs", {},
          h("thead", {}, h("tr", {}, ["Run", "Workflow", "Status", "Stage", "Progress", "Started", "Trace"].map((t) => h("th", {}, t)))),
          h("tbody", {}, this.runs.map((run) => h("tr", { dataset: { run: run.run_id, status: run.status } },
            h("td", {}, h("code", {}, run.run_id.slice(0, 8))),
            h("td", {}, label(run.workflow ?? "")),
            h("td", {}, h("span.chip", { class: `run-${run.status}` }, run.status)),
            h("td", {}, label(run.stage ?? "")),
            h("td.message", {}, run.status === "error"
              ? [h("span.error", {}, errorText(run.error)), " ", h("button.resume", { type: "button", disabled: run !== this.runs[0] || this.deciding.has(run.run_id), onclick: () => this.resume(run) }, "Resume")]
              : run.message ?? ""),
            h("td", {}, ago(run.created_at)),
            h("td", {}, run.trace_url ? h("a", { href: run.trace_url, target: "_blank", rel: "noopener" }, "Trace") : "—"),
          ))))
        : h("p.muted", {}, "No runs yet."),
    );
  }

  // --- actions ---------------------------------------------------------------------------

  async start() {
    try {
      await openNewRun(this.project, {
        have: new Set(this.current.keys()),
        onStarted: async (run) => {
          await this.refresh();
          this.followRun(run);
        },
      });
    } catch (error) {
      toast(error.message, { error: true });
    }
  }

  /** Reopen an approved stage: a new branch from its gate, whose run shows the gate again. */
  async reopen(row) {
    try {
      const answer = await api(`/projects/${encodeURIComponent(this.projectId)}/branches`, {
        method: "POST",
        body: { thread_id: row.thread_id, stage: row.stage },
      });
      toast(`Reopened the ${label(row.stage).toLowerCase()} on branch ${answer.branch}.`);
      await this.refresh();
      this.followRun(answer.run);
      this.select(row.stage);
    } catch (error) {
      toast(error.message, { error: true });
    }
  }

  async switchTo(branch) {
    try {
      await api(`/projects/${encodeURIComponent(this.projectId)}/branches/${encodeURIComponent(branch)}/switch`, { method: "POST" });
      toast(`Branch ${branch} is current.`);
      await this.refresh();
    } catch (error) {
      toast(error.message, { error: true });
    }
  }

  /** Run `action` once at a time per `id` (a gate, a run), its buttons disabled meanwhile. */
  async once(id, action) {
    if (this.deciding.has(id)) return false;
    this.deciding.add(id);
    this.render();
    try {
      return await action();
    } finally {
      this.deciding.delete(id);
      this.render();
    }
  }

  /**
   * Send a decision on a gate; the run resumes and its stream is followed. The idempotency
   * key is the decision's own, so a request sent again (a double click, a retry after a
   * lost answer) is the same request, never a second decision.
   */
  decide(gate, decision) {
    return this.once(gate.approval_id, async () => {
      try {
        const answer = await api(`/approvals/${gate.approval_id}`, {
          method: "POST",
          body: { decisions: [decision] },
          headers: { "idempotency-key": `${gate.approval_id}:${digest(JSON.stringify(decision))}` },
        });
        this.approvals = this.approvals.filter((a) => a.approval_id !== gate.approval_id);
        if (decision.type === "reject") this.regenerating.set(gate.stage, gate);
        else this.decided.set(gate.stage, decision.edited_action?.args ?? gate.payload.action_requests[0].args);
        if (answer.run) this.started(answer.run, "resuming");
        toast(decision.type === "reject" ? "Feedback sent — regenerating." : `${label(gate.stage)} ${decision.type === "edit" ? "saved" : "approved"}.`);
        return true;
      } catch (error) {
        toast(error.message, { error: true });
        await this.refresh();
        return false;
      }
    });
  }

  /** A run just queued: listed and followed before the next load says so. */
  started(run, message) {
    this.runs = [{ ...run, workflow: run.metadata?.graph_id, stage: null, message }, ...this.runs].slice(0, RUN_LIMIT);
    this.followRun(run);
  }

  /** Resume a failed run's thread from its last checkpoint: a new run, no new input. */
  resume(run) {
    return this.once(run.run_id, async () => {
      try {
        const again = await api(`/threads/${encodeURIComponent(run.thread_id)}/runs`, {
          method: "POST",
          body: { assistant_id: run.workflow, stream_mode: STREAM_MODES },
        });
        this.started(again, "resuming from the last checkpoint");
        toast("Resumed from the last checkpoint.");
      } catch (error) {
        toast(error.message, { error: true });
      }
    });
  }
}

/** "made from a script that changed since" for a stale artifact. */
function staleWhy(row) {
  const kinds = (row.stale_because ?? []).map((k) => label(k).toLowerCase());
  return kinds.length ? `made from an older ${kinds.join(", ")}` : "made from something that changed since";
}

function errorText(error) {
  if (!error) return "unknown error";
  if (typeof error === "string") return error;
  return error.message ?? error.error ?? JSON.stringify(error);
}
