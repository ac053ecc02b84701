"""The labeling page: one self-contained HTML document (no external assets, works offline).

Keyboard first: digits and each class's shortcut letter label the image and move on, arrows
move, Space skips, ``u``/Backspace undo. Actions are applied on screen at once and sent to the
server in order; ``body[data-idle]`` turns ``true`` when every action is confirmed (tests wait
on it).
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>local-mlops label</title>
<style>
  :root { --fg: #1d2330; --muted: #667085; --accent: #2f6fed; --ok: #1a7f4b; --bad: #c0392b; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.4 system-ui, sans-serif; color: var(--fg); background: #f4f5f7;
         display: flex; flex-direction: column; height: 100vh; }
  header { padding: 10px 18px; background: #fff; border-bottom: 1px solid #dde1e7; }
  header h1 { font-size: 16px; margin: 0 12px 0 0; display: inline; }
  #job { color: var(--muted); }
  #bar { height: 10px; background: #e4e7ec; border-radius: 5px; margin-top: 8px; overflow: hidden; }
  #fill { height: 100%; width: 0; background: var(--ok); transition: width .15s; }
  #progress { margin-top: 4px; font-weight: 600; }
  main { flex: 1; display: flex; flex-direction: column; align-items: center; justify-content: center;
         min-height: 0; padding: 12px; }
  #stage { width: min(92vw, calc(100vh - 290px)); height: min(92vw, calc(100vh - 290px));
           min-width: 200px; min-height: 200px; background: #fff; border: 1px solid #dde1e7;
           border-radius: 8px; display: flex; align-items: center; justify-content: center;
           position: relative; }
  #stage.labeled { border: 3px solid var(--ok); }
  #stage.skipped { border: 3px dashed var(--muted); }
  #img { width: 100%; height: 100%; object-fit: contain; }
  #img.pixel { image-rendering: pixelated; }
  #error { display: none; padding: 24px; text-align: center; color: var(--bad);
           border: 3px solid var(--bad); border-radius: 8px; background: #fdecea; margin: 20px; }
  #meta { margin-top: 8px; color: var(--muted); }
  #current { font-weight: 600; color: var(--fg); }
  #suggest { margin-top: 4px; color: var(--muted); min-height: 1.4em; }
  #suggest b { color: var(--accent); }
  #classes { display: flex; flex-wrap: wrap; gap: 8px; justify-content: center; padding: 10px 18px; }
  .cls { border: 1px solid #c9ced6; background: #fff; border-radius: 6px; padding: 6px 12px;
         font: inherit; cursor: pointer; }
  .cls.on { background: var(--accent); color: #fff; border-color: var(--accent); }
  kbd { font: 12px ui-monospace, monospace; border: 1px solid #c9ced6; border-bottom-width: 2px;
        border-radius: 4px; padding: 0 5px; background: #f8f9fb; color: var(--fg); margin-right: 6px; }
  .cls u { text-decoration-thickness: 2px; }
  footer { text-align: center; color: var(--muted); padding: 4px 0 12px; font-size: 13px; }
  #toast { position: fixed; top: 12px; right: 12px; max-width: 420px; background: var(--bad);
           color: #fff; padding: 10px 14px; border-radius: 6px; display: none; }
  #done { display: none; color: var(--ok); font-weight: 600; margin-top: 6px; }
</style>
</head>
<body data-idle="false">
<header>
  <h1>local-mlops label</h1><span id="job"></span>
  <div id="bar"><div id="fill"></div></div>
  <div id="progress">loading…</div>
</header>
<main>
  <div id="stage"><img id="img" alt=""><div id="error"></div></div>
  <div id="meta"><span id="position"></span> · <span id="name"></span> · <span id="current"></span></div>
  <div id="suggest"></div>
  <div id="done"></div>
</main>
<div id="classes"></div>
<footer>
  <kbd>1</kbd>…<kbd>9</kbd> or the underlined letter: label and go on ·
  <kbd>←</kbd><kbd>→</kbd> move · <kbd>Space</kbd> skip · <kbd>u</kbd>/<kbd>Backspace</kbd> undo
  · <kbd>Enter</kbd> take the model's suggestion
</footer>
<div id="toast" role="alert"></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let S = null, cur = 0, pending = 0, chain = Promise.resolve(), shown = null;
const keyToClass = {};

async function api(path, body) {
  const init = body === undefined ? {} : {method: "POST",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const r = await fetch(path, init);
  const data = await r.json().catch(() => ({error: "HTTP " + r.status}));
  if (!r.ok) throw new Error(data.error + (data.fix ? " — " + data.fix : ""));
  return data;
}

function toast(message) {
  $("toast").textContent = message; $("toast").style.display = "block";
  clearTimeout(toast.timer); toast.timer = setTimeout(() => $("toast").style.display = "none", 6000);
}

// Actions run one after another, in the order they were typed.
function enqueue(work) {
  pending++; document.body.dataset.idle = "false";
  chain = chain.then(work).catch(async (e) => { toast(e.message); await load(false); })
    .finally(() => { pending--; if (!pending) document.body.dataset.idle = "true"; render(); });
}

function assignShortcuts() {
  const used = new Set(["u"]);
  S.shortcut = S.classes.map((name, i) => {
    if (i < 10) keyToClass[String((i + 1) % 10)] = i;
    for (const ch of name.toLowerCase()) {
      if (ch >= "a" && ch <= "z" && !used.has(ch)) { used.add(ch); keyToClass[ch] = i; return ch; }
    }
    return null;
  });
  $("classes").innerHTML = "";
  S.classes.forEach((name, i) => {
    const b = document.createElement("button");
    b.className = "cls"; b.dataset.index = i;
    if (i < 10) { const k = document.createElement("kbd"); k.textContent = (i + 1) % 10; b.append(k); }
    const letter = S.shortcut[i], at = letter ? name.toLowerCase().indexOf(letter) : -1;
    if (at >= 0) {
      const u = document.createElement("u"); u.textContent = name[at];
      b.append(name.slice(0, at), u, name.slice(at + 1));
    } else { b.append(name); }
    b.onclick = () => labelCurrent(i);
    $("classes").append(b);
  });
}

async function load(first) {
  S = await api("/api/state");
  if (first) { cur = S.position; assignShortcuts(); }
  $("job").textContent = S.job + " — " + S.source;
  render();
}

function counts() {
  let labeled = 0, skipped = 0;
  for (const it of S.items) { if (it.label !== null) labeled++; else if (it.skipped) skipped++; }
  return {labeled, skipped, total: S.items.length};
}

function imageUrl(key) { return "/api/image?key=" + encodeURIComponent(key); }

function showImage(item) {
  if (shown === item.key) return;
  shown = item.key;
  const img = $("img"), error = $("error");
  error.style.display = "none"; img.style.display = "";
  img.classList.remove("pixel");
  img.onload = () => {
    if (img.naturalWidth < 256 && img.naturalHeight < 256) img.classList.add("pixel");
  };
  img.onerror = async () => {
    if (shown !== item.key) return;
    let reason = "the browser cannot decode this file (corrupt or unsupported format)";
    try { const r = await fetch(imageUrl(item.key)); if (!r.ok) reason = (await r.json()).error; }
    catch (e) { reason = e.message; }
    if (shown !== item.key) return;
    img.style.display = "none";
    error.textContent = "Cannot show " + item.key + ": " + reason + ". Press Space to skip it.";
    error.style.display = "block";
  };
  img.src = imageUrl(item.key);
  const next = S.items[(cur + 1) % S.items.length];
  if (next) new Image().src = imageUrl(next.key);
}

function render() {
  if (!S) return;
  const c = counts(), item = S.items[cur];
  $("progress").textContent = c.labeled + " of " + c.total + " labeled" +
    (c.skipped ? " · " + c.skipped + " skipped" : "");
  $("fill").style.width = (100 * c.labeled / c.total) + "%";
  $("position").textContent = "image " + (cur + 1) + " of " + c.total;
  $("name").textContent = item.key;
  $("current").textContent = item.label !== null ? "labeled " + S.classes[item.label]
    : item.skipped ? "skipped" : "not labeled";
  const hint = item.suggestion;
  $("suggest").innerHTML = "";
  if (hint) {
    const b = document.createElement("b"); b.textContent = hint.class;
    $("suggest").append("model says ", b, " (" + Math.round(hint.probability * 100) + "%)" +
      (hint.label !== null ? " · Enter accepts" : " · not one of the classes"));
  }
  $("stage").className = item.label !== null ? "labeled" : item.skipped ? "skipped" : "";
  document.querySelectorAll(".cls").forEach((b) =>
    b.classList.toggle("on", Number(b.dataset.index) === item.label));
  const done = c.labeled === c.total;
  $("done").style.display = done ? "block" : "none";
  $("done").textContent = done ? "All " + c.total + " images labeled — saved to " + S.manifest +
    ". Press Ctrl-C in the terminal to finish." : "";
  showImage(item);
}

// The next image after `from` that still needs work (wrapping); `from` itself if none.
function nextPending(from) {
  const n = S.items.length;
  for (const wanted of [(it) => it.label === null && !it.skipped, (it) => it.label === null]) {
    for (let step = 1; step < n; step++) {
      const i = (from + step) % n;
      if (wanted(S.items[i])) return i;
    }
  }
  return from;
}

function apply(item) { const i = S.items.findIndex((it) => it.key === item.key); S.items[i] = item; return i; }

function labelCurrent(index) {
  const item = S.items[cur];
  S.items[cur] = {...item, label: index, skipped: false};
  cur = nextPending(cur); render();
  enqueue(async () => apply((await api("/api/label", {key: item.key, label: index})).item));
}

function skipCurrent() {
  const item = S.items[cur];
  if (item.label === null) S.items[cur] = {...item, label: null, skipped: true};
  cur = nextPending(cur); render();
  enqueue(async () => apply((await api("/api/skip", {key: item.key})).item));
}

function undo() {
  enqueue(async () => {
    const result = await api("/api/undo", {});
    if (!result.undone) { toast("Nothing to undo."); return; }
    cur = apply(result.undone.item);
  });
}

function move(delta) { cur = (cur + delta + S.items.length) % S.items.length; render(); }

document.addEventListener("keydown", (e) => {
  if (!S || e.ctrlKey || e.metaKey || e.altKey) return;
  const k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (k === "ArrowRight") move(1);
  else if (k === "ArrowLeft") move(-1);
  else if (k === "Home") { cur = 0; render(); }
  else if (k === "End") { cur = S.items.length - 1; render(); }
  else if (k === " ") skipCurrent();
  else if (k === "u" || k === "Backspace") undo();
  else if (k === "Enter") {
    const hint = S.items[cur].suggestion;
    if (!hint || hint.label === null) return;
    labelCurrent(hint.label);
  }
  else if (k in keyToClass) labelCurrent(keyToClass[k]);
  else return;
  e.preventDefault();
});

load(true).then(() => { document.body.dataset.idle = "true"; })
  .catch((e) => { $("progress").textContent = "Cannot load: " + e.message; });
</script>
</body>
</html>
"""
