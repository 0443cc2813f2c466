// The participant's side of the listening test: one clip at a time, rating enabled only after
// the clip has played to its end, ratings sent once each (a retry reuses the submission id).
"use strict";

const query = new URLSearchParams(window.location.search);
const auth = "participant=" + encodeURIComponent(query.get("participant") || "") +
  "&token=" + encodeURIComponent(query.get("token") || "");
const $ = (id) => document.getElementById(id);
let session = null;
let current = 0;
let pending = null;  // {position, submission}: the id to reuse if a submission is retried

function showOnly(id) {
  for (const name of ["intro", "clip", "done"]) $(name).hidden = name !== id;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function call(method, path, body) {
  const options = {method, headers: {"Content-Type": "application/json"}};
  if (body !== undefined) options.body = JSON.stringify(body);
  let response;
  try {
    response = await fetch(path + "?" + auth, options);
  } catch (err) {
    return {ok: false, status: 0, data: {error: "the server cannot be reached; try again in a moment", code: "network"}};
  }
  let data = {};
  try { data = await response.json(); } catch (err) { data = {}; }
  return {ok: response.ok, status: response.status, data};
}

function randomId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function buildQuestions() {
  const box = $("questions");
  box.textContent = "";
  for (const q of session.questions) {
    const div = document.createElement("div");
    div.className = "question";
    const p = document.createElement("p");
    const strong = document.createElement("strong");
    strong.textContent = q.label + ": ";
    p.append(strong, q.prompt);
    const scale = document.createElement("div");
    scale.className = "scale";
    for (const point of session.scale) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "radio";
      input.name = q.key;
      input.value = String(point.value);
      input.id = q.key + "-" + point.value;
      label.append(input, " " + point.value + " " + point.label);
      scale.append(label);
    }
    div.append(p, scale);
    box.append(div);
  }
}

function setRatingEnabled(enabled) {
  $("questions").disabled = !enabled;
  $("comment").disabled = !enabled;
  $("submit").disabled = !enabled;
}

function playedSeconds(audio) {
  let total = 0;
  for (let i = 0; i < audio.played.length; i++) total += audio.played.end(i) - audio.played.start(i);
  return total;
}

function showClip(position) {
  current = position;
  showError("");
  const clip = session.clips[position];
  $("clip-title").textContent = "Clip " + (position + 1) + " of " + session.clips.length;
  $("rating-form").reset();
  setRatingEnabled(false);
  $("progress").value = 0;
  $("play").textContent = "Play";
  $("play-state").textContent = "Play the clip to the end to rate it.";
  const audio = $("audio");
  audio.src = "audio/" + encodeURIComponent(clip.stimulus) + "?" + auth;
  audio.load();
  showOnly("clip");
}

async function onEnded() {
  const audio = $("audio");
  $("play").textContent = "Play again";
  const clip = session.clips[current];
  const result = await call("POST", "api/played", {stimulus: clip.stimulus, played_seconds: playedSeconds(audio)});
  if (result.ok) {
    $("play-state").textContent = "Now rate the clip (you may play it again).";
    setRatingEnabled(true);
  } else {
    showError(result.data.error || "could not record the playback");
  }
}

async function onSubmit(event) {
  event.preventDefault();
  const clip = session.clips[current];
  const body = {stimulus: clip.stimulus, position: current, comment: $("comment").value};
  for (const q of session.questions) {
    const chosen = document.querySelector('input[name="' + q.key + '"]:checked');
    if (!chosen) { showError("Please answer every question (" + q.label + ")."); return; }
    body[q.key] = Number(chosen.value);
  }
  if (!pending || pending.position !== current) pending = {position: current, submission: randomId()};
  body.submission = pending.submission;
  $("submit").disabled = true;
  const result = await call("POST", "api/ratings", body);
  if (result.ok || result.data.code === "replayed") {
    pending = null;
    next(current + 1);
  } else {
    $("submit").disabled = false;
    showError(result.data.error || "the rating was not saved (status " + result.status + ")");
  }
}

function next(position) {
  if (position >= session.clips.length) showOnly("done");
  else showClip(position);
}

async function start() {
  const result = await call("GET", "api/session");
  if (!result.ok) { showError(result.data.error || "cannot open the session"); return; }
  session = result.data;
  buildQuestions();
  if (session.next >= session.clips.length) { showOnly("done"); return; }
  $("intro-count").textContent = String(session.clips.length);
  if (session.next > 0) {
    $("resume-count").textContent = String(session.next);
    $("resume-note").hidden = false;
    $("start").textContent = "Continue with clip " + (session.next + 1);
  }
  showOnly("intro");
}

document.addEventListener("DOMContentLoaded", () => {
  const audio = $("audio");
  audio.addEventListener("timeupdate", () => {
    if (audio.duration) $("progress").value = audio.currentTime / audio.duration;
  });
  audio.addEventListener("ended", onEnded);
  audio.addEventListener("error", () => showError("this clip could not be loaded; reload the page"));
  $("play").addEventListener("click", () => {
    if (audio.paused) { audio.play(); $("play").textContent = "Pause"; }
    else { audio.pause(); $("play").textContent = "Play"; }
  });
  $("start").addEventListener("click", () => next(session.next));
  $("rating-form").addEventListener("submit", onSubmit);
  start();
});
