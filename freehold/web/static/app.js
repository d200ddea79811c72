// Freehold's pages: plain JavaScript over the native API (/freehold), the OpenAI API (/v1)
// and Server-Sent Events. No framework, no build step, nothing fetched from outside.
"use strict";

const csrf = document.body.dataset.csrf || "";

async function api(path, options = {}) {
  const headers = Object.assign({ "X-Freehold-CSRF": csrf }, options.headers || {});
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const r = await fetch(path, Object.assign({}, options, { headers, credentials: "same-origin" }));
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text }; }
  if (!r.ok) {
    const err = data && data.error;
    const own = (err && err.freehold) || (data && data.freehold) || {};
    const message = own.message ? own.message + (own.hint ? " (" + own.hint + ")" : "")
      : (typeof err === "string" ? err : (err && err.message) || r.statusText);
    const error = new Error(message);
    error.code = own.code;
    throw error;
  }
  return data;
}

const byIds = (...ids) => ids.map((id) => document.getElementById(id));

// A drop zone: a file dropped on it, or chosen with a click or the keyboard, goes to take(file).
function onDrop(drop, input, take) {
  drop.addEventListener("click", () => input.click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") input.click(); });
  input.addEventListener("change", () => { if (input.files[0]) take(input.files[0]); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); if (e.dataTransfer.files[0]) take(e.dataTransfer.files[0]); });
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function minutes(s) {
  if (s === undefined || s === null) return "";
  return s >= 90 ? `about ${Math.round(s / 60)} min left` : `about ${Math.max(1, Math.round(s))} s left`;
}

// Follow a job: each progress event to onEvent (once, also across a resume of the same job),
// then resolve with the job as it ended.
const seenSeq = {};
function followJob(id, onEvent) {
  return new Promise((resolve) => {
    const source = new EventSource(`/freehold/jobs/${encodeURIComponent(id)}/events?after=${seenSeq[id] || 0}`);
    source.onmessage = (m) => {
      const event = JSON.parse(m.data);
      if (event.seq <= (seenSeq[id] || 0)) return;
      seenSeq[id] = event.seq;
      onEvent(event);
    };
    source.addEventListener("end", (m) => { source.close(); resolve(JSON.parse(m.data)); });
    source.onerror = () => { /* EventSource reconnects by itself, resuming from the last id */ };
  });
}

function showProgress(box, event) {
  box.hidden = false;
  const bar = box.querySelector(".bar span");
  const status = box.querySelector(".status");
  status.classList.remove("bad", "good");
  if (event.total) bar.style.width = `${Math.round(100 * (event.completed || 0) / event.total)}%`;
  const d = event.detail || {};
  let text = event.status;
  if (event.total) text += ` ${event.completed || 0} of ${event.total}`;
  if (d.loss !== undefined) text += ` · loss ${d.loss.toFixed(3)}`;
  if (d.tokens_per_s !== undefined) text += ` · ${Math.round(d.tokens_per_s)} tokens/s`;
  if (event.eta_s) text += ` · ${minutes(event.eta_s)}`;
  status.textContent = text;
}

function showEnd(box, job, good) {
  box.hidden = false;
  const status = box.querySelector(".status");
  if (job.state === "done") {
    box.querySelector(".bar span").style.width = "100%";
    status.textContent = good;
    status.classList.add("good");
  } else {
    const e = job.error || {};
    status.textContent = `${job.state}: ${e.message || ""}${e.hint ? " (" + e.hint + ")" : ""}`;
    status.classList.add(job.state === "cancelled" ? "status" : "bad");
  }
}

function snippets(box, model) {
  const base = location.origin;
  box.hidden = false;
  box.replaceChildren(
    el("p", { class: "status good", text: `${model} is deployed: every API answers to the name "default" with it.` }),
    el("h3", { text: "OpenAI client (Python)" }),
    el("pre", { text: `from openai import OpenAI\nclient = OpenAI(base_url="${base}/v1", api_key="unused-on-localhost")\nprint(client.chat.completions.create(model="default",\n      messages=[{"role": "user", "content": "Hi!"}]).choices[0].message.content)` }),
    el("h3", { text: "Ollama client (Python)" }),
    el("pre", { text: `import ollama\nprint(ollama.Client(host="${base}").chat(model="default",\n      messages=[{"role": "user", "content": "Hi!"}]).message.content)` }),
    el("h3", { text: "curl" }),
    el("pre", { text: `curl ${base}/v1/chat/completions -H 'Content-Type: application/json' \\\n  -d '{"model": "default", "messages": [{"role": "user", "content": "Hi!"}]}'` }),
  );
}

async function deploy(model, box, status, override = false) {
  try {
    await api(`/freehold/models/${encodeURIComponent(model)}/deploy${override ? "?override=true" : ""}`, { method: "POST" });
    if (status) { status.textContent = override ? "Deployed despite the flag; the ledger records that you chose to." : ""; status.classList.remove("bad"); }
    snippets(box, model);
  } catch (e) {
    if (!status) return;
    status.textContent = e.message;
    status.classList.add("bad");
    if (e.code === "model_flagged") {  // a person decides, and the ledger records that they did
      const anyway = el("button", { class: "danger", id: "deploy-anyway", text: "Deploy it anyway" });
      anyway.addEventListener("click", () => deploy(model, box, status, true));
      status.append(" ", anyway);
    }
    if (e.code === "licence_not_accepted") {  // the terms are on the model page; accepting is recorded
      const read = el("a", { class: "button", href: `/models/${encodeURIComponent(model)}#licence`, text: "Read and accept its terms" });
      status.append(" ", read);
    }
  }
}

// -- catalog ---------------------------------------------------------------------------------
function initCatalog() {
  // The catalog's and the registry page's filters: one of each over the cards' data attributes.
  const [search, origin, family, licence, size, audit] = byIds("search", "filter-origin", "filter-family",
    "filter-licence", "filter-size", "filter-audit");
  if (!search) return;
  const apply = () => {
    const q = search.value.trim().toLowerCase();
    for (const card of document.querySelectorAll(".card.model")) {
      const d = card.dataset;
      card.hidden = !((!q || d.search.includes(q)) && (!origin || !origin.value || d.origin === origin.value)
        && (!family.value || d.family === family.value) && (!licence.value || d.licence === licence.value)
        && (!size.value || Number(d.size) < Number(size.value)) && (!audit.value || d.audit === audit.value));
    }
  };
  for (const input of [search, origin, family, licence, size, audit]) {
    if (input) input.addEventListener(input === search ? "input" : "change", apply);
  }
}

// -- registry: browse another machine's models, pull one (a job here) ------------------------
function initRegistry() {
  initCatalog();
  for (const card of document.querySelectorAll(".card.remote")) {
    const button = card.querySelector("button.pull");
    const accept = card.querySelector("input.accept");
    const status = card.querySelector(".status");
    if (accept) accept.addEventListener("change", () => { button.disabled = !accept.checked; });
    button.addEventListener("click", async () => {
      button.disabled = true;
      status.className = "status";
      try {
        const params = { source: card.dataset.ref, accept_licence: Boolean(accept && accept.checked) };
        const job = await api("/freehold/jobs", { method: "POST", json: { kind: "pull", params } });
        status.textContent = "pull queued…";
        const end = await followJob(job.id, (e) => {
          status.textContent = `${e.status}${e.total ? ` ${Math.round(100 * (e.completed || 0) / e.total)}%` : ""}${e.eta_s ? " · " + minutes(e.eta_s) : ""}`;
        });
        if (end.state === "done") {
          status.classList.add("good");
          status.replaceChildren(`Pulled: ${jobSummary(end)}. `, el("a", { href: `/models/${encodeURIComponent(end.result.model)}`, text: "Open it" }));
        } else {
          status.classList.add("bad");
          status.textContent = `pull ${end.state}: ${(end.error || {}).message || ""} ${(end.error || {}).hint || ""}`;
          button.disabled = false;
        }
      } catch (e) { status.classList.add("bad"); status.textContent = e.message; button.disabled = false; }
    });
  }
}

// -- model page ------------------------------------------------------------------------------
function initModel() {
  const model = document.querySelector("[data-model]").dataset.model;
  const status = document.getElementById("action-status");
  const say = (text, cls) => { status.textContent = text; status.className = "status " + (cls || ""); };
  document.getElementById("deploy").addEventListener("click", () => deploy(model, document.getElementById("snippets"), status));
  const acceptBtn = document.getElementById("accept-licence");
  if (acceptBtn) acceptBtn.addEventListener("click", async () => {
    try {
      const r = await api(`/freehold/models/${encodeURIComponent(model)}/accept-licence`, { method: "POST" });
      const done = el("p", { class: "status good", id: "licence-accepted", text: `Accepted (${r.accepted.join(", ") || "before"}): the ledger records it. ${model} may now be served and deployed.` });
      document.getElementById("licence-pending").replaceWith(done);
      acceptBtn.remove();
      say("");  // a refusal to deploy said before no longer holds
    } catch (e) { say(e.message, "bad"); }
  });
  const run = async (kind, params, done) => {
    try {
      const job = await api("/freehold/jobs", { method: "POST", json: { kind, params } });
      say(`${kind} queued…`);
      const end = await followJob(job.id, (e) => say(`${kind}: ${e.status}${e.total ? ` ${e.completed || 0}/${e.total}` : ""}${e.eta_s ? " · " + minutes(e.eta_s) : ""}`));
      if (end.state === "done") done(end.result); else say(`${kind} ${end.state}: ${(end.error || {}).message || ""}`, "bad");
    } catch (e) { say(e.message, "bad"); }
  };
  document.getElementById("verify").addEventListener("click", () => run("verify", { name: model }, (r) => {
    const verdict = r.ok ? (r.complete && !r.warnings.length ? "verified: every check passed" : "verified: every check that could run passed")
      : `verification FAILED: ${(r.first_problem || {}).what || ""}`;
    say(`${verdict} (${r.records} records, ${r.blobs_checked} blobs rehashed in ${r.seconds} s)`, r.ok ? "good" : "bad");
  }));
  for (const b of document.querySelectorAll("button.export")) {
    b.addEventListener("click", () => run("export", { model, quant: b.dataset.quant }, (r) => {
      say(`exported as ${r.model} (${(r.size / 1e6).toFixed(0)} MB)`, "good");
    }));
  }
  const evaluate = document.getElementById("evaluate");
  if (evaluate) evaluate.addEventListener("click", () => run("eval", { model, against: evaluate.dataset.against || null },
    () => location.reload()));
  const pushForm = document.getElementById("push-form");
  if (pushForm) pushForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const target = document.getElementById("push-target").value.trim();
    run("push", { model, target }, (r) => say(`pushed to ${r.target}: ${(r.sent_bytes / 1e6).toFixed(1)} MB sent, ${(r.skipped_bytes / 1e6).toFixed(1)} MB already there`, "good"));
  });
}

