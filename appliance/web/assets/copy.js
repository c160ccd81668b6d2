// Copy buttons: a click on an element with data-copy="ID" puts the text of element ID on the
// clipboard (the activity audit log's "Show Params"). One listener on the document, loaded by
// every signed-in page, so it also works on pages htmx swaps in. Written for Tapline; no
// inline script is needed, so the content security policy stays strict.
document.addEventListener("click", function (event) {
  "use strict";
  var button = event.target.closest("[data-copy]");
  if (!button) {
    return;
  }
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source || !navigator.clipboard) {
    return;
  }
  navigator.clipboard.writeText(source.textContent).then(function () {
    button.textContent = "Copied";
  });
});
