//! API errors: one JSON shape, `{"error": "...", "parameter": "..."}`, for every failure.
//!
//! Staff scripts branch on the status code and show `error` to a person; `parameter` names the
//! query parameter to fix, so a 400 is never a guessing game.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use poolguard_store::StoreError;

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub parameter: Option<&'static str>,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

impl ApiError {
    /// 400 for one bad query parameter.
    pub fn bad_param(parameter: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            parameter: Some(parameter),
        }
    }

    /// Any other status with a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            parameter: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Timeout(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            StoreError::BadCursor => ApiError::bad_param("cursor", e.to_string()),
            other => {
                tracing::error!(error = %other, "store read failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "store read failed; see the server log",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            parameter: self.parameter.map(str::to_string),
        };
        (self.status, Json(body)).into_response()
    }
}

/// Unknown paths get the same JSON shape as every other error.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint; see /api/v1/openapi.json",
    )
}
