// Starting a workflow run for a project: one thread per production, runs on that thread.

import { api } from "./api.js";

export const WORKFLOW = "full_video";
export const STREAM_MODES = ["values", "updates", "custom"];

/** Start the full-video workflow for a project (with a screenplay: skip to script). */
export async function startWorkflow(project, { script } = {}) {
  const thread = await api("/threads", {
    method: "POST",
    body: { metadata: { project_id: project.project_id } },
  });
  const input = { brief: project.brief, config: project.config ?? {}, project_id: project.project_id };
  if (script && script.trim()) input.script = script;
  return api(`/threads/${thread.thread_id}/runs`, {
    method: "POST",
    body: { assistant_id: WORKFLOW, input, stream_mode: STREAM_MODES },
  });
}
