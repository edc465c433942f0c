//! The OpenAPI description of the HTTP API, generated from the code: each handler's
//! `#[utoipa::path]` annotation (route, parameters, bodies, answers) is collected as `app`
//! registers it with `utoipa_axum::routes!`, each route's token scope is added from the
//! guard that enforces it, and the result is served at `GET /openapi.json`.

use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::UtoipaMethodRouter;

use super::auth::Scope;
use super::error::ErrorResponse;
use super::feast::{self, FeastErrorBody};

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

/// Documents that every operation of `route` needs a bearer token with `scope`, and so can
/// be refused (4XX) or fail (5XX) with an error answer: an [`ErrorResponse`], or on Feast's
/// routes ([`feast::ROUTES`], the same list the reshaping middleware reads) a
/// [`FeastErrorBody`]. Called by the guard that enforces it, so the description cannot
/// disagree with the server; an answer a handler documents itself is kept.
pub fn require<S>(mut route: UtoipaMethodRouter<S>, scope: Scope) -> UtoipaMethodRouter<S> {
    let mut schemas = Vec::new();
    for (path, item) in route.1.paths.iter_mut() {
        let answers = if feast::ROUTES.contains(&path.as_str()) {
            schema::<FeastErrorBody>(&mut schemas);
            error_answers::<FeastErrorBody>(FEAST_ERROR_ANSWERS)
        } else {
            schema::<ErrorResponse>(&mut schemas);
            error_answers::<ErrorResponse>(ERROR_ANSWERS)
        };
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            operation.security = Some(vec![SecurityRequirement::new(TOKEN, [scope.name()])]);
            for (status, answer) in &answers {
                operation
                    .responses
                    .responses
                    .entry((*status).to_owned())
                    .or_insert_with(|| answer.clone());
            }
        }
    }
    route.0.extend(schemas);
    route
}

/// The error answers of a guarded route, by status range.
const ERROR_ANSWERS: [(&str, &str); 2] = [
    ("4XX", "Refused: the error's code says why"),
    ("5XX", "Unavailable (503, retry later) or a bug (500)"),
];
const FEAST_ERROR_ANSWERS: [(&str, &str); 2] = [
    ("4XX", "Refused: Feast's error shape, with Lockstep's code"),
    (
        "5XX",
        "Unavailable (503, retry later) or a bug (500), in Feast's error shape",
    ),
];

/// Adds `T`'s schema (and those it refers to) to a route's schemas.
fn schema<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

/// JSON answers whose body is `T`, one per (status, description).
fn error_answers<T: ToSchema>(
    answers: [(&'static str, &str); 2],
) -> Vec<(&'static str, RefOr<utoipa::openapi::Response>)> {
    answers
        .into_iter()
        .map(|(status, description)| {
            let answer = ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(T::name())))
                        .build(),
                )
                .build();
            (status, answer.into())
        })
        .collect()
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
