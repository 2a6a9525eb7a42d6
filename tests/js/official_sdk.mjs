// The official JS SDK (@langchain/langgraph-sdk, as agent-chat-ui and Agent Inbox use it)
// against an Auteur server: node official_sdk.mjs <api url> <api key> <sample input file>.
// It walks a production from its brief through the bodies those clients send and prints
// what it saw as one JSON object, which tests/api/test_js_sdk.py checks.
import { readFileSync } from "node:fs";
import { Client } from "@langchain/langgraph-sdk";

const [apiUrl, apiKey, sampleFile] = process.argv.slice(2);
const client = new Client({ apiUrl, apiKey });
const sample = JSON.parse(readFileSync(sampleFile, "utf8"));
const seen = {};

const gateOf = async (threadId) => {
  const state = await client.threads.getState(threadId);
  return state.tasks.flatMap((task) => task.interrupts)[0]?.value ?? state.interrupts?.[0]?.value;
};

// agent-chat-ui: a resume streamed with an empty input, its latest checkpoint, cancel on
// disconnect; the events it gets
const chatUiResume = async (threadId, resume, assistant = "full_video") => {
  const { checkpoint } = await client.threads.getState(threadId);
  const events = [];
  for await (const part of client.runs.stream(threadId, assistant, {
    input: {},
    command: { resume },
    streamMode: ["messages-tuple", "values", "custom"],
    checkpoint: { checkpoint_id: checkpoint.checkpoint_id, checkpoint_ns: "" },
    onDisconnect: "cancel",
  })) {
    events.push(part.event);
  }
  return events;
};

const thread = await client.threads.create();
const first = await client.runs.wait(thread.thread_id, "full_video", { input: sample });
seen.first = first.__interrupt__[0].value.stage;

const events = await chatUiResume(thread.thread_id, { decisions: [{ type: "approve" }] });
seen.events = [...new Set(events)].sort();
seen.afterApprove = (await gateOf(thread.thread_id)).stage;

await chatUiResume(thread.thread_id, [{ type: "response", args: "make it funnier" }]);
const redrafted = await gateOf(thread.thread_id);
seen.afterResponse = redrafted.stage;
const script = redrafted.action_requests[0].args;
await chatUiResume(thread.thread_id, [
  { type: "edit", args: { action: "script", args: { ...script, title: "Edited in the inbox" } } },
]);
seen.afterEdit = (await gateOf(thread.thread_id)).stage;
const shown = (await gateOf(thread.thread_id)).action_requests[0].args;
await chatUiResume(thread.thread_id, [{ type: "accept", args: shown }]);

const state = await client.threads.getState(thread.thread_id);
seen.approved = state.values.approved;
seen.title = state.values.script.title;
seen.messages = state.values.messages.map((m) => [m.type, m.name ?? null]);
seen.history = (await client.threads.getHistory(thread.thread_id, { limit: 2 })).length;
const waiting = await client.threads.search({ status: "interrupted", limit: 100 });
seen.listed = waiting.some((t) => t.thread_id === thread.thread_id);
try {
  await client.runs.create(thread.thread_id, "agent", { input: {} });
  seen.invalidAssistant = "accepted";
} catch (error) {
  seen.invalidAssistant = String(error.message ?? error);
}

// agent-chat-ui on the director: a chat message starts the sample production, its gate
// arrives as the director's interrupt, the chat's approve button decides it; Agent Inbox
// accepts the next gate on the production's own thread
const chat = await client.threads.create();
const said = { type: "human", content: [{ type: "text", text: "Start the sample film" }] };
for await (const part of client.runs.stream(chat.thread_id, "director", {
  input: { messages: [said] },
  streamMode: ["messages-tuple", "values", "custom"],
})) {
  if (part.event === "error") seen.directorError = part.data;
}
const relayed = await gateOf(chat.thread_id);
seen.directorGate = relayed.stage;
await chatUiResume(chat.thread_id, { decisions: [{ type: "approve" }] }, "director");
seen.directorNext = (await gateOf(chat.thread_id)).stage;
const production = relayed.production.thread_id;
await client.runs.wait(production, "full_video", { command: { resume: [{ type: "accept" }] } });
seen.productionNext = (await gateOf(production)).stage;
console.log(JSON.stringify(seen));
