//! The OpenAPI description of the HTTP API, generated from the code: each handler's
//! `#[utoipa::path]` annotation (route, parameters, bodies, answers) is collected as `app`
//! registers it with `utoipa_axum::routes!`, each route's token scope is added from the
//! guard that enforces it, and the result is served at `GET /openapi.json`.

use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::UtoipaMethodRouter;

use super::auth::Scope;

/// The parts of the description no handler carries: title, summary, the bearer scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lockstep",
        description = "Lockstep's HTTP API: transforms, definitions, backfills and training sets, and Feast's online serving endpoints. Errors are `{\"error\": {\"code\", \"message\"}}` with stable codes; on Feast's routes, Feast's shape (a JSON string holding `{\"module\", \"class\", \"message\", \"error\"}`)."
    ),
    modifiers(&BearerTokens)
)]
pub struct ApiDoc;

/// The name of the bearer-token security scheme.
const TOKEN: &str = "token";

struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`LOCKSTEP_TOKENS` secrets; scopes read < write < admin. Without tokens the server runs open on loopback only.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Documents that every operation of `route` needs a bearer token with `scope`: called by
/// the guard that enforces it, so the description cannot disagree with the server.
pub fn require<S>(mut route: UtoipaMethodRouter<S>, scope: Scope) -> UtoipaMethodRouter<S> {
    for item in route.1.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            operation.security = Some(vec![SecurityRequirement::new(TOKEN, [scope.name()])]);
        }
    }
    route
}

/// The description, serialized once when the router is built.
#[derive(Clone)]
pub struct Document(Arc<str>);

impl Document {
    pub fn new(openapi: &utoipa::openapi::OpenApi) -> Self {
        Self(
            openapi
                .to_json()
                .expect("the OpenAPI description serializes")
                .into(),
        )
    }
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "server",
    responses((status = 200, description = "This description of the API (OpenAPI)", body = Object))
)]
pub async fn openapi_json(Extension(document): Extension<Document>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.0.to_string(),
    )
        .into_response()
}
