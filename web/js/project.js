// The project view: stage pipeline, artifacts per stage, approval queue, chat, run history.
// State is rebuilt from the API on every open; live updates come from two SSE streams (the
// approval queue, and each active run, resumed from its last event id after a reload).

import { api, follow } from "./api.js";
import { renderArtifact } from "./artifacts.js";
import { openConfig } from "./config.js";
import { ago, h, label, mount, toast } from "./dom.js";
import { stageLine } from "./projects.js";
import { STREAM_MODES, WORKFLOW, startWorkflow } from "./workflow.js";

export const STATUSES = {
  "not-started": "Not started",
  running: "Running",
  awaiting: "Awaiting approval",
  approved: "Approved",
  error: "Error",
};
const ACTIVE = new Set(["pending", "running"]);
const RUN_LIMIT = 10;

/** The thread's values with the running stage's own (newer) values laid over them. */
export function mergedValues(state) {
  let values = { ...(state?.values ?? {}) };
  for (const task of state?.tasks ?? []) {
    if (task.state?.values) values = { ...values, ...task.state.values };
  }
  return values;
}

export class ProjectView {
  constructor(root, projectId, tab) {
    this.root = root;
    this.projectId = projectId;
    this.requestedTab = tab;
    this.follows = new Map();
    this.progress = [];
    this.values = {};
    this.approvals = [];
    this.runs = [];
    this.stages = [];
    this.thread = null;
  }

  // --- loading -------------------------------------------------------------------------

  async open() {
    await this.load();
    // A tab the person chose (in the URL, or last time) sticks; otherwise the view follows
    // the production until there is something to look at, and then stays there.
    this.tab = this.requestedTab ?? this.storedTab();
    this.tabChosen = Boolean(this.tab);
    this.render();
    this.queue = follow("/approvals/stream", { endless: true, onEvent: () => this.refresh() });
    for (const run of this.runs.filter((r) => ACTIVE.has(r.status))) this.followRun(run);
  }

  close() {
    this.queue?.stop();
    for (const stream of this.follows.values()) stream.stop();
    this.follows.clear();
    this.closed = true;
  }

  async load() {
    const id = encodeURIComponent(this.projectId);
    const [project, threads, approvals, runs] = await Promise.all([
      api(`/projects/${id}`),
      api("/threads/search", {
        method: "POST",
        body: { metadata: { project_id: this.projectId }, limit: 1, sort_by: "updated_at" },
      }),
      api(`/approvals?project_id=${id}&limit=50`),
      api(`/projects/${id}/runs?limit=${RUN_LIMIT}`),
    ]);
    this.project = project;
    this.thread = threads[0] ?? null;
    this.approvals = approvals.items;
    this.runs = runs;
    const workflow = this.thread?.metadata?.graph_id ?? runs[0]?.workflow ?? WORKFLOW;
    const [state, assistants] = await Promise.all([
      this.thread ? api(`/threads/${this.thread.thread_id}/state?subgraphs=true`) : null,
      this.stages.length ? null : api("/assistants/search", { method: "POST", body: { graph_id: workflow } }),
    ]);
    this.values = mergedValues(state);
    if (assistants) {
      const stages = assistants[0]?.metadata?.stages ?? [];
      this.stages = stages.includes("clips") ? [...stages, "video"] : stages;
    }
  }

  async refresh() {
    if (this.closed) return;
    try {
      await this.load();
    } catch (error) {
      toast(`Could not refresh: ${error.message}`, { error: true });
      return;
    }
    for (const run of this.runs.filter((r) => ACTIVE.has(r.status))) this.followRun(run);
    this.render();
  }

