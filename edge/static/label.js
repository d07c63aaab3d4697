let items = [], classes = [], position = 0, selected = new Set();
function chosen() { return [items[position].name, ...selected]; }
async function file(label) {
  if (!items[position]) return;
  if (await post("/label", {label, files: chosen()})) load();
}
async function act(path, body) { if (await post(path, body)) load(); }
function show() {
  const item = items[position];
  const buttons = classButtons(classes, file);
  document.getElementById("classes").replaceChildren(...buttons);
  document.getElementById("current").src = item ? `/image/${encodeURIComponent(item.name)}` : "";
  const decided = item && item.decision ? ` · decided ${item.decision}` : "";
  const ood = item && item.ood_score != null ? ` · OOD score ${item.ood_score.toFixed(2)}` : "";
  document.getElementById("why").textContent = item ?
    `${item.name} · ${item.kept_because ?? "not kept by a model"}${decided}${ood}` : "nothing left to label";
  document.getElementById("guesses").replaceChildren(...(item && item.labels ? item.labels.map((label, i) => {
    const row = document.createElement("tr");
    row.append(text("td", label), text("td", `${(100 * item.scores[i]).toFixed(1)}%`));
    return row;
  }) : []));
  document.getElementById("next").replaceChildren(...items.slice(position + 1, position + 13).map((next) => {
    const image = document.createElement("img");
    image.src = `/image/${encodeURIComponent(next.name)}`;
    image.alt = image.title = next.name;
    image.className = selected.has(next.name) ? "selected" : "";
    image.addEventListener("click", () => {
      selected.has(next.name) ? selected.delete(next.name) : selected.add(next.name);
      show();
    });
    return image;
  }));
}
async function load() {
  const state = await (await fetch("/state", {cache: "no-store"})).json();
  items = state.items; classes = Object.keys(state.classes); position = 0; selected.clear();
  document.getElementById("status").className = "";
  document.getElementById("status").textContent =
    `${state.waiting} waiting · ${state.filed} filed · undo ${state.undo}`;
  show();
}
document.getElementById("add").addEventListener("click", () => file(document.getElementById("new-class").value));
document.getElementById("other").addEventListener("click", () => act("/other", {files: chosen()}));
document.getElementById("discard").addEventListener("click", () => act("/discard", {files: chosen()}));
document.getElementById("undo").addEventListener("click", () => act("/undo", {}));
document.getElementById("skip").addEventListener("click", skip);
function skip() { if (items[position]) { position += 1; selected.clear(); show(); } }
onKeys(() => classes, file, {
  o: () => { if (items[position]) act("/other", {files: chosen()}); },
  x: () => { if (items[position]) act("/discard", {files: chosen()}); },
  u: () => act("/undo", {}),
  s: skip,
});
load();
