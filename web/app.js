// Shoal dashboard: talks to the peer's /api and renders with the DOM only
// (textContent, never innerHTML: file names come from strangers).
"use strict";

/**
 * The dashboard token. The peer prints this page's address with the token in
 * its fragment (`#token=…`, never sent to a server); the page keeps it for
 * this tab and takes it out of the address bar. The server hands it to nobody.
 */
const TOKEN = (() => {
  const given = new URLSearchParams(location.hash.slice(1)).get("token");
  if (given) {
    sessionStorage.setItem("shoal-token", given);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("shoal-token") ?? "";
})();

const NO_TOKEN_HELP =
  "This page needs the dashboard token: open the address the peer printed, " +
  "which ends in #token=…";

const $ = (id) => document.getElementById(id);

/** Creates an element with a class and text. */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "?";
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0
    ? `${value} B`
    : `${value.toFixed(value < 10 ? 2 : 1)} ${UNITS[unit]}`;
}

function formatDuration(seconds) {
  if (seconds === null || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600) {
    return `${Math.floor(s / 3600)}h ${
      String(Math.floor((s % 3600) / 60)).padStart(2, "0")
    }m`;
  }
  return s >= 60
    ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`
    : `${s}s`;
}

/** Headers of every API call: the token, and the type of a JSON body. */
function apiHeaders(init = {}) {
  const headers = new Headers(init.headers);
  headers.set("x-shoal-token", TOKEN);
  if (init.body !== undefined) headers.set("content-type", "application/json");
  return headers;
}

/** Calls the API; throws an Error with the server's readable message. */
async function api(path, init = {}) {
  let response;
  try {
    response = await fetch(path, { ...init, headers: apiHeaders(init) });
  } catch {
    throw new Error("Cannot reach this peer: is it still running?");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 403) locked();
    throw new Error(
      body.error ?? `Request failed with status ${response.status}`,
    );
  }
  return body;
}

// --- notices -------------------------------------------------------------

let noticeTimer;
function notify(message, sticky = false) {
  $("notice-text").textContent = message;
  $("notice").hidden = false;
  clearTimeout(noticeTimer);
  if (!sticky) {
    noticeTimer = setTimeout(() => $("notice").hidden = true, 10_000);
  }
}

/** The server refused the token (or there is none): say how to get in. */
function locked() {
  setTracker("locked", NO_TOKEN_HELP);
  notify(NO_TOKEN_HELP, true);
}
$("notice-close").addEventListener("click", () => $("notice").hidden = true);

// --- network files -------------------------------------------------------

const state = {
  query: "",
  filesSeq: 0,
  status: null,
  sharedVersion: -1,
  downloads: new Map(), // key -> element
  trackerState: "connecting",
  expanded: new Set(), // ids or names with the holder detail open
  files: [], // the last network listing
  sharedIds: new Set(), // content ids this peer shares
};

function fileKey(file) {
  return file.id ?? `name:${file.name}`;
}

async function loadFiles() {
  const seq = ++state.filesSeq;
  const query = state.query;
  try {
    const { files } = await api(
      `/api/files${query ? `?query=${encodeURIComponent(query)}` : ""}`,
    );
    if (seq !== state.filesSeq) return;
    $("files-error").hidden = true;
    state.files = files;
    state.filesLoaded = true;
    renderFiles(files);
  } catch (error) {
    if (seq !== state.filesSeq) return;
    $("files-error").textContent = error.message;
    $("files-error").hidden = false;
    $("files-empty").hidden = true;
  }
}

function renderFiles(files) {
  files.sort((a, b) => a.name.localeCompare(b.name));
  const body = $("files-body");
  body.replaceChildren();
  for (const file of files) {
    const row = el("tr");
    row.dataset.name = file.name;
    if (file.id) row.dataset.id = file.id;

    const nameCell = el("td", "c-name");
    const name = el("span", "fname", file.name);
    name.title = `${file.name}\nClick for the content id and holders`;
    nameCell.append(name);
    const id = el(
      "span",
      "fid",
      file.id ? file.id.slice(0, 16) + "…" : "seed protocol",
    );
    id.title = file.id ? `Content id ${file.id}` : "No content id";
    // On a phone the size and holder columns fold into this line.
    const folded = el(
      "span",
      "fmeta",
      `${formatBytes(file.size)} · ${file.holders} holder${
        file.holders === 1 ? "" : "s"
      }`,
    );
    nameCell.append(id, folded);

    const size = el("td", "num c-size", formatBytes(file.size));
    const holdersCell = el("td", "num c-holders");
    const holders = el("button", "linkish holders", String(file.holders));
    holders.type = "button";
    holders.title = "Show who holds it";
    holders.setAttribute("aria-expanded", "false");
    holdersCell.append(holders);

    const actCell = el("td", "act");
    if (file.id && state.sharedIds.has(file.id)) {
      const have = el("span", "have", "✓ Shared");
      have.title = "This peer already shares it";
      actCell.append(have);
    } else {
      const get = el("button", "btn download", "Download");
      get.type = "button";
      get.setAttribute("aria-label", `Download ${file.name}`);
      get.addEventListener("click", () => startDownload(file, get));
      actCell.append(get);
    }

    row.append(nameCell, size, holdersCell, actCell);
    body.append(row);

    const detail = el("tr", "detail");
    detail.hidden = !state.expanded.has(fileKey(file));
    const cell = el("td");
    cell.colSpan = 4;
    detail.append(cell);
    body.append(detail);
    const toggle = () => {
      detail.hidden = !detail.hidden;
      holders.setAttribute("aria-expanded", String(!detail.hidden));
      if (detail.hidden) state.expanded.delete(fileKey(file));
      else {
        state.expanded.add(fileKey(file));
        void loadHolders(file, cell);
      }
    };
    holders.addEventListener("click", toggle);
    nameCell.addEventListener("click", toggle);
    if (!detail.hidden) void loadHolders(file, cell);
  }
  $("files-empty").hidden = files.length > 0;
  $("files-empty").textContent = state.query
    ? `No files match “${state.query}”.`
    : "No files on the network.";
  $("files-count").textContent = files.length ? String(files.length) : "";
  renderDownloadAll(files);
}

/** A folder prefix (`docs/`) or a glob (`*.iso`) in the search box. */
function isBatchQuery(query) {
  return query.endsWith("/") || /[*?]/.test(query);
}

/** Offers "Download all" when the search is a folder prefix or a glob. */
function renderDownloadAll(files) {
  const query = state.query;
  const matching = !isBatchQuery(query)
    ? []
    : /[*?]/.test(query)
    ? files
    : files.filter((f) => f.name.startsWith(query));
  const names = new Set(matching.map((f) => f.name));
  const button = $("download-all");
  button.hidden = names.size < 1;
  button.dataset.target = query;
  button.textContent = `Download all ${names.size} matching ${query}`;
}

$("download-all").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  try {
    await api("/api/downloads", {
      method: "POST",
      body: JSON.stringify({ target: button.dataset.target }),
    });
  } catch (error) {
    notify(error.message);
  } finally {
    setTimeout(() => button.disabled = false, 600);
  }
});

async function loadHolders(file, cell) {
  const list = el("dl");
  const add = (term, value, mono) => {
    list.append(el("dt", "", term), el("dd", mono ? "mono" : "", value));
  };
  add("Content id", file.id ?? "none (seed-protocol peer)", true);
  cell.replaceChildren(list);
  try {
    const { peers } = await api(
      `/api/peers?target=${encodeURIComponent(file.id ?? file.name)}`,
    );
    add(
      "Holders",
      peers.length
        ? peers.map((p) => `${p.address} (${p.protocol})`).join(", ")
        : "nobody right now",
    );
  } catch (error) {
    add("Holders", error.message);
  }
}

async function startDownload(file, button) {
  button.disabled = true;
  try {
    await api("/api/downloads", {
      method: "POST",
      body: JSON.stringify({ target: file.id ?? file.name }),
    });
  } catch (error) {
    notify(error.message);
  } finally {
    setTimeout(() => button.disabled = false, 600);
  }
}

let searchTimer;
$("search").addEventListener("input", (event) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    state.query = event.target.value.trim();
    void loadFiles();
  }, 200);
});

// --- shared files --------------------------------------------------------

async function loadShared() {
  try {
    const { files } = await api("/api/shared");
    state.sharedIds = new Set(files.map((f) => f.id));
    if (state.filesLoaded) renderFiles(state.files);
    const body = $("shared-body");
    body.replaceChildren();
    for (const file of files) {
      const row = el("tr");
      const nameCell = el("td", "c-name");
      const name = el("span", "fname", file.name);
      name.title = `${file.name}\nContent id ${file.id}`;
      nameCell.append(name);
      row.append(
        nameCell,
        el("td", "num", formatBytes(file.size)),
        el("td", "num", String(file.chunks)),
      );
      body.append(row);
    }
    $("shared-empty").hidden = files.length > 0;
    $("shared-count").textContent = files.length ? String(files.length) : "";
  } catch (error) {
    notify(error.message);
  }
}

// --- known peers ---------------------------------------------------------

async function loadPeers() {
  try {
    const { peers } = await api("/api/peers");
    const list = $("peers-list");
    list.replaceChildren();
    for (const peer of peers) {
      const item = el("li");
      item.append(el("span", "addr mono", peer.address));
      if (state.status && peer.address === state.status.address) {
        item.append(el("span", "tag", "you"));
      }
      if (peer.protocol === "legacy") {
        item.append(el("span", "tag legacy", "seed protocol"));
      }
      item.append(
        el(
          "span",
          "aside",
          `${peer.files} file${peer.files === 1 ? "" : "s"}`,
        ),
      );
      list.append(item);
    }
    $("peers-error").hidden = true;
    $("peers-empty").hidden = peers.length > 0;
    $("peers-count").textContent = peers.length ? String(peers.length) : "";
  } catch (error) {
    $("peers-error").textContent = error.message;
    $("peers-error").hidden = false;
    $("peers-empty").hidden = true;
  }
}

// --- live state ----------------------------------------------------------

const STATE_LABELS = {
  starting: "Starting",
  active: "Downloading",
  done: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
};

function renderStatus(status) {
  const previous = state.status;
  state.status = status;
  $("peer-address").textContent = status.address ?? `port ${status.port}`;
  $("peer-id").textContent = status.id ? `id ${status.id}` : "";
  setTracker(status.tracker, status.trackerError);
  if (status.sharedVersion !== state.sharedVersion) {
    state.sharedVersion = status.sharedVersion;
    void loadShared();
  }
  if (
    previous && previous.tracker !== "connected" &&
    status.tracker === "connected"
  ) {
    refreshNetwork();
  }
  renderUploads(status.uploads);
}

function setTracker(trackerState, error) {
  state.trackerState = trackerState;
  const pill = $("tracker-pill");
  pill.dataset.state = trackerState;
  const text = {
    connected: "Tracker connected",
    unreachable: "Tracker unreachable",
    connecting: "Connecting to tracker…",
    offline: "Peer not responding",
    locked: "Token needed",
  }[trackerState];
  $("tracker-text").textContent = text;
  pill.title = error ?? text;
}

function renderUploads(uploads) {
  const list = $("uploads-list");
  list.replaceChildren();
  for (const upload of uploads) {
    const item = el("li");
    item.append(
      el("span", "addr mono", upload.remote),
      el(
        "span",
        "aside",
        `${formatBytes(upload.bytes)} · ${upload.chunks} chunk${
          upload.chunks === 1 ? "" : "s"
        } · ${formatBytes(upload.rate)}/s`,
      ),
    );
    list.append(item);
  }
  $("uploads-empty").hidden = uploads.length > 0;
  $("uploads-count").textContent = uploads.length ? String(uploads.length) : "";
}

function downloadElement(d) {
  const item = el("li", "transfer");
  item.dataset.key = d.key;
  const head = el("div", "transfer-head");
  const name = el("span", "fname");
  const badge = el("span", "badge");
  const button = el("button", "btn ghost cancel");
  button.type = "button";
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api(`/api/downloads/${encodeURIComponent(item.dataset.key)}`, {
        method: "DELETE",
      });
    } catch (error) {
      notify(error.message);
    } finally {
      button.disabled = false;
    }
  });
  // Resume (cancelled), Retry (failed) or Replace (a different file is in
  // the way): starts the same target again in this row.
  const again = el("button", "btn again");
  again.type = "button";
  again.hidden = true;
  again.addEventListener("click", async () => {
    again.disabled = true;
    try {
      await api("/api/downloads", {
        method: "POST",
        body: JSON.stringify({
          target: item.dataset.target,
          overwrite: item.dataset.action === "replace",
        }),
      });
    } catch (error) {
      notify(error.message);
    } finally {
      again.disabled = false;
    }
  });
  head.append(name, badge, again, button);
  const bar = el("div", "bar");
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  bar.append(el("div", "fill"));
  const meta = el("div", "meta");
  const error = el("p", "error");
  error.hidden = true;
  const files = el("ul", "batch-files");
  files.hidden = true;
  item.append(head, bar, meta, error, files);
  return item;
}

// --- swarm view ----------------------------------------------------------

/** Cell codes besides 1–12 (a named source): see DashboardSwarm.map. */
const CELL_MISSING = 0;
const CELL_OTHER = 254;
const CELL_EARLIER = 255;

function cellClass(code) {
  if (code === CELL_MISSING) return "cell";
  if (code === CELL_OTHER) return "cell c-other";
  if (code === CELL_EARLIER) return "cell c-earlier";
  return `cell c${code}`;
}

/** The swarm view of a download: chunk map, legend, and upload peers. */
function swarmElement() {
  const box = el("details", "swarm");
  box.open = true;
  const summary = el("summary", "swarm-summary", "Swarm");
  const map = el("div", "chunkmap");
  map.setAttribute("role", "img");
  const legend = el("ul", "legend sources");
  legend.setAttribute("aria-label", "Sources");
  const upTitle = el("div", "swarm-sub", "Uploading to");
  const uploads = el("ul", "legend uploads");
  uploads.setAttribute("aria-label", "Uploading to");
  box.append(summary, map, legend, upTitle, uploads);
  return box;
}

function legendItem(swatchClass, label, aside, mono) {
  const item = el("li");
  item.append(
    el("span", `swatch ${swatchClass}`),
    el("span", mono ? "addr mono" : "addr", label),
  );
  if (aside) item.append(el("span", "aside", aside));
  return item;
}

function updateSwarm(item, d) {
  let box = item.querySelector(".swarm");
  const swarm = d.swarm;
  if (!swarm) {
    if (box) box.hidden = true;
    return;
  }
  if (!box) {
    box = swarmElement();
    item.querySelector(".error").before(box);
  }
  box.hidden = false;
  const active = d.state === "active" || d.state === "starting";
  const peers = swarm.sources.length;
  box.querySelector(".swarm-summary").textContent = `Swarm · ${peers} source${
    peers === 1 ? "" : "s"
  }${swarm.uploads.length ? ` · uploading to ${swarm.uploads.length}` : ""}`;

  const map = box.querySelector(".chunkmap");
  if (map.dataset.map !== swarm.map) {
    map.dataset.map = swarm.map;
    const codes = atob(swarm.map);
    if (map.children.length !== codes.length) {
      map.replaceChildren(
        ...Array.from({ length: codes.length }, () => el("span", "cell")),
      );
    }
    for (let i = 0; i < codes.length; i++) {
      const wanted = cellClass(codes.charCodeAt(i));
      const cell = map.children[i];
      if (cell.className !== wanted) cell.className = wanted;
    }
    const per = swarm.chunks / swarm.cells;
    map.setAttribute(
      "aria-label",
      `Chunk map: ${swarm.cells} cells of ${
        per === 1 ? "one chunk" : `about ${Math.round(per)} chunks`
      } each, coloured by the source`,
    );
  }

  const items = swarm.sources.map((s, i) =>
    legendItem(
      `c${i + 1}`,
      s.address,
      `${active ? `↓ ${formatBytes(s.rate)}/s · ` : ""}${formatBytes(s.bytes)}`,
      true,
    )
  );
  if (swarm.other) {
    items.push(
      legendItem(
        "c-other",
        "Other sources",
        `${active ? `↓ ${formatBytes(swarm.other.rate)}/s · ` : ""}${
          formatBytes(swarm.other.bytes)
        }`,
      ),
    );
  }
  const codes = atob(swarm.map);
  if (codes.includes(String.fromCharCode(CELL_EARLIER))) {
    items.push(legendItem("c-earlier", "Had before (resumed)"));
  }
  if (codes.includes(String.fromCharCode(CELL_MISSING))) {
    items.push(legendItem("", "Missing"));
  }
  box.querySelector(".sources").replaceChildren(...items);

  const uploads = box.querySelector(".uploads");
  uploads.replaceChildren(
    ...swarm.uploads.map((u) =>
      legendItem(
        "up",
        u.address,
        `↑ ${formatBytes(u.rate)}/s · ${formatBytes(u.bytes)}`,
        true,
      )
    ),
  );
  uploads.hidden = swarm.uploads.length === 0;
  box.querySelector(".swarm-sub").hidden = swarm.uploads.length === 0;
}

const ACTION_LABELS = { resume: "Resume", retry: "Retry", replace: "Replace" };

function updateDownload(item, d) {
  item.dataset.state = d.state;
  item.dataset.target = d.target;
  item.dataset.action = d.action ?? "";
  const again = item.querySelector(".again");
  again.hidden = !d.action;
  again.textContent = ACTION_LABELS[d.action] ?? "";
  again.setAttribute("aria-label", `${again.textContent} ${d.name}`);
  const name = item.querySelector(".fname");
  name.textContent = d.name;
  name.title = d.id ? `${d.name}\nContent id ${d.id}` : d.name;
  item.querySelector(".badge").textContent = STATE_LABELS[d.state] ?? d.state;
  const button = item.querySelector(".cancel");
  button.hidden = d.key.startsWith("peer-");
  button.textContent = d.cancellable ? "Cancel" : "Remove";
  button.setAttribute(
    "aria-label",
    `${d.cancellable ? "Cancel" : "Remove"} ${d.name}`,
  );
  const fraction = d.size ? d.bytes / d.size : d.state === "done" ? 1 : 0;
  const pct = Math.floor(fraction * 100);
  item.querySelector(".fill").style.width = `${(fraction * 100).toFixed(1)}%`;
  item.querySelector(".bar").setAttribute("aria-valuenow", String(pct));
  const meta = item.querySelector(".meta");
  const parts = [
    el("span", "pct", `${pct} %`),
    el(
      "span",
      "bytes",
      `${formatBytes(d.bytes)} of ${formatBytes(d.size)}`,
    ),
  ];
  if (d.state === "active" || d.state === "starting") {
    parts.push(
      el("span", "rate", `${formatBytes(d.rate)}/s`),
      el("span", "eta", `ETA ${formatDuration(d.eta)}`),
      el("span", "sources", `${d.sources} source${d.sources === 1 ? "" : "s"}`),
    );
  } else if (d.state === "done" && d.finishedAt && d.startedAt) {
    parts.push(
      el(
        "span",
        "elapsed",
        `in ${formatDuration((d.finishedAt - d.startedAt) / 1000)}`,
      ),
    );
  }
  if (d.batch) {
    parts.push(
      el("span", "files", `${d.batch.filesDone}/${d.batch.files} files`),
    );
  } else if (d.chunks) {
    parts.push(el("span", "chunks", `${d.chunksDone}/${d.chunks} chunks`));
  }
  meta.replaceChildren(...parts);
  const error = item.querySelector(".error");
  error.hidden = !d.error;
  error.textContent = d.error ?? "";
  updateBatchFiles(item, d.batch);
  updateSwarm(item, d);
}

/** A folder or glob download's per-file summary, once files have ended. */
function updateBatchFiles(item, batch) {
  const list = item.querySelector(".batch-files");
  const results = batch?.results ?? [];
  list.hidden = results.length === 0;
  if (list.dataset.count === String(results.length)) return;
  list.dataset.count = String(results.length);
  list.replaceChildren(
    ...results.map((r) => {
      const row = el("li", r.ok ? "ok" : "failed");
      row.dataset.name = r.name;
      row.append(
        el("span", "mark", r.ok ? "✓" : "✗"),
        el("span", "fname", r.name),
      );
      if (r.error) row.append(el("span", "why", r.error));
      return row;
    }),
  );
}

function renderDownloads(downloads) {
  const list = $("downloads-list");
  const seen = new Set();
  let finishedNow = false;
  downloads.forEach((d, index) => {
    seen.add(d.key);
    let item = state.downloads.get(d.key);
    if (!item) {
      item = downloadElement(d);
      state.downloads.set(d.key, item);
    } else if (item.dataset.state !== "done" && d.state === "done") {
      finishedNow = true;
    }
    updateDownload(item, d);
    if (list.children[index] !== item) {
      list.insertBefore(item, list.children[index] ?? null);
    }
  });
  for (const [key, item] of state.downloads) {
    if (!seen.has(key)) {
      item.remove();
      state.downloads.delete(key);
    }
  }
  const active =
    downloads.filter((d) => d.state === "active" || d.state === "starting")
      .length;
  $("downloads-empty").hidden = downloads.length > 0;
  $("downloads-count").textContent = downloads.length
    ? active ? `${active} active` : String(downloads.length)
    : "";
  if (finishedNow) refreshNetwork();
}

function onState(data) {
  const { status, downloads } = JSON.parse(data);
  renderStatus(status);
  renderDownloads(downloads);
}

/**
 * Follows the Server-Sent Events stream. EventSource cannot send a header,
 * so this reads the stream with fetch and parses its events; it reconnects
 * after the `retry` time the server gives, unless the token is refused.
 */
async function connectEvents() {
  let retryMs = 2000;
  for (;;) {
    try {
      const response = await fetch("/api/events", { headers: apiHeaders() });
      if (response.status === 403) {
        await response.body?.cancel();
        locked();
        return;
      }
      if (!response.ok || !response.body) {
        throw new Error(`Status ${response.status}`);
      }
      const reader = response.body.pipeThrough(new TextDecoderStream())
        .getReader();
      let buffered = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += value.replaceAll("\r\n", "\n");
        let end;
        while ((end = buffered.indexOf("\n\n")) !== -1) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          let event = "message";
          const data = [];
          for (const line of block.split("\n")) {
            const colon = line.indexOf(":");
            const field = colon === -1 ? line : line.slice(0, colon);
            const text = colon === -1 ? "" : line.slice(colon + 1)
              .replace(/^ /, "");
            if (field === "event") event = text;
            else if (field === "data") data.push(text);
            else if (field === "retry" && /^\d+$/.test(text)) {
              retryMs = Number(text);
            }
          }
          if (event === "state" && data.length) onState(data.join("\n"));
        }
      }
    } catch {
      // Reconnect below.
    }
    setTracker("offline", null);
    await new Promise((resolve) => setTimeout(resolve, retryMs));
  }
}

function refreshNetwork() {
  void loadFiles();
  void loadPeers();
}

if (TOKEN) {
  void connectEvents();
  refreshNetwork();
  setInterval(() => {
    if (!document.hidden && state.trackerState !== "locked") refreshNetwork();
  }, 15_000);
} else {
  locked();
}
