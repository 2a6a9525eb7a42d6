// The API client: JSON over fetch, and server-sent events over fetch so that the API key
// header and Last-Event-ID can be sent (EventSource can do neither). A request that cannot
// reach the server at all says so in words and tells `connection` (which shows it and
// watches for the server to come back), instead of a raw "Failed to fetch".

import { connection } from "./connection.js";

const KEY = "auteur.apiKey";
const UNREACHABLE = "The Auteur server cannot be reached. Nothing was sent; try again once it is back.";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function headers(extra = {}) {
  const key = localStorage.getItem(KEY);
  return { ...extra, ...(key ? { authorization: `Bearer ${key}` } : {}) };
}

/** Ask for an API key once the server says one is needed; kept in localStorage. */
function askForKey() {
  const key = window.prompt("This Auteur server needs an API key:");
  if (key) localStorage.setItem(KEY, key.trim());
  return Boolean(key);
}

/**
 * Call the API; resolves to the JSON answer, rejects with an ApiError carrying the
 * server's `detail` message (what is wrong, in words the person can act on).
 */
export async function api(path, { method = "GET", body, headers: extra = {} } = {}) {
  const init = { method, headers: headers(extra) };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    connection.lost();
    throw new ApiError(0, UNREACHABLE);
  }
  if (response.status === 401 && askForKey()) return api(path, { method, body, headers: extra });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const answer = await response.json();
      detail = typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail);
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, detail);
  }
  return response.status === 204 ? null : response.json();
}

/**
 * Follow an SSE stream, resuming from the last event id seen (kept in sessionStorage under
 * `resumeKey`, so a page reload carries on where it was). A dropped connection is resumed;
 * when the server ends the stream, `onEnd` is called — unless the stream is `endless` (a
 * feed that only ends when the server goes away), which is then reconnected too.
 */
export function follow(path, { resumeKey, onEvent, onEnd, endless = false }) {
  const controller = new AbortController();
  let stopped = false;
  let delay = 500;

  async function connect() {
    while (!stopped) {
      const last = resumeKey ? sessionStorage.getItem(resumeKey) : null;
      try {
        const response = await fetch(path, {
          headers: headers({ accept: "text/event-stream", ...(last ? { "last-event-id": last } : {}) }),
          signal: controller.signal,
        });
        if (!response.ok) throw new ApiError(response.status, response.statusText);
        connection.reached();
        delay = 500;
        await read(response.body, (event) => {
          if (event.id && resumeKey) sessionStorage.setItem(resumeKey, event.id);
          onEvent(event);
        });
        if (!endless) break;
      } catch (error) {
        if (stopped) return;
        if (error instanceof ApiError && error.status < 500) break;
        if (!(error instanceof ApiError)) connection.lost();
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5000);
    }
    if (!stopped) onEnd?.();
  }
  connect();
  return {
    stop() {
      stopped = true;
      controller.abort();
    },
  };
}

async function read(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { id: null, event: "message", data: "" };
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") event.id = text;
        else if (field === "event") event.event = text;
        else if (field === "data") data.push(text);
      }
      if (!data.length && event.event === "message") continue;
      try {
        event.data = data.length ? JSON.parse(data.join("\n")) : null;
      } catch {
        event.data = data.join("\n");
      }
      onEvent(event);
    }
  }
}

/** The newest version of a stored file (its URL is its content hash, so never stale). */
export function fileUrl(file) {
  return file ? `/files/${file.key}` : "";
}

/**
 * Point an <img>/<video> at a stored file. Without an API key the content-addressed URL is
 * used directly (cached for good: a new version has a new URL); with a key the bytes are
 * fetched with the key and shown from a blob URL.
 */
export function showFile(el, file) {
  if (!file) return el;
  el.dataset.key = file.key;
  if (!localStorage.getItem(KEY)) {
    el.src = fileUrl(file);
    return el;
  }
  fetch(fileUrl(file), { headers: headers() })
    .then((response) => (response.ok ? response.blob() : Promise.reject(new Error(response.statusText))))
    .then((blob) => (el.src = URL.createObjectURL(blob)))
    .catch(() => el.classList.add("missing"));
  return el;
}