// -- chat ------------------------------------------------------------------------------------
async function streamChat(model, messages, onText) {
  const r = await fetch("/v1/chat/completions", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Freehold-CSRF": csrf },
    body: JSON.stringify({ model, messages, stream: true }),
  });
  if (!r.ok) {
    const data = await r.json().catch(() => ({}));
    throw new Error((data.error && data.error.message) || r.statusText);
  }
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", text = "", grounding = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of block.split("\n")) {
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const chunk = JSON.parse(line.slice(6));
        if (chunk.grounding) grounding = chunk.grounding;
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) { text += delta.content; onText(text); }
      }
    }
  }
  return { text, grounding };
}

function initChat() {
  const [form, input, modelSel, baseSel, compare, columns] = byIds(
    "chat-form", "chat-input", "chat-model", "chat-base", "compare", "columns");
  const cols = { main: columns.querySelector('[data-role="main"]'), base: columns.querySelector('[data-role="base"]') };
  const history = { main: [], base: [] };
  const layout = () => {
    cols.base.hidden = !compare.checked;
    columns.classList.toggle("two", compare.checked);
    cols.main.querySelector(".column-title").textContent = modelSel.value;
    cols.base.querySelector(".column-title").textContent = baseSel.value;
  };
  const clear = () => { for (const k of ["main", "base"]) { history[k] = []; cols[k].querySelector(".messages").replaceChildren(); } };
  for (const c of [compare, modelSel, baseSel]) c.addEventListener("change", () => { layout(); clear(); });
  document.getElementById("clear").addEventListener("click", clear);
  layout();
  initReply(modelSel);
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); } });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    const system = document.getElementById("system").value.trim();
    const sides = compare.checked ? ["main", "base"] : ["main"];
    await Promise.all(sides.map(async (side) => {
      const model = side === "main" ? modelSel.value : baseSel.value;
      const box = cols[side].querySelector(".messages");
      history[side].push({ role: "user", content: text });
      box.append(el("div", { class: "msg user", text }));
      const answer = el("div", { class: "msg assistant", "data-model": model });
      box.append(answer);
      const messages = (system ? [{ role: "system", content: system }] : []).concat(history[side]);
      try {
        const out = await streamChat(model, messages, (t) => { answer.textContent = t; });
        history[side].push({ role: "assistant", content: out.text });
        const cites = (out.grounding && out.grounding.citations) || [];
        if (cites.length) answer.append(el("div", { class: "sources", text: "Sources: " + cites.map((c, i) => `[${i + 1}] ${c.title}`).join("; ") }));
        answer.dataset.done = "1";
      } catch (err) { answer.textContent = "Error: " + err.message; answer.classList.add("status", "bad"); answer.dataset.done = "1"; }
    }));
  });
}

