// One section per camera: its stream (regions drawn on it by the device) and, per region, the newest decision,
// the top-k table and the timings. Names, labels and decisions are data: they enter the page as text only.
const sections = new Map();  // camera name → {stream, regions: Map(region name → elements)}

function section(camera) {
  if (!sections.has(camera.name)) {
    const box = document.createElement("section");
    box.className = "camera";
    const stream = document.createElement("img");
    stream.alt = `live video of ${camera.name}`;
    stream.className = "video";
    box.append(text("h2", camera.name), stream, text("p", ""));
    document.getElementById("cameras").append(box);
    // Attached after load: an endless MJPEG response would otherwise hold the load event.
    const attach = () => { stream.src = `/stream.mjpg?camera=${encodeURIComponent(camera.name)}`; };
    if (document.readyState === "complete") attach(); else window.addEventListener("load", attach);
    sections.set(camera.name, {box, faults: box.lastChild, regions: new Map()});
  }
  return sections.get(camera.name);
}

function regionBox(parts, name) {
  if (!parts.regions.has(name)) {
    const box = document.createElement("div");
    box.className = "region";
    const elements = {title: text("h3", name), top1: text("p", "waiting…"), table: document.createElement("table"),
                      stats: text("p", "")};
    elements.top1.className = "label";
    box.append(elements.title, elements.top1, elements.table, elements.stats);
    parts.box.append(box);
    parts.regions.set(name, elements);
  }
  return parts.regions.get(name);
}

function row(label, score) {
  const tr = document.createElement("tr");
  tr.append(text("td", label), text("td", `${(100 * score).toFixed(1)}%`));
  return tr;
}

function showRegion(elements, region, camera, state) {
  const r = region.result;
  if (!r) return;
  const ood = r.ood_score === null || r.ood_score === undefined ? "" : ` · OOD score ${r.ood_score.toFixed(2)}`;
  const guess = r.decision === r.labels[0] ? "" : ` (${r.labels[0]} ${(100 * r.scores[0]).toFixed(1)}%)`;
  const shown = r.decision === r.labels[0] ? `${r.labels[0]} ${(100 * r.scores[0]).toFixed(1)}%` : r.decision;
  elements.top1.textContent = `${shown}${guess}${ood}`;
  elements.table.replaceChildren(...r.labels.map((label, i) => row(label, r.scores[i])));
  const l = r.latency_ms;
  elements.stats.textContent =
    `${region.results_per_second.toFixed(1)} FPS · inference ${l.inference} ms · preprocess ${l.preprocess} ms · ` +
    `frame age ${r.age_ms} ms · frame ${r.frame} · ${state.threads ?? "default"} threads · ${region.backend} · ` +
    `model ${r.model.slice(0, 8)}${r.model_version ? ` (${r.model_version})` : ""}`;
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const state = await (await fetch("/stats", {cache: "no-store"})).json();
    status.textContent = "";
    for (const camera of state.cameras) {
      const parts = section(camera);
      parts.faults.textContent = `${camera.fps.toFixed(1)} FPS · dropped ${camera.frames_dropped} · ` +
        `reconnects ${camera.reconnects}${camera.error ? ` · ended: ${camera.error}` : ""}`;
      for (const region of camera.regions) showRegion(regionBox(parts, region.name), region, camera, state);
    }
  } catch (e) { status.textContent = "connection lost, retrying…"; }
  setTimeout(refresh, 500);
}
refresh();
