// Live state: service states and calls being recorded, from the server-sent events of the
// stream named by #live's data-source (the home page has it). Loaded by every signed-in page,
// since htmx swaps pages in without running their scripts: it follows each swap, opening the
// stream when #live arrives and closing it when #live goes. Written for Tapline; no inline
// script is needed, so the content security policy stays strict.
(function () {
  "use strict";
  if (!window.EventSource) {
    return;
  }
  var source = null;
  var url = null;

  function close() {
    if (source) {
      source.close();
      source = null;
      url = null;
    }
  }

  function apply(message) {
    var services = document.getElementById("live-services");
    if (!services) {
      close();
      return;
    }
    var state = JSON.parse(message.data);
    document.getElementById("live-recording").textContent = String(state.recording);
    document.getElementById("live-updated").textContent = state.at;
    var rows = state.services.map(function (service) {
      var row = document.createElement("tr");
      [service.name, service.state, String(service.restarts)].forEach(function (text) {
        var cell = document.createElement("td");
        cell.textContent = text;
        row.appendChild(cell);
      });
      return row;
    });
    services.replaceChildren.apply(services, rows);
  }

  // Opens, keeps or closes the stream to match the page now shown.
  function sync() {
    var live = document.getElementById("live");
    var wanted = live ? live.dataset.source : null;
    if (wanted === url) {
      return;
    }
    close();
    if (wanted) {
      url = wanted;
      source = new EventSource(wanted);
      source.addEventListener("live", apply);
    }
  }

  sync();
  document.addEventListener("htmx:afterSettle", sync);
  document.addEventListener("htmx:historyRestore", sync);
  window.addEventListener("pagehide", close);
  window.addEventListener("pageshow", sync);
})();
