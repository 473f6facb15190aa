//! The route table of the HTTP API. One function serves each group of
//! routes, but every function routes with this one table, so a path is
//! classified the same way everywhere (unknown → 404, wrong method → 405).

use lambda_http::http::Method;

use super::problem::ApiError;

/// A matched route. Path ids stay raw strings: the operation parses them,
/// and a malformed id is simply not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /runs` (start-run)
    StartRun,
    /// `GET /runs` (job-status)
    ListRuns,
    /// `GET /runs/{id}` (job-status)
    GetRun(String),
    /// `GET /runs/{id}/events` (job-status)
    ListRunEvents(String),
    /// `GET /runs/{id}/metrics` (job-status): JSON, or SVG by `Accept`
    GetRunMetrics(String),
    /// `GET /runs/{id}/evaluation` (job-status)
    GetRunEvaluation(String),
    /// `POST /runs/{id}/cancel` (cancel)
    CancelRun(String),
    /// `GET /limits` (job-status): the tenant's limits and usage
    GetLimits,
    /// `GET /datasets/{id}` (job-status)
    GetDataset(String),
    /// `GET /datasets/{id}/download?file=` (job-status)
    DownloadDataset(String),
    /// `GET /models/{id}/download` (models)
    DownloadModel(String),
    /// `POST /webhooks/openai` (webhook; signed, no authorizer)
    OpenAiWebhook,
    /// `GET /models` (models)
    ListModels,
    /// `GET /models/active` (models)
    GetActiveModel,
    /// `GET /models/{id}` (models)
    GetModel(String),
    /// `POST /models/{id}/activate` (models)
    ActivateModel(String),
    /// `DELETE /models/{id}` (models)
    DeleteModel(String),
}

/// Every route as `(method, path pattern)`, e.g. for the SAM template.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/runs"),
    ("GET", "/runs"),
    ("GET", "/runs/{id}"),
    ("GET", "/runs/{id}/events"),
    ("GET", "/runs/{id}/metrics"),
    ("GET", "/runs/{id}/evaluation"),
    ("POST", "/runs/{id}/cancel"),
    ("GET", "/limits"),
    ("GET", "/datasets/{id}"),
    ("GET", "/datasets/{id}/download"),
    ("POST", "/webhooks/openai"),
    ("GET", "/models"),
    ("GET", "/models/active"),
    ("GET", "/models/{id}"),
    ("POST", "/models/{id}/activate"),
    ("GET", "/models/{id}/download"),
    ("DELETE", "/models/{id}"),
];

/// Matches `method` and `path` (stage already removed). A trailing slash
/// is tolerated; empty segments are not.
pub fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
    if !path.starts_with('/') || segments.iter().any(|s| s.is_empty()) {
        return Err(not_found());
    }
    let (allowed, matched): (&[&'static str], Option<Route>) = match segments.as_slice() {
        ["runs"] => (
            &["GET", "POST"],
            match *method {
                Method::GET => Some(Route::ListRuns),
                Method::POST => Some(Route::StartRun),
                _ => None,
            },
        ),
        ["runs", id] => (
            &["GET"],
            (*method == Method::GET).then(|| Route::GetRun((*id).to_owned())),
        ),
        ["runs", id, "events"] => (
            &["GET"],
            (*method == Method::GET).then(|| Route::ListRunEvents((*id).to_owned())),
        ),
        ["runs", id, "metrics"] => (
            &["GET"],
            (*method == Method::GET).then(|| Route::GetRunMetrics((*id).to_owned())),
        ),
        ["runs", id, "evaluation"] => (
            &["GET"],
            (*method == Method::GET).then(|| Route::GetRunEvaluation((*id).to_owned())),
        ),
        ["runs", id, "cancel"] => (
            &["POST"],
            (*method == Method::POST).then(|| Route::CancelRun((*id).to_owned())),
        ),
        ["limits"] => (
            &["GET"],
            (*method == Method::GET).then_some(Route::GetLimits),
        ),
        ["datasets", id] => (
            &["GET"],
            (*method == Method::GET).then(|| Route::GetDataset((*id).to_owned())),
        ),
        ["datasets", id, "download"] => (
            &["GET"],
            (*method == Method::GET).then(|| Route::DownloadDataset((*id).to_owned())),
        ),
        ["models", id, "download"] => (
            &["GET"],
            (*method == Method::GET).then(|| Route::DownloadModel((*id).to_owned())),
        ),
        ["models"] => (
            &["GET"],
            (*method == Method::GET).then_some(Route::ListModels),
        ),
        // `active` is not a model id (ids start with `mdl_`).
        ["models", "active"] => (
            &["GET"],
            (*method == Method::GET).then_some(Route::GetActiveModel),
        ),
        ["models", id] => (
            &["GET", "DELETE"],
            match *method {
                Method::GET => Some(Route::GetModel((*id).to_owned())),
                Method::DELETE => Some(Route::DeleteModel((*id).to_owned())),
                _ => None,
            },
        ),
        ["models", id, "activate"] => (
            &["POST"],
            (*method == Method::POST).then(|| Route::ActivateModel((*id).to_owned())),
        ),
        ["webhooks", "openai"] => (
            &["POST"],
            (*method == Method::POST).then_some(Route::OpenAiWebhook),
        ),
        _ => return Err(not_found()),
    };
    matched.ok_or_else(|| ApiError::MethodNotAllowed {
        method: method.to_string(),
        allowed: allowed.to_vec(),
    })
}