  followRun(run) {
    if (this.follows.has(run.run_id)) return;
    const stream = follow(`/threads/${run.thread_id}/runs/${run.run_id}/stream`, {
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
      this.progress.push({ stage: event.data.stage, message: event.data.message });
      this.progress = this.progress.slice(-40);
      this.renderLive();
    } else if (kind === "error") {
      if (row) Object.assign(row, { status: "error", error: event.data });
      this.renderLive();
    }
  }

  async onRunEnd(run) {
    this.follows.delete(run.run_id);
    sessionStorage.removeItem(`auteur.lastEvent.${run.run_id}`);
    await this.refresh();
    const done = this.runs.find((r) => r.run_id === run.run_id);
    // Only a completed full-video run opens the video by itself; nothing else moves the tab.
    if (done?.status === "success" && done.workflow === WORKFLOW && this.values.video) {
      this.select("video");
    }
  }

  // --- where the production is ----------------------------------------------------------

  storedTab() {
    const tab = localStorage.getItem(`auteur.tab.${this.projectId}`);
    return tab && (this.stages.includes(tab) || tab === "configuration") ? tab : null;
  }

  /** The stage to open at: the gate waiting, else the stage running, else the last approved. */
  currentStage() {
    const pending = this.approvals[0]?.stage;
    if (pending) return pending;
    const active = this.runs.find((r) => ACTIVE.has(r.status));
    if (active?.stage && this.stages.includes(active.stage)) return active.stage;
    if (this.values.video) return "video";
    const approved = this.values.approved ?? [];
    return [...this.stages].reverse().find((s) => approved.includes(s)) ?? this.stages[0] ?? "configuration";
  }

  stageStatus(stage) {
    if (this.approvals.some((a) => a.stage === stage)) return "awaiting";
    const latest = this.runs[0];
    const runningStage = latest && ACTIVE.has(latest.status) ? (latest.stage === "assembly" ? "video" : latest.stage) : null;
    if (runningStage === stage) return "running";
    // an artifact in the state was approved, or given by the person (skip to script)
    if (this.values[stage] || (this.values.approved ?? []).includes(stage)) return "approved";
    if (latest?.status === "error" && (latest.stage === stage || (stage === "video" && latest.stage === "assembly"))) return "error";
    return "not-started";
  }

  select(tab) {
    this.tab = tab;
    this.tabChosen = true;
    localStorage.setItem(`auteur.tab.${this.projectId}`, tab);
    history.replaceState(null, "", `#/projects/${encodeURIComponent(this.projectId)}/${tab}`);
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
    mount(
      this.root,
      h("section.project", {},
        h("div.project-head", {},
          h("h1", {}, this.project.name),
          h("p.stage-line", {}, stageLine(this.runs[0]?.stage ?? this.thread?.stage, this.runs[0])),
          this.thread ? null : h("button.primary", { type: "button", onclick: () => this.start() }, "Start production"),
        ),
        this.pipeline(),
        h("div.layout", {},
          h("div.main", {}, this.tabs(), h("div.panel#artifact", { role: "tabpanel", "aria-labelledby": `tab-${this.tab}` }, this.panel()), this.history()),
          h("aside.side", {}, this.queueSection(), this.chat()),
        ),
      ),
    );
    if (focused) document.getElementById(focused)?.focus();
  }

  /** Re-render only what live progress changes (keeps focus and typed text elsewhere). */
  renderLive() {
    const history = this.root.querySelector("#run-history");
    history?.replaceWith(this.history());
    const log = this.root.querySelector("#progress-log");
    log?.replaceWith(this.progressLog());
    const pipeline = this.root.querySelector("#pipeline");
    pipeline?.replaceWith(this.pipeline());
    const line = this.root.querySelector(".project-head .stage-line");
    if (line) line.textContent = stageLine(this.runs[0]?.stage, this.runs[0]);
  }

  pipeline() {
    return h("nav.pipeline#pipeline", { "aria-label": "Stage pipeline" },
      h("ol", {}, this.stages.map((stage) => {
        const status = this.stageStatus(stage);
        return h("li", {},
          h("button.stage", {
            type: "button",
            class: `status-${status}${this.tab === stage ? " current" : ""}`,
            "aria-label": `${label(stage)}: ${STATUSES[status]}`,
            dataset: { stage, status },
            onclick: () => this.select(stage),
          }, h("span.dot", { "aria-hidden": "true" }), label(stage)));
      })),
      h("ul.legend", { "aria-label": "Legend" },
        Object.entries(STATUSES).map(([key, text]) => h("li", { class: `status-${key}` }, h("span.dot", { "aria-hidden": "true" }), text))),
    );
  }

  tabs() {
    const tabs = [...this.stages, "configuration"];
    return h("div.tabs", { role: "tablist", "aria-label": "Stages" },
      tabs.map((tab) => h("button.tab", {
        type: "button",
        role: "tab",
        id: `tab-${tab}`,
        "aria-selected": String(this.tab === tab),
        onclick: () => this.select(tab),
      }, label(tab))));
  }

  panel() {
    if (this.tab === "configuration") return this.configurationPanel();
    const gate = this.approvals.find((a) => a.stage === this.tab);
    const stage = this.tab;
    const key = stage === "video" ? "video" : stage;
    const approved = this.values[key];
    if (gate) {
      return renderArtifact(stage, gate.payload.action_requests[0].args, {
        gate,
        view: this,
        values: this.values,
      });
    }
    if (approved) return renderArtifact(stage, approved, { view: this, values: this.values });
    const status = this.stageStatus(stage);
    if (status === "running") {
      const run = this.runs[0];
      return h("p.placeholder", {}, `The agent is working on the ${label(stage).toLowerCase()}… `, h("span.live", {}, run?.message ?? ""));
    }
    if (status === "error") return h("p.placeholder.error", {}, `This stage failed: ${errorText(this.runs[0]?.error)}`);
    return h("p.placeholder", {}, `${label(stage)}: not started yet.`);
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
    return h("section.queue", { "aria-labelledby": "queue-title" },
      h("h2#queue-title", {}, `Approvals (${this.approvals.length})`),
      this.approvals.length
        ? h("ol.approvals", {}, this.approvals.map((gate) => this.approvalItem(gate)))
        : h("p.muted", {}, "Nothing waiting for you."),
    );
  }

  approvalItem(gate) {
    const request = gate.payload.action_requests[0];
    const problems = gate.payload.problems ?? [];
    const canApprove = gate.payload.review_configs[0].allowed_decisions.includes("approve");
    return h("li.approval", { dataset: { stage: gate.stage } },
      h("div.approval-head", {}, h("strong", {}, label(gate.stage)), h("span.muted", {}, ago(gate.created_at))),
      h("p", {}, request.description),
      gate.payload.draft_error ? h("p.error", {}, gate.payload.draft_error) : null,
      gate.payload.error ? h("p.error", {}, gate.payload.error) : null,
      problems.length ? h("ul.problems", {}, problems.map((p) => h("li", {}, p))) : null,
      h("div.actions", {},
        h("button.primary", { type: "button", disabled: !canApprove, onclick: () => this.decide(gate, { type: "approve" }) }, "Approve"),
        h("button", { type: "button", onclick: () => this.select(gate.stage) }, "Review & edit"),
        h("button", { type: "button", onclick: () => this.focusChat(gate) }, "Feedback"),
      ),
    );
  }

  chat() {
    const gate = this.approvals[0];
    const input = h("textarea#chat-input", {
      rows: 3,
      disabled: !gate,
      "aria-label": "Message to the agents",
      placeholder: gate ? `Feedback on the ${label(gate.stage).toLowerCase()} — e.g. "make it funnier"` : "The agents will ask you when something needs your eyes.",
    });
    const form = h("form.chat-form", {},
      input,
      h("button.primary", { type: "submit", disabled: !gate }, "Send"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const message = input.value.trim();
      if (!message || !gate) return;
      if (await this.decide(gate, { type: "reject", message })) input.value = "";
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
    });
    const turns = (this.values.conversation ?? []).slice(-30);
    return h("section.chat", { "aria-labelledby": "chat-title" },
      h("h2#chat-title", {}, "Chat with the agents"),
      h("ol.messages", { "aria-live": "polite" },
        turns.map((turn) => h("li", { class: `turn ${turn.role}` },
          h("span.who", {}, turn.role === "user" ? "You" : `${label(turn.stage)} agent`),
          turn.role === "user" ? turn.content : `Drafted the ${label(turn.stage).toLowerCase()}.`))),
      this.progressLog(),
      form,
    );
  }

  progressLog() {
    return h("ol.progress#progress-log", { "aria-label": "Progress" },
      this.progress.slice(-6).map((p) => h("li", {}, h("span.muted", {}, label(p.stage)), " ", p.message)));
  }

  focusChat(gate) {
    const input = this.root.querySelector("#chat-input");
    input.placeholder = `Feedback on the ${label(gate.stage).toLowerCase()}`;
    input.focus();
  }

  history() {
    return h("section.history#run-history", { "aria-labelledby": "history-title" },
      h("h2#history-title", {}, "Run history"),
      this.runs.length
        ? h("table.runs", {},
          h("thead", {}, h("tr", {}, ["Run", "Status", "Stage", "Progress", "Started", "Trace"].map((t) => h("th", {}, t)))),
          h("tbody", {}, this.runs.map((run) => h("tr", { dataset: { run: run.run_id, status: run.status } },
            h("td", {}, h("code", {}, run.run_id.slice(0, 8))),
            h("td", {}, h("span.chip", { class: `run-${run.status}` }, run.status)),
            h("td", {}, label(run.stage ?? "")),
            h("td.message", {}, run.status === "error" ? h("span.error", {}, errorText(run.error)) : run.message ?? ""),
            h("td", {}, ago(run.created_at)),
            h("td", {}, run.trace_url ? h("a", { href: run.trace_url, target: "_blank", rel: "noopener" }, "Trace") : "—"),
          ))))
        : h("p.muted", {}, "No runs yet."),
    );
  }

  // --- actions ---------------------------------------------------------------------------

  async start() {
    try {
      const run = await startWorkflow(this.project);
      await this.refresh();
      this.followRun(run);
    } catch (error) {
      toast(error.message, { error: true });
    }
  }

  /** Send a decision on a gate; the run resumes and its stream is followed. */
  async decide(gate, decision) {
    try {
      const answer = await api(`/approvals/${gate.approval_id}`, {
        method: "POST",
        body: { decisions: [decision] },
        headers: { "idempotency-key": `${gate.approval_id}:${JSON.stringify(decision).length}:${Date.now()}` },
      });
      this.approvals = this.approvals.filter((a) => a.approval_id !== gate.approval_id);
      if (answer.run) {
        this.runs = [{ ...answer.run, workflow: answer.run.metadata?.graph_id, stage: gate.stage, message: "resuming" }, ...this.runs].slice(0, RUN_LIMIT);
        this.followRun(answer.run);
      }
      this.render();
      toast(decision.type === "reject" ? "Feedback sent — regenerating." : `${label(gate.stage)} ${decision.type === "edit" ? "saved" : "approved"}.`);
      return true;
    } catch (error) {
      toast(error.message, { error: true });
      await this.refresh();
      return false;
    }
  }
}

function errorText(error) {
  if (!error) return "unknown error";
  if (typeof error === "string") return error;
  return error.message ?? error.error ?? JSON.stringify(error);
}