function initReply(modelSel) {
  const [drop, file, status, box] = byIds("reply-drop", "reply-file", "reply-status", "reply-draft");
  const draft = async (f) => {
    status.className = "status";
    status.textContent = `${modelSel.value} is drafting a reply to ${f.name}…`;
    box.hidden = true;
    try {
      const r = await api(`/freehold/reply?model=${encodeURIComponent(modelSel.value)}`, { method: "POST", body: f, headers: { "Content-Type": "message/rfc822" } });
      box.querySelector(".reply-head").textContent = `To: ${r.to} · Subject: ${r.subject}`;
      document.getElementById("reply-text").value = r.draft;
      const cites = (r.grounding && r.grounding.citations) || [];
      box.querySelector(".sources").textContent = cites.length ? "Based on: " + cites.map((c, i) => `[${i + 1}] ${c.title}`).join("; ")
        : r.grounding ? `Nothing in ${r.grounding.knowledge} answers this: check the draft.` : "";
      box.hidden = false;
      status.textContent = "Edit the draft, then copy it into your reply.";
    } catch (e) { status.textContent = e.message; status.classList.add("bad"); }
  };
  onDrop(drop, file, draft);
  document.getElementById("reply-copy").addEventListener("click", () => {
    const t = document.getElementById("reply-text");
    t.select();
    if (navigator.clipboard) navigator.clipboard.writeText(t.value).catch(() => document.execCommand("copy"));
    else document.execCommand("copy");
    status.textContent = "Copied.";
  });
}

