// Live state on the home page: service states and calls being recorded, from the server-sent
// events of the stream named by #live's data-source. Written for Tapline; no inline script is
// needed, so the content security policy stays strict.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) {
    return;
  }
  var source = new EventSource(live.dataset.source);
  source.addEventListener("live", function (message) {
    var services = document.getElementById("live-services");
    if (!services) {
      // The page went (htmx swapped it out): stop listening.
      source.close();
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
  });
  window.addEventListener("pagehide", function () {
    source.close();
  });
})();
