// Starts Swagger UI on /ui/api with the gateway's own /openapi.json. A file of its own, since the
// dashboard's Content-Security-Policy allows no inline script.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  defaultModelsExpandDepth: 0,
});
