// The ocho web terminal: sends each line with POST /shell (X-Shell header, multipart uploads),
// reads the NDJSON stream as it arrives, keeps a history, marks failures.
//
// It runs only what the operator types or submits in the page: no URL parameter, fragment or
// stored state runs a line or attaches a file (a link from another site would otherwise run
// tools with the operator's browser). The stored history is only ever recalled into the input.
//
// Output is rendered in batches, one DOM update and one layout per animation frame, and the
// scrollback is capped at MAX_LINES with a marker saying how many earlier lines were dropped.
// Each entry's data-state is running, ok, failed or stopped; <body data-ready> once set up.
"use strict";
const MAX_LINES = 10000;
const HISTORY_KEPT = 200;
const $ = (id) => document.getElementById(id);
const log = $("log");
const marker = $("dropped");
const input = $("line");
const chips = $("files");
const notice = $("notice");
const stopButton = $("stop");

function element(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---- history: {line, files}; the lines (never the files) outlive the page in localStorage.
function storedLines() {
  try {
    const lines = JSON.parse(localStorage.getItem("ocho-history") || "[]");
    return Array.isArray(lines) ? lines.filter((l) => typeof l === "string") : [];
  } catch (e) {
    return [];
  }
}
const history = storedLines().map((line) => ({ line, files: [] }));
let cursor = history.length;
// What was being typed before browsing the history, restored when coming back down.
let draft = { line: "", files: [] };

function remember(line, files) {
  const last = history[history.length - 1];
  if (last && last.line === line) last.files = files;
  else history.push({ line, files });
  while (history.length > HISTORY_KEPT) history.shift();
  try {
    localStorage.setItem("ocho-history", JSON.stringify(history.map((h) => h.line)));
  } catch (e) { /* storage full or disabled: history lasts as long as the page */ }
  cursor = history.length;
}

function recall(step) {
  const to = Math.max(0, Math.min(history.length, cursor + step));
  if (to === cursor) return;
  if (cursor === history.length) draft = { line: input.value, files: pending };
  cursor = to;
  const entry = cursor === history.length ? draft : history[cursor];
  input.value = entry.line;
  pending = entry.files.slice();
  showFiles();
}

// ---- uploads waiting for the next line, shown as removable chips.
let pending = [];

function showFiles() {
  chips.replaceChildren();
  for (const f of pending) {
    const chip = element("span", "chip", f.name + " (" + f.size + " B)");
    chip.dataset.name = f.name;
    const remove = element("button", "remove", "×");
    remove.type = "button";
    remove.title = "do not upload " + f.name;
    remove.setAttribute("aria-label", "remove " + f.name);
    remove.addEventListener("click", () => {
      pending = pending.filter((p) => p !== f);
      showFiles();
    });
    chip.appendChild(remove);
    chips.appendChild(chip);
  }
}

function addFiles(list) {
  for (const f of list) {
    // A file picked again under the same name replaces the earlier one.
    pending = pending.filter((p) => p.name !== f.name);
    pending.push(f);
  }
  showFiles();
}

// ---- output: lines are queued and appended once per animation frame.
let queue = [];    // {out, cls, lines: [text]}
let chunks = [];   // what the log holds, oldest first: {node, count, entry}
let shown = 0;     // lines in the log
let dropped = 0;   // lines dropped from its top
let scheduled = false;

function emit(out, cls, text) {
  const last = queue[queue.length - 1];
  if (last && last.out === out && last.cls === cls) last.lines.push(text);
  else queue.push({ out, cls, lines: [text] });
  if (!scheduled) {
    scheduled = true;
    requestAnimationFrame(flush);
    // Frames stop in a hidden tab; the output still lands.
    setTimeout(flush, 250);
  }
}

function flush() {
  scheduled = false;
  if (!queue.length) return;
  const batch = queue;
  queue = [];
  // Lines beyond the cap would be dropped at once: never build them.
  let total = batch.reduce((n, b) => n + b.lines.length, 0);
  while (total > MAX_LINES) {
    const excess = total - MAX_LINES;
    const first = batch[0];
    if (first.lines.length <= excess) {
      batch.shift();
      total -= first.lines.length;
      dropped += first.lines.length;
    } else {
      first.lines = first.lines.slice(excess);
      total -= excess;
      dropped += excess;
    }
  }
  const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
  for (const b of batch) {
    const node = element("span", b.cls, b.lines.join("\n") + "\n");
    b.out.appendChild(node);
    chunks.push({ node, count: b.lines.length, entry: b.out.parentNode });
    shown += b.lines.length;
  }
  while (shown > MAX_LINES) {
    const excess = shown - MAX_LINES;
    const first = chunks[0];
    if (first.count <= excess) {
      first.node.remove();
      chunks.shift();
      shown -= first.count;
      dropped += first.count;
      const entry = first.entry;
      if (entry.dataset.state !== "running" && !chunks.some((c) => c.entry === entry)) {
        entry.remove();
      }
    } else {
      const text = first.node.textContent;
      let at = 0;
      for (let i = 0; i < excess; i++) at = text.indexOf("\n", at) + 1;
      first.node.textContent = text.slice(at);
      first.count -= excess;
      shown -= excess;
      dropped += excess;
    }
  }
  if (dropped) {
    marker.hidden = false;
    marker.dataset.count = String(dropped);
    marker.textContent = dropped + " earlier line" + (dropped === 1 ? "" : "s") + " dropped";
  }
  if (stick) log.scrollTop = log.scrollHeight;
}

function emitText(out, cls, text) {
  if (!text) return;
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  for (const l of lines) emit(out, cls, l);
}

// ---- running one line.
class NotSent extends Error {}
let current = null; // {controller} while a line runs

async function run(line, files) {
  const entry = element("div", "entry");
  entry.dataset.state = "running";
  entry.appendChild(element("div", "cmd", line));
  const out = element("div", "out");
  entry.appendChild(out);
  const status = element("div", "status", "running… (Stop or Ctrl-C ends it)");
  entry.appendChild(status);
  log.appendChild(entry);
  log.scrollTop = log.scrollHeight;
  const controller = new AbortController();
  current = { controller };
  stopButton.disabled = false;
  const started = performance.now();
  let state = "failed";
  let summary = "";
  // Header values are ASCII; other lines travel in the query string (without uploads).
  const ascii = /^[\x20-\x7e]*$/.test(line);
  try {
    if (!ascii && files.length) throw new NotSent("a line with uploads must be ASCII");
    let body;
    if (files.length) {
      body = new FormData();
      for (const f of files) body.append(f.name, f, f.name);
    }
    const headers = { "Accept": "application/x-ndjson" };
    const reply = ascii
      ? await fetch("/shell", {
          method: "POST",
          headers: { ...headers, "X-Shell": line },
          body,
          signal: controller.signal,
        })
      : await fetch("/shell?line=" + encodeURIComponent(line), {
          headers,
          signal: controller.signal,
        });
    const type = reply.headers.get("Content-Type") || "";
    if (type.startsWith("application/x-ndjson")) {
      const reader = reply.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      const handle = (text) => {
        // Empty lines keep the connection alive; they carry nothing.
        if (!text.trim()) return;
        const event = JSON.parse(text);
        if (event.stream) {
          emit(out, event.stream === "err" ? "err" : "", event.line);
        } else if ("exit" in event) {
          state = event.exit === 0 && !event.killed ? "ok" : "failed";
          summary = "exit " + event.exit + " · " + event.ms + " ms" +
            (event.error ? " · " + event.error : "");
        }
      };
      for (;;) {
        const { value, done } = await reader.read();
        if (value) buffer += decoder.decode(value, { stream: true });
        const end = buffer.lastIndexOf("\n");
        if (end >= 0) {
          for (const text of buffer.slice(0, end).split("\n")) handle(text);
          buffer = buffer.slice(end + 1);
        }
        if (done) break;
      }
      handle(buffer + decoder.decode());
    } else {
      const json = await reply.json();
      emitText(out, "", json.out);
      emitText(out, "err", json.err);
      if (json.error) emitText(out, "err", json.error);
      state = reply.ok && json.ok === true ? "ok" : "failed";
      summary = "HTTP " + reply.status + (json.code !== undefined ? " · exit " + json.code : "");
    }
  } catch (e) {
    if (controller.signal.aborted) {
      state = "stopped";
      summary = "the portal ends the tool";
    } else if (e instanceof NotSent) {
      emit(out, "err", e.message + " (nothing was sent)");
      summary = "not sent";
    } else {
      emit(out, "err", (e instanceof TypeError ? "portal unreachable: " : "unreadable reply: ") + e);
      state = "failed";
      summary = "failed";
    }
  }
  if (!summary) summary = "no exit status (connection lost?)";
  flush();
  const label = { ok: "ok", failed: "FAILED", stopped: "stopped" }[state];
  status.textContent = label + " · " + summary + " · " +
    Math.round(performance.now() - started) + " ms total";
  entry.dataset.ms = String(Math.round(performance.now() - started));
  if (state !== "ok") entry.classList.add(state);
  entry.dataset.state = state;
  current = null;
  stopButton.disabled = true;
  notice.textContent = "";
  if (log.scrollTop + log.clientHeight >= log.scrollHeight - status.offsetHeight - 16) {
    log.scrollTop = log.scrollHeight;
  }
}

function stop() {
  if (current) current.controller.abort();
}

$("prompt").addEventListener("submit", (e) => {
  e.preventDefault();
  const line = input.value.trim();
  if (!line) return;
  if (current) {
    notice.textContent = "a line is still running: Stop it (Ctrl-C) first";
    return;
  }
  const files = pending;
  input.value = "";
  pending = [];
  showFiles();
  draft = { line: "", files: [] };
  remember(line, files);
  run(line, files);
});

input.addEventListener("keydown", (e) => {
  if (e.key === "ArrowUp") {
    recall(-1);
    e.preventDefault();
  } else if (e.key === "ArrowDown") {
    recall(1);
    e.preventDefault();
  }
});

// Ctrl-C stops the running tool unless there is a selection to copy.
document.addEventListener("keydown", (e) => {
  if (!(e.ctrlKey && !e.altKey && !e.metaKey && (e.key === "c" || e.key === "C"))) return;
  if (!current) return;
  const inInput = document.activeElement === input && input.selectionStart !== input.selectionEnd;
  const selection = window.getSelection();
  if (inInput || (selection && !selection.isCollapsed)) return;
  e.preventDefault();
  stop();
});

stopButton.addEventListener("click", stop);
$("prev").addEventListener("click", () => recall(-1));
$("next").addEventListener("click", () => recall(1));
$("picker").addEventListener("change", (e) => {
  addFiles(e.target.files);
  e.target.value = "";
});
document.addEventListener("dragover", (e) => { e.preventDefault(); document.body.classList.add("drag"); });
document.addEventListener("dragleave", () => document.body.classList.remove("drag"));
document.addEventListener("drop", (e) => {
  e.preventDefault();
  document.body.classList.remove("drag");
  addFiles(e.dataTransfer.files);
});

// ---- the banner: which proxy, its version and who you are: /tools carries "who": {"name",
// "role", "scope"?}, the name of the token the browser's credentials matched, or "-" on a portal
// that asks for none.
$("proxy").textContent = location.host;
fetch("/tools", { headers: { "Accept": "application/json" } })
  .then((r) => (r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status))))
  .then((tools) => {
    $("version").textContent = tools.version ? "ocho " + tools.version : "";
    const who = tools.who;
    if (who && who.name === "-") {
      $("who").textContent = "open portal: no credentials asked";
      $("who").hidden = false;
    } else if (who && who.name) {
      const scope = who.scope ? ", " + who.scope.join(" ") : "";
      $("who").textContent = "you: " + who.name + (who.role ? " (" + who.role + scope + ")" : "");
      $("who").hidden = false;
    }
  })
  .catch((e) => { $("version").textContent = "(version unknown: " + e.message + ")"; })
  .finally(() => { document.body.dataset.banner = "1"; });

document.body.dataset.ready = "1";