pub(crate) fn not_found() -> ApiError {
    ApiError::NotFound("no such resource".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_matches() {
        assert_eq!(route(&Method::POST, "/runs"), Ok(Route::StartRun));
        assert_eq!(route(&Method::GET, "/runs/"), Ok(Route::ListRuns));
        assert_eq!(
            route(&Method::GET, "/runs/r1"),
            Ok(Route::GetRun("r1".into()))
        );
        assert_eq!(
            route(&Method::GET, "/runs/r1/events"),
            Ok(Route::ListRunEvents("r1".into()))
        );
        assert_eq!(
            route(&Method::POST, "/runs/r1/cancel"),
            Ok(Route::CancelRun("r1".into()))
        );
        assert_eq!(
            route(&Method::GET, "/datasets/d1"),
            Ok(Route::GetDataset("d1".into()))
        );
        assert_eq!(
            route(&Method::POST, "/webhooks/openai"),
            Ok(Route::OpenAiWebhook)
        );
        assert_eq!(route(&Method::GET, "/models"), Ok(Route::ListModels));
        assert_eq!(
            route(&Method::GET, "/models/active"),
            Ok(Route::GetActiveModel)
        );
        assert_eq!(
            route(&Method::DELETE, "/models/m1"),
            Ok(Route::DeleteModel("m1".into()))
        );
        assert_eq!(
            route(&Method::POST, "/models/m1/activate"),
            Ok(Route::ActivateModel("m1".into()))
        );
        assert_eq!(
            route(&Method::GET, "/runs/r1/metrics"),
            Ok(Route::GetRunMetrics("r1".into()))
        );
        assert_eq!(
            route(&Method::GET, "/runs/r1/evaluation"),
            Ok(Route::GetRunEvaluation("r1".into()))
        );
        assert_eq!(
            route(&Method::GET, "/models/m1/download"),
            Ok(Route::DownloadModel("m1".into()))
        );
        assert_eq!(
            route(&Method::GET, "/datasets/d1/download"),
            Ok(Route::DownloadDataset("d1".into()))
        );
        assert_eq!(ROUTES.len(), 17);
    }

    #[test]
    fn unknown_paths_are_404() {
        for p in [
            "/",
            "",
            "/run",
            "/runs//events",
            "/runs/r1/x",
            "/datasets",
            "/a/b/c/d",
        ] {
            assert!(
                matches!(route(&Method::GET, p), Err(ApiError::NotFound(_))),
                "{p}"
            );
        }
    }

    #[test]
    fn wrong_methods_are_405_with_the_allowed_ones() {
        let err = route(&Method::DELETE, "/runs").unwrap_err();
        assert_eq!(
            err,
            ApiError::MethodNotAllowed {
                method: "DELETE".into(),
                allowed: vec!["GET", "POST"]
            }
        );
        let err = route(&Method::GET, "/runs/r1/cancel").unwrap_err();
        assert!(
            matches!(err, ApiError::MethodNotAllowed { ref allowed, .. } if allowed == &["POST"])
        );
        assert!(matches!(
            route(&Method::POST, "/runs/r1"),
            Err(ApiError::MethodNotAllowed { .. })
        ));
    }
}