// -- teach -----------------------------------------------------------------------------------
function highlight(text, spans) {
  // The import's record of where it replaced personal data ([start, end, type] in code points,
  // as Python counts them); placeholders ([NAME_1] ...) are marked where no record exists.
  const frag = document.createDocumentFragment();
  const chars = Array.from(text);
  let last = 0;
  const found = spans && spans.length ? spans.map(([s, e, kind]) => [s, e, kind])
    : Array.from(text.matchAll(/\[(NAME|EMAIL|PHONE|URL|IP|CARD|IBAN|ADDRESS|ID)_\d+\]/g)).map((m) => {
      const s = Array.from(text.slice(0, m.index)).length;
      return [s, s + Array.from(m[0]).length, m[1]];
    });
  for (const [start, end, kind] of found) {
    frag.append(chars.slice(last, start).join(""), el("mark", { class: "pii", title: `${kind.toLowerCase()} replaced`, text: chars.slice(start, end).join("") }));
    last = end;
  }
  frag.append(chars.slice(last).join(""));
  return frag;
}

function renderPreview(box, p) {
  const c = p.counts || {};
  const pii = (p.pii && p.pii.replaced) || {};
  const piiTotal = Object.values(pii).reduce((a, b) => a + b, 0);
  box.hidden = false;
  box.replaceChildren(
    el("div", { class: "preview-counts" },
      el("div", {}, el("b", { text: String(c.examples || 0) }), "conversations to learn from"),
      el("div", {}, el("b", { text: String(c.messages_read || 0) }), "messages read"),
      el("div", {}, el("b", { text: String(piiTotal) }), "names, addresses and numbers replaced"),
      el("div", {}, el("b", { text: String(c.train || 0) }), "to learn from, " + (c.validation || 0) + " to check with, " + (c.test || 0) + " held out")),
  );
  if (p.ours && p.ours.length) box.append(el("p", { class: "status", text: `Answers written by ${p.ours.join(", ")}${p.ours_inferred ? " (found in the mail; fill in your address above to choose)" : ""} are what it learns.` }));
  if (p.left_out && p.left_out.length) {
    const ul = el("ul", { class: "left-out" });
    for (const line of p.left_out) ul.append(el("li", { text: line }));
    box.append(el("h3", { text: "Left out" }), ul);
  }
  box.append(el("h3", { text: "What it will learn from" }));
  if (p.pii && p.pii.mode === "surrogates") box.append(el("p", { class: "status" }, "People's names, addresses and numbers below are stand-ins (", el("mark", { class: "pii", text: "marked" }), "): the real ones never reach the model."));
  for (const ex of p.examples || []) {
    const conv = el("div", { class: "conversation" });
    for (const [n, t] of ex.messages.entries()) {
      const turn = el("div", { class: "turn " + t.role }, el("span", { class: "who", text: t.role === "assistant" ? "You:" : t.role === "user" ? "Customer:" : "System:" }));
      turn.append(highlight(t.content, (ex.pii_spans || []).filter((sp) => sp[0] === n).map((sp) => sp.slice(1))));
      conv.append(turn);
    }
    box.append(conv);
  }
}

