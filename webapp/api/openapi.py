"""The OpenAPI document (flask-smorest, from api.schemas) and the reference page at /api/docs."""

from pathlib import Path

import swagger_ui_bundle
from flask import Blueprint, Flask, render_template, send_from_directory
from flask_smorest import Api

from webapp.api import schemas

# The reference page's own assets, served by the app (Swagger UI from its pip package).
SWAGGER_UI_DIR = Path(swagger_ui_bundle.swagger_ui_path)
SWAGGER_UI_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")
# Swagger UI writes style attributes while it renders.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'self'"
)


class OpenApi(Api):
    """flask-smorest's Api, with the app's own JSON errors (api.routes, webapp's handlers)
    instead of flask-smorest's app-wide error handler."""

    ERROR_SCHEMA = schemas.Error

    def _register_error_handlers(self):
        pass


docs = Blueprint("api_docs", __name__, url_prefix="/api/docs")


@docs.get("")
def reference():
    response = render_template("api/docs.html")
    return response, 200, {"Content-Security-Policy": DOCS_CSP}


@docs.get("/assets/<name>")
def asset(name: str):
    if name not in SWAGGER_UI_FILES:
        return "", 404
    return send_from_directory(SWAGGER_UI_DIR, name, max_age=86400)


def register_api(app: Flask, blueprint) -> None:
    app.config.setdefault("API_TITLE", "Credits store API")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/api")
    app.config.setdefault("OPENAPI_JSON_PATH", "v1/openapi.json")
    api = OpenApi(
        app,
        spec_kwargs={
            "info": {
                "description": "Authenticate with `Authorization: Bearer <api key>` "
                "(make one on /account) or a logged-in session (POSTs then need X-CSRFToken). "
                'Every error is JSON: `{"error": "<code>", ...}`.'
            },
            "security": [{"bearerAuth": []}],
        },
    )
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    api.register_blueprint(blueprint)
    app.register_blueprint(docs)
