// The ocho web terminal: sends each line with POST /shell (X-Shell header, multipart uploads),
// reads the NDJSON stream as it arrives, keeps a history, marks failures. It runs only what the
// operator types or submits in the page: no URL parameter, fragment or stored state runs a line
// or attaches a file (a link from another site would otherwise run tools with the operator's
// browser). Each entry's data-state is running, ok or failed; <body data-ready> once set up.
"use strict";
const log = document.getElementById("log");
const input = document.getElementById("line");
const filesBox = document.getElementById("files");
const history = JSON.parse(localStorage.getItem("ocho-history") || "[]");
let cursor = history.length;
let pending = [];

function showFiles() {
  filesBox.textContent = pending.length
    ? "to upload with the next line: " + pending.map((f) => f.name).join(", ") : "";
}

function addFiles(list) {
  for (const f of list) {
    if (!pending.some((p) => p.name === f.name)) pending.push(f);
  }
  showFiles();
}

function element(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

async function run(line) {
  const entry = element("div", "entry");
  entry.dataset.state = "running";
  entry.appendChild(element("div", "cmd", line));
  const out = element("div", "out");
  entry.appendChild(out);
  const status = element("div", "status", "running…");
  entry.appendChild(status);
  log.appendChild(entry);
  const body = new FormData();
  for (const f of pending) body.append(f.name, f, f.name);
  const hasFiles = pending.length > 0;
  pending = [];
  showFiles();
  const started = performance.now();
  let ok = false;
  let summary = "";
  try {
    // Header values are ASCII; other lines travel in the query string (without uploads).
    const ascii = /^[\x20-\x7e]*$/.test(line);
    if (!ascii && hasFiles) throw new Error("a line with uploads must be ASCII");
    const reply = ascii
      ? await fetch("/shell", {
          method: "POST",
          headers: { "X-Shell": line, "Accept": "application/x-ndjson" },
          body: hasFiles ? body : undefined,
        })
      : await fetch("/shell?line=" + encodeURIComponent(line), {
          headers: { "Accept": "application/x-ndjson" },
        });
    const type = reply.headers.get("Content-Type") || "";
    if (type.startsWith("application/x-ndjson")) {
      const reader = reply.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (value) buffer += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const text = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (!text.trim()) continue;
          const event = JSON.parse(text);
          if (event.stream) {
            out.appendChild(element("span", event.stream === "err" ? "err" : "", event.line + "\n"));
            log.scrollTop = log.scrollHeight;
          } else if ("exit" in event) {
            ok = event.exit === 0 && !event.killed;
            summary = "exit " + event.exit + " · " + event.ms + " ms" + (event.error ? " · " + event.error : "");
          }
        }
        if (done) break;
      }
    } else {
      const reply_json = await reply.json();
      if (reply_json.out) out.appendChild(element("span", "", reply_json.out));
      if (reply_json.err) out.appendChild(element("span", "err", reply_json.err));
      if (reply_json.error) out.appendChild(element("span", "err", reply_json.error + "\n"));
      ok = reply.ok && reply_json.ok === true;
      summary = "HTTP " + reply.status + (reply_json.code !== undefined ? " · exit " + reply_json.code : "");
    }
  } catch (e) {
    out.appendChild(element("span", "err", "portal unreachable: " + e + "\n"));
    summary = "failed";
  }
  if (!summary) summary = "no exit status (connection lost?)";
  status.textContent = (ok ? "ok · " : "FAILED · ") + summary + " · " + Math.round(performance.now() - started) + " ms total";
  if (!ok) entry.classList.add("failed");
  entry.dataset.state = ok ? "ok" : "failed";
  log.scrollTop = log.scrollHeight;
  return ok;
}

document.getElementById("prompt").addEventListener("submit", async (e) => {
  e.preventDefault();
  const line = input.value.trim();
  if (!line) return;
  input.value = "";
  if (history[history.length - 1] !== line) history.push(line);
  while (history.length > 200) history.shift();
  localStorage.setItem("ocho-history", JSON.stringify(history));
  cursor = history.length;
  input.disabled = true;
  await run(line);
  input.disabled = false;
  input.focus();
});

input.addEventListener("keydown", (e) => {
  if (e.key === "ArrowUp" && cursor > 0) {
    input.value = history[--cursor];
    e.preventDefault();
  } else if (e.key === "ArrowDown") {
    cursor = Math.min(history.length, cursor + 1);
    input.value = history[cursor] || "";
    e.preventDefault();
  }
});

document.getElementById("picker").addEventListener("change", (e) => addFiles(e.target.files));
document.addEventListener("dragover", (e) => { e.preventDefault(); document.body.classList.add("drag"); });
document.addEventListener("dragleave", () => document.body.classList.remove("drag"));
document.addEventListener("drop", (e) => {
  e.preventDefault();
  document.body.classList.remove("drag");
  addFiles(e.dataTransfer.files);
});

document.body.dataset.ready = "1";
