// Starts Swagger UI on the API docs page (app/templates/swagger_ui.html) from a file, not an inline
// script, so that the page's Content-Security-Policy can forbid inline code.
window.addEventListener("load", function () {
  var container = document.getElementById("swagger-ui-container");
  var config = {
    url: container.dataset.specUrl,
    dom_id: "#swagger-ui-container",
    validatorUrl: null, // never send the document to an online validator
  };
  var overrides = JSON.parse(container.dataset.config);
  for (var name in overrides) {
    config[name] = overrides[name];
  }
  window.ui = SwaggerUIBundle(config);
});
