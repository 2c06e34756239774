//! The one error type at the HTTP edge: `{"error": {"type", "code", "message", "param"}}`
//! with the right status. Every internal error maps here exhaustively; 5xx messages stay
//! opaque to clients while the cause is logged.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::fmt;

use crate::actors::EngineError;
use crate::connectors::ConnectorError;
use crate::domain::DomainError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    code: &'a str,
    message: &'a str,
    param: Option<&'a str>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn param(mut self, p: impl Into<String>) -> Self {
        self.param = Some(p.into());
        self
    }

    /// 400 `invalid_request_error` about one parameter.
    pub fn invalid(param: &str, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
        .param(param)
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "resource_missing",
            format!("no such {what}"),
        )
    }

    pub fn unauthorized(message: &str) -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            message,
        )
    }

    pub fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "internal_error",
            "an internal error occurred; it has been logged",
        )
    }

    pub fn body_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&Body {
            error: Inner {
                kind: self.kind,
                code: self.code,
                message: &self.message,
                param: self.param.as_deref(),
            },
        })
        .unwrap_or_default()
    }
}

/// A risk denial: 402 `risk_error` with the rule's stable code.
impl From<crate::risk::Denial> for ApiError {
    fn from(d: crate::risk::Denial) -> Self {
        ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "risk_error",
            d.rule.code(),
            d.message,
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut b = HttpResponse::build(self.status);
        b.insert_header((header::CONTENT_TYPE, "application/json"));
        if let Some(s) = self.retry_after {
            b.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        b.body(self.body_bytes())
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let msg = e.to_string();
        match e {
            DomainError::UnknownCurrency(_) | DomainError::CurrencyMismatch { .. } => {
                ApiError::invalid("currency", "invalid_currency", msg)
            }
            DomainError::UnknownMethod(_) => ApiError::invalid("method", "invalid_method", msg),
            DomainError::UnknownWallet(_) => ApiError::invalid("wallet", "invalid_wallet", msg),
            DomainError::NonPositiveAmount(_)
            | DomainError::AmountTooLarge(_)
            | DomainError::BadDecimal(_) => ApiError::invalid("amount", "invalid_amount", msg),
            DomainError::RefundExceedsPaid { .. } => {
                ApiError::invalid("amount", "amount_exceeds_refundable", msg)
            }
            DomainError::BadId(_) => ApiError::invalid("id", "invalid_id", msg),
            DomainError::BadMerchantRef => {
                ApiError::invalid("merchant_ref", "invalid_reference", msg)
            }
            DomainError::InvalidTransition { .. } | DomainError::UnknownRefund => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "order_state_conflict",
                msg,
            ),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound => ApiError::not_found("order"),
            EngineError::Domain(d) => d.into(),
            EngineError::Conflict(m) => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "order_state_conflict",
                m,
            ),
            EngineError::DuplicateOrder(id) => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "duplicate_merchant_order_no",
                format!("merchant_order_no is already used by order {id}"),
            )
            .param("merchant_order_no"),
            EngineError::DuplicateRefund(id) => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "duplicate_merchant_refund_no",
                format!("merchant_refund_no is already used by refund {id}"),
            )
            .param("merchant_refund_no"),
            EngineError::Provider(c) => c.into(),
            EngineError::Risk(d) => d.into(),
            EngineError::RateLimited {
                channel,
                retry_after_secs,
            } => {
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "channel_rate_limited",
                    format!("channel `{channel}` is over its rate limit; retry after {retry_after_secs} s"),
                );
                e.retry_after = Some(retry_after_secs);
                e
            }
            EngineError::Store(crate::store::StoreError::Unavailable(m)) => {
                // The database is away (postgres backend): nothing was written; the node
                // takes writes again by itself once it is back.
                tracing::warn!(error = %m, "storage unavailable");
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "api_error",
                    "temporarily_unavailable",
                    "storage is temporarily unavailable; retry later",
                );
                e.retry_after = Some(1);
                e
            }
            EngineError::Store(s) => {
                tracing::error!(error = %s, "storage error");
                ApiError::internal()
            }
            EngineError::Stale => {
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "api_error",
                    "temporarily_unavailable",
                    "the order changed concurrently; retry",
                );
                e.retry_after = Some(1);
                e
            }
            EngineError::Unavailable(m) => {
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "api_error",
                    "temporarily_unavailable",
                    m,
                );
                e.retry_after = Some(1);
                e
            }
        }
    }
}

impl From<ConnectorError> for ApiError {
    fn from(c: ConnectorError) -> Self {
        let msg = c.to_string();
        match c {
            ConnectorError::InvalidRequest { param, .. } => {
                ApiError::invalid(param, "rejected_by_channel_rules", msg)
            }
            ConnectorError::Unsupported(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "unsupported_by_channel",
                msg,
            ),
            ConnectorError::Rejected { .. } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider_error",
                "provider_rejected",
                msg,
            ),
            ConnectorError::Transport(_) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider_error",
                "provider_unavailable",
                msg,
            ),
            ConnectorError::Signature(_)
            | ConnectorError::Protocol(_)
            | ConnectorError::BadNotification(_)
            | ConnectorError::Unappliable { .. } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider_error",
                "provider_invalid_response",
                msg,
            ),
            ConnectorError::Config(_) => {
                tracing::error!(error = %msg, "connector configuration error");
                ApiError::internal()
            }
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        EngineError::Store(e).into()
    }
}
