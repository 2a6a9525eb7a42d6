// The sound of a production: the cast (a voice per speaking character, with a sample to hear)
// and the spoken dialogue (every line to play, and to direct again at the gate), with each
// scene's ambience bed when ComfyUI made one.

import { showFile } from "./api.js";
import { h } from "./dom.js";

/** An <audio> player for a stored WAV; `name` labels it for assistive technology. */
function player(file, name) {
  return showFile(h("audio", { controls: true, preload: "none", "aria-label": name }), file);
}

/** At the casting gate each voice can be swapped and directed (an edit of the proposal). */
export function cast(artifact, ctx) {
  if (!artifact.voices.length) return h("p.muted", {}, "Nobody speaks in this film.");
  const editable = Boolean(ctx.gate);
  return h("table.cast", {},
    h("thead", {}, h("tr", {}, ["Speaker", "Voice", "Direction", "Sample"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, artifact.voices.map((voice, index) => h("tr", { dataset: { speaker: voice.speaker } },
      h("th", { scope: "row" }, voice.speaker),
      h("td", {}, editable
        ? h("select.voice", {
          "aria-label": `Voice for ${voice.speaker}`,
          onchange: (event) => { artifact.voices[index].voice = event.target.value; ctx.changed(); },
        }, artifact.choices.map((choice) => h("option", { value: choice.id, selected: choice.id === voice.voice }, choice.label || choice.id)))
        : voice.label || voice.voice),
      h("td", {}, editable
        ? h("input.direction", {
          type: "text", value: voice.direction, placeholder: "e.g. slow, warm",
          "aria-label": `Direction for ${voice.speaker}`,
          onchange: (event) => { artifact.voices[index].direction = event.target.value; ctx.changed(); },
        })
        : voice.direction),
      h("td", {}, voice.sample ? player(voice.sample, `Sample of ${voice.speaker}`) : "—"),
    ))));
}

/**
 * Every line by scene and shot, under each scene its ambience bed when ComfyUI made one; at
 * the gate a line can be spoken again with a direction, and a bed made again from a note.
 */
export function dialogue(artifact, ctx) {
  const beds = new Map((artifact.beds || []).map((made) => [made.scene, made]));
  if (!artifact.lines.length && !beds.size) return h("p.muted", {}, "No line is spoken in this film.");
  const lines = Map.groupBy(artifact.lines, (line) => line.scene);
  const scenes = [...new Set([...lines.keys(), ...beds.keys()])].sort((a, b) => a - b);
  return h("div.spoken-dialogue", {}, scenes.map((scene) => h("section.scene-lines", { dataset: { scene } },
    h("h3", {}, `Scene ${scene}`),
    beds.has(scene) ? bed(beds.get(scene), ctx) : null,
    h("ol.spoken-lines", {}, (lines.get(scene) || []).map((line) => h("li.line", { dataset: { line: line.id } },
      h("p", {}, h("strong", {}, `${line.id} · ${line.speaker}`), ` “${line.text}”`),
      player(line.file, `Line ${line.id}, ${line.speaker}`),
      h("p.muted", {}, timing(line), line.direction ? ` · directed: ${line.direction}` : ""),
      line.fits ? null : h("p.problem", { role: "note" }, "Runs past the end of its shot."),
      ctx.gate ? direct(line, ctx) : null,
    ))))));
}

/** A scene's bed: its player, its prompt, and at the gate "scene 2 ambience: distant thunder". */
function bed(made, ctx) {
  const name = `Ambience of scene ${made.scene}`;
  const input = h("input.bed-direction", { type: "text", placeholder: "distant thunder, quieter…", "aria-label": `Note for the ${name.toLowerCase()}` });
  const send = async (event) => {
    event.preventDefault();
    const note = input.value.trim();
    if (note) await ctx.view.decide(ctx.gate, { type: "reject", message: `scene ${made.scene} ambience: ${note}` });
  };
  return h("div.scene-bed", { dataset: { bed: made.scene } },
    h("p", {}, h("strong", {}, "Ambience"), ` · ${made.duration_s.toFixed(1)} s`),
    player(made.file, name),
    h("p.muted", {}, made.prompt),
    ctx.gate ? h("form.direct", { onsubmit: send }, input, h("button", { type: "submit" }, "Make again")) : null);
}

function timing(line) {
  const tempo = line.tempo === 1 ? "" : `, sped up ${line.tempo}×`;
  return `shot ${line.shot} · at ${line.start_s.toFixed(2)} s · ${line.duration_s.toFixed(2)} s${tempo}`;
}

/** "1B-1: angrier": feedback naming the line makes the agent speak only it again. */
function direct(line, ctx) {
  const input = h("input.line-direction", { type: "text", placeholder: "angrier, whisper, slower…", "aria-label": `Direction for line ${line.id}` });
  const send = async (event) => {
    event.preventDefault();
    const note = input.value.trim();
    if (note) await ctx.view.decide(ctx.gate, { type: "reject", message: `${line.id}: ${note}` });
  };
  return h("form.direct", { onsubmit: send }, input, h("button", { type: "submit" }, "Speak again"));
}
