// The release form (templates/deployments/release_new.html): only the inputs of the chosen
// artifact type are shown (the others are disabled, so a file picked for another type is
// not uploaded for nothing), and choosing a zip picks the runtime and handler it needs:
// a bootstrap at its root is a custom runtime (Go, Rust), Python files are python3.12.
// What the person typed themselves is never replaced. Without this script every input
// shows and the server checks the runtime against the zip all the same.
(function () {
  "use strict";
  var form = document.getElementById("release-form");
  if (!form) return;

  function showChosen() {
    var chosen = form.querySelector("input[name=artifact]:checked");
    var value = chosen ? chosen.value : "zip";
    form.querySelectorAll("[data-artifact]").forEach(function (group) {
      var applies = group.getAttribute("data-artifact") === value;
      group.hidden = !applies;
      group.querySelectorAll("input, select, textarea").forEach(function (input) {
        input.disabled = !applies;
      });
    });
  }

  // The names at the zip's root, from its central directory (no library: the end record
  // says where the directory is; each entry holds its name). Null when it is no zip.
  function zipRootNames(file) {
    var tail = Math.min(file.size, 65557);
    return file.slice(file.size - tail).arrayBuffer().then(function (buffer) {
      var end = new DataView(buffer);
      for (var at = buffer.byteLength - 22; at >= 0; at--) {
        if (end.getUint32(at, true) === 0x06054b50) {
          var size = end.getUint32(at + 12, true);
          var offset = end.getUint32(at + 16, true);
          if (offset === 0xffffffff || offset + size > file.size) return null;
          return file.slice(offset, offset + size).arrayBuffer().then(readDirectory);
        }
      }
      return null;
    });
  }

  function readDirectory(buffer) {
    var view = new DataView(buffer);
    var decoder = new TextDecoder();
    var names = [];
    var at = 0;
    while (at + 46 <= buffer.byteLength && view.getUint32(at, true) === 0x02014b50) {
      var nameLength = view.getUint16(at + 28, true);
      var skip = view.getUint16(at + 30, true) + view.getUint16(at + 32, true);
      var name = decoder.decode(new Uint8Array(buffer, at + 46, nameLength));
      if (name.replace(/\/$/, "").indexOf("/") < 0) names.push(name);
      at += 46 + nameLength + skip;
    }
    return names;
  }

  var runtime = form.querySelector("input[name=runtime]");
  var handler = form.querySelector("input[name=handler]");
  var note = document.createElement("small");
  note.className = "muted picked";
  note.id = "runtime-picked";
  note.setAttribute("aria-live", "polite");
  if (runtime) runtime.parentNode.appendChild(note);
  // What the page or this script put there: replaceable. Anything else the person typed.
  var offered = { runtime: runtime && runtime.value, handler: handler && handler.value };

  function offer(input, key, value) {
    if (input && (input.value === offered[key] || input.value === "")) {
      input.value = value;
      offered[key] = value;
      return true;
    }
    return false;
  }

  function pickRuntime(names) {
    if (!names) return;
    var bootstrap = names.indexOf("bootstrap") >= 0;
    var python = names.some(function (n) { return /\.py$/.test(n); });
    var choice = null;
    if (bootstrap && !python) choice = ["provided.al2023", "bootstrap", "a bootstrap at its root (a custom runtime)"];
    else if (python) choice = ["python3.12", names.indexOf("app.py") >= 0 ? "app.handler" : handler.value, "Python files"];
    if (!choice) return;
    var changed = offer(runtime, "runtime", choice[0]);
    changed = offer(handler, "handler", choice[1]) || changed;
    note.textContent = changed
      ? "Runtime " + runtime.value + ", handler " + handler.value + ": the zip has " + choice[2] + "."
      : "";
  }

  var zip = form.querySelector("input[name=zip_file]");
  if (zip && runtime && handler) {
    zip.addEventListener("change", function () {
      if (zip.files.length) zipRootNames(zip.files[0]).then(pickRuntime, function () {});
    });
  }
  form.addEventListener("change", function (event) {
    if (event.target.name === "artifact") showChosen();
  });
  showChosen();
})();