function initTeach() {
  const [drop, file, importBox, tuneBox, evalBox, tuneBtn, cancelBtn, resumeBtn, evalBtn, deployBtn] = byIds(
    "drop", "file", "import-progress", "tune-progress", "eval-progress", "tune", "tune-cancel", "tune-resume",
    "evaluate", "deploy");
  const state = { dataset: null, model: null, tuneJob: null, documents: [] };
  const [docsDrop, docsFile, docsList] = byIds("docs-drop", "docs-file", "docs-list");
  onDrop(docsDrop, docsFile, async (f) => {
    const item = el("li", { text: `${f.name}: uploading…` });
    docsList.append(item);
    try {
      const up = await api(`/freehold/uploads?purpose=document&filename=${encodeURIComponent(f.name)}`, { method: "POST", body: f, headers: { "Content-Type": "application/octet-stream" } });
      state.documents.push(up.path);
      item.textContent = `${f.name} (${up.format}, ${(up.size / 1000).toFixed(0)} KB)`;
    } catch (e) { item.textContent = `${f.name}: ${e.message}`; item.classList.add("status", "bad"); }
  });

  const importFile = async (f) => {
    drop.classList.add("done");
    drop.querySelector("p").textContent = `${f.name} (${(f.size / 1e6).toFixed(1)} MB): uploading…`;
    showProgress(importBox, { status: "uploading" });
    try {
      const up = await api(`/freehold/uploads?filename=${encodeURIComponent(f.name)}`, { method: "POST", body: f, headers: { "Content-Type": "application/octet-stream" } });
      drop.querySelector("p").textContent = `${f.name}: read as ${up.format}`;
      const ours = document.getElementById("ours").value.trim();
      const params = { paths: [up.path], name: document.getElementById("dataset-name").value.trim() };
      if (ours) params.ours = ours.split(/[\s,]+/);
      const job = await api("/freehold/jobs", { method: "POST", json: { kind: "import", params } });
      const end = await followJob(job.id, (e) => showProgress(importBox, e));
      showEnd(importBox, end, "read, cleaned and scrubbed");
      if (end.state !== "done") return;
      state.dataset = end.result.dataset;
      renderPreview(document.getElementById("preview"), await api(`/freehold/datasets/${encodeURIComponent(state.dataset)}/preview`));
      tuneBtn.disabled = false;
    } catch (e) {
      importBox.hidden = false;
      const s = importBox.querySelector(".status");
      s.textContent = e.message; s.classList.add("bad");
      drop.classList.remove("done");
      drop.querySelector("p").textContent = "Drop another file here, or click to choose one.";
    }
  };
  onDrop(drop, file, importFile);

  const losses = [];
  const chart = document.querySelector("#loss-chart polyline");
  const draw = () => {
    if (!losses.length) return;
    const max = Math.max(...losses.map((p) => p[1])), min = Math.min(...losses.map((p) => p[1]));
    const total = losses.total || losses[losses.length - 1][0];
    chart.setAttribute("points", losses.map(([s, l]) => `${(590 * s / total + 5).toFixed(1)},${(195 - 185 * (l - min) / ((max - min) || 1)).toFixed(1)}`).join(" "));
  };
  const watchTune = async (job) => {
    state.tuneJob = job.id;
    cancelBtn.hidden = false; resumeBtn.hidden = true; tuneBtn.disabled = true;
    const end = await followJob(job.id, (e) => {
      showProgress(tuneBox, e);
      if (e.status === "training" && e.detail && e.detail.loss !== undefined) {
        losses.total = e.total; losses.push([e.completed, e.detail.loss]); draw();
      }
    });
    cancelBtn.hidden = true;
    showEnd(tuneBox, end, end.result ? `learned: ${end.result.model}, ${end.result.steps} steps, loss ${end.result.loss.toFixed(3)}` : "");
    if (end.state === "done") {
      state.model = end.result.model;
      evalBtn.disabled = false; deployBtn.disabled = false;
    } else if (end.state === "cancelled" || end.state === "failed") {
      resumeBtn.hidden = false;
    }
  };
  tuneBtn.addEventListener("click", async () => {
    const options = { epochs: Number(document.getElementById("epochs").value), lr: Number(document.getElementById("lr").value) };
    const maxSteps = document.getElementById("max-steps").value;
    if (maxSteps) options.max_steps = Number(maxSteps);
    const output = document.getElementById("output").value.trim();
    try {
      tuneBtn.disabled = true;
      if (document.getElementById("use-knowledge").checked) {
        // The index the answers will cite: the mail's answered threads and the documents.
        const kb = await api("/freehold/jobs", { method: "POST", json: { kind: "knowledge", params: {
          name: `${output}-kb`, datasets: [state.dataset], documents: state.documents } } });
        const built = await followJob(kb.id, (e) => showProgress(tuneBox, e));
        if (built.state !== "done") { showEnd(tuneBox, built, ""); tuneBtn.disabled = false; return; }
        options.knowledge = built.result.knowledge;
      }
      const job = await api("/freehold/jobs", { method: "POST", json: { kind: "tune", params: {
        base: document.getElementById("base").value, dataset: state.dataset, output, options } } });
      losses.length = 0;
      await watchTune(job);
    } catch (e) {
      tuneBtn.disabled = false;
      showProgress(tuneBox, { status: "" }); const s = tuneBox.querySelector(".status"); s.textContent = e.message; s.classList.add("bad");
    }
  });
  cancelBtn.addEventListener("click", () => api(`/freehold/jobs/${state.tuneJob}/cancel`, { method: "POST" }));
  resumeBtn.addEventListener("click", async () => {
    try { await watchTune(await api(`/freehold/jobs/${state.tuneJob}/resume`, { method: "POST" })); }
    catch (e) { const s = tuneBox.querySelector(".status"); s.textContent = e.message; s.classList.add("bad"); }
  });
  evalBtn.addEventListener("click", async () => {
    evalBtn.disabled = true;
    const base = document.getElementById("base").value;
    const job = await api("/freehold/jobs", { method: "POST", json: { kind: "eval", params: { model: state.model, against: base, data: state.dataset, suites: ["quality"] } } });
    const end = await followJob(job.id, (e) => showProgress(evalBox, e));
    showEnd(evalBox, end, "checked against " + base);
    if (end.state === "done") renderEval(document.getElementById("eval-result"), end.result);
    evalBtn.disabled = false;
  });
  deployBtn.addEventListener("click", () => deploy(state.model, document.getElementById("snippets")));
}

