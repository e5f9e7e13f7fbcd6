//! Model errors: one cloneable type with a stable kind, stored with failed items.

/// What kind of failure a model call had; [`ErrorKind::as_str`] is the stored label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// HTTP 429.
    RateLimited,
    /// HTTP 5xx.
    ServerError,
    /// No reply within the request timeout.
    Timeout,
    /// The connection could not be made or broke.
    Connect,
    /// A reply that is not what the API promises (malformed JSON, no choices, no
    /// content field).
    BadResponse,
    /// A well-formed reply with no text.
    EmptyReply,
    /// The prompt does not fit the model's context.
    ContextOverflow,
    /// HTTP 401/403 or a missing API key.
    Auth,
    /// The server refused the request as malformed (HTTP 400, 404, 422).
    BadRequest,
    /// The model cannot do what was asked (a role or an input it does not take).
    Unsupported,
    /// The model could not be loaded.
    Load,
    /// The server answers but does not serve the configured model (the preflight's
    /// look at `GET /v1/models`).
    UnknownModel,
    /// The request was abandoned (shutdown).
    Cancelled,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::BadResponse => "bad_response",
            Self::EmptyReply => "empty_reply",
            Self::ContextOverflow => "context_overflow",
            Self::Auth => "auth",
            Self::BadRequest => "bad_request",
            Self::Unsupported => "unsupported",
            Self::Load => "load",
            Self::UnknownModel => "unknown_model",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether trying again may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::ServerError | Self::Timeout | Self::Connect
        )
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed model call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model `{model}` failed ({kind}): {message}")]
pub struct ModelError {
    pub kind: ErrorKind,
    /// The entry's name.
    pub model: String,
    pub message: String,
}

impl ModelError {
    pub fn new(kind: ErrorKind, model: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            model: model.to_owned(),
            message: message.into(),
        }
    }

    /// A failed call whose message is `error` and its causes, joined by `: `, for
    /// backends whose own errors keep their cause as a source.
    pub fn from_error(kind: ErrorKind, model: &str, error: &dyn std::error::Error) -> Self {
        Self::new(kind, model, chain(error))
    }

    /// The stable label stored with failed items.
    pub fn kind(&self) -> &'static str {
        self.kind.as_str()
    }
}

/// An error and its causes, joined by `: `; a cause whose text the message already
/// holds is left out.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
