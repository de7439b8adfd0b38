// Swagger UI for payq's /openapi.json: a file of payq's own, so the page needs no inline script (its CSP allows none).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null, // never ask a third party to validate the document
  presets: [SwaggerUIBundle.presets.apis],
});