function renderEval(box, report) {
  // The comparison the eval computed (freehold.evals.compare): each score beside the base's,
  // marked better or worse in the direction that score improves.
  const table = el("table", { class: "evals" }, el("thead", {}, el("tr", {},
    el("th", { text: "Suite" }), el("th", { text: "Score" }), el("th", { text: report.model }),
    el("th", { text: report.base || "base" }), el("th", { text: "" }))));
  const body = el("tbody");
  let better = 0, worse = 0;
  for (const [suite, entry] of Object.entries(report.comparison || {})) {
    for (const [score, row] of Object.entries(entry.scores || {})) {
      const gain = row.lower_is_better ? row.base - row.model : row.model - row.base;
      const verdict = gain > 0 ? "better" : gain < 0 ? "worse" : "same";
      if (gain > 0) better += 1; else if (gain < 0) worse += 1;
      body.append(el("tr", { class: verdict }, el("td", { text: suite }), el("td", { text: score + (row.lower_is_better ? " (lower is better)" : "") }),
        el("td", { text: row.model.toFixed(3) }), el("td", { text: row.base.toFixed(3) }), el("td", { text: verdict })));
    }
  }
  table.append(body);
  box.replaceChildren(el("p", { class: "status", text: `Better than ${report.base || "the base"} on ${better} of ${better + worse} scores that differ, on the held-out mail.` }), table);
}

// What a finished job made, in a few words (not its raw result).
function jobSummary(j) {
  const r = j.result || {};
  if (j.kind === "verify") return r.ok ? `verified ${r.name}: ${r.records} records, ${r.blobs_checked} blobs rehashed` : `${r.name}: verification FAILED`;
  if (j.kind === "tune") return `${r.model}: ${r.steps} steps, loss ${Number(r.loss).toFixed(3)}`;
  if (j.kind === "import") return `${r.dataset}: ${(r.counts || {}).examples} conversations`;
  if (j.kind === "knowledge") return `${r.knowledge}: ${r.passages} passages`;
  if (j.kind === "export") return `${r.model} (${(r.size / 1e6).toFixed(0)} MB)`;
  if (j.kind === "eval") return `${r.model}${r.base ? " against " + r.base : ""}: ${(r.runs || []).map((x) => x.suite).join(", ")}`;
  if (j.kind === "pull") return `${r.model}: ${(r.received_bytes / 1e6).toFixed(1)} MB received, ${(r.reused_bytes / 1e6).toFixed(1)} MB already here`;
  if (j.kind === "push") return `${r.model} to ${r.target}: ${(r.sent_bytes / 1e6).toFixed(1)} MB sent, ${(r.skipped_bytes / 1e6).toFixed(1)} MB already there`;
  return "";
}

// -- jobs ------------------------------------------------------------------------------------
function initJobs() {
  const body = document.querySelector("#jobs-table tbody");
  const none = document.getElementById("no-jobs");
  const refresh = async () => {
    const { jobs } = await api("/freehold/jobs?all=true");
    none.hidden = jobs.length > 0;
    body.replaceChildren(...jobs.map((j) => {
      const p = j.progress || {};
      const what = j.state === "running" ? `${p.status || ""}${p.total ? ` ${p.completed || 0}/${p.total}` : ""}${p.eta_s ? " · " + minutes(p.eta_s) : ""}`
        : j.error ? j.error.message : jobSummary(j);
      const act = el("td");
      if (j.state === "running" || j.state === "queued") {
        const b = el("button", { text: "Cancel" }); b.onclick = () => api(`/freehold/jobs/${j.id}/cancel`, { method: "POST" }).then(refresh); act.append(b);
      } else if (j.kind === "tune" && (j.state === "cancelled" || j.state === "failed")) {
        const b = el("button", { text: "Resume" }); b.onclick = () => api(`/freehold/jobs/${j.id}/resume`, { method: "POST" }).then(refresh); act.append(b);
      }
      return el("tr", { "data-job": j.id }, el("td", { text: j.id }), el("td", { text: j.kind }), el("td", { text: j.state, class: "state" }), el("td", { text: what }), act);
    }));
  };
  refresh();
  setInterval(refresh, 2000);
}

const pages = { catalog: initCatalog, registry: initRegistry, model: initModel, chat: initChat, teach: initTeach, jobs: initJobs };
(pages[document.body.dataset.page] || (() => {}))();
