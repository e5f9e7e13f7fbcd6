//! Failure classification of the `openai` backend: which replies are retried (and after
//! how long), which say the server cannot do this kind of request, and the error
//! messages that quote a server.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::HeaderValue;
use serde::Deserialize;

use crate::models::ModelError;

/// What stands for the API key wherever it would be shown.
pub(super) const REDACTED: &str = "<redacted>";

/// A reply body with every occurrence of each secret (the API key, the `extra_headers`
/// values) replaced by [`REDACTED`]. A body that is not UTF-8 is made so first (it is
/// quoted lossily anyway, and JSON is UTF-8); the replacement keeps JSON valid, since it
/// has no quote or backslash.
pub(super) fn redact(body: Bytes, secrets: &[String]) -> Bytes {
    let text = String::from_utf8_lossy(&body);
    let found: Vec<&String> = secrets
        .iter()
        .filter(|s| !s.is_empty() && text.contains(s.as_str()))
        .collect();
    if found.is_empty() {
        return body;
    }
    let mut text = text.into_owned();
    for secret in found {
        text = text.replace(secret.as_str(), REDACTED);
    }
    Bytes::from(text)
}

/// How much of an error body goes into an error message.
const BODY_EXCERPT: usize = 300;

/// What a request carries, for telling a server's "cannot" from a passing failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Carries {
    Text,
    Images,
    Video,
    Embeddings,
}

/// A failed attempt and how long the server asked us to wait.
pub(super) struct Failure {
    pub error: ModelError,
    pub retry_after: Option<Duration>,
}

/// The server's own message from an error body (`{"error": {"message": …}}` or
/// `{"error": "…"}`), or the start of the body.
pub(super) fn error_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Wrapper {
        error: ErrorBody,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ErrorBody {
        Object { message: String },
        Text(String),
    }
    if let Ok(w) = serde_json::from_slice::<Wrapper>(body) {
        return match w.error {
            ErrorBody::Object { message } | ErrorBody::Text(message) => excerpt(&message),
        };
    }
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        "(no body)".to_owned()
    } else {
        excerpt(text.trim())
    }
}

pub(super) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(BODY_EXCERPT) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Whether a 4xx body says the prompt does not fit the model's context (OpenAI, vLLM,
/// llama.cpp, SGLang and Ollama phrase it differently).
pub(super) fn is_context_overflow(body: &[u8]) -> bool {
    const MARKERS: &[&str] = &[
        "context_length_exceeded",
        "maximum context length",
        "context length",
        "context window",
        "exceed_context_size",
        "exceeds the available context",
        "prompt is too long",
        "too many tokens",
        "input is too long",
        "maximum input length",
    ];
    let text = String::from_utf8_lossy(body).to_lowercase();
    MARKERS.iter().any(|m| text.contains(m))
}

/// Whether an error body says the server cannot do this kind of request at all.
pub(super) fn is_unsupported(body: &[u8], carries: Carries) -> bool {
    const MARKERS: &[&str] = &[
        // llama-cpp-python, a text-only chat template given content parts.
        "can only concatenate str",
        // llama-cpp-python without `--embedding`; llama.cpp's server without `--embeddings`.
        "embedding=true",
        "--embedding",
        // llama.cpp's server without a multimodal projector; vLLM with a text-only model.
        "image input is not supported",
        "not a multimodal model",
        "does not support",
        "not supported",
    ];
    let text = String::from_utf8_lossy(body).to_lowercase();
    if MARKERS.iter().any(|m| text.contains(m)) {
        return true;
    }
    // A request validator that names the part type we sent (llama-cpp-python's 422 for
    // `video_url`).
    match carries {
        Carries::Video => text.contains("video_url"),
        Carries::Images => text.contains("image_url") && !text.contains("context"),
        Carries::Text | Carries::Embeddings => false,
    }
}

/// `Retry-After` as seconds or an HTTP date; `None` when it is neither.
pub(super) fn retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = parse_http_date(text)?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form HTTP requires
/// senders to use.
pub(super) fn parse_http_date(text: &str) -> Option<SystemTime> {
    let (_, rest) = text.split_once(", ")?;
    let mut fields = rest.split(' ');
    let day: u32 = fields.next()?.parse().ok()?;
    let month = match fields.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = fields.next()?.parse().ok()?;
    let mut clock = fields.next()?.split(':').map(|f| f.parse::<u64>().ok());
    let (h, m, s) = (clock.next()??, clock.next()??, clock.next()??);
    if fields.next()? != "GMT"
        || fields.next().is_some()
        || !(1..=31).contains(&day)
        || h > 23
        || m > 59
        || s > 60
    {
        return None;
    }
    // Days from 1970-01-01 to the date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(
            retry_after(&HeaderValue::from_static("3")),
            Some(Duration::from_secs(3))
        );
        assert_eq!(retry_after(&HeaderValue::from_static("soon")), None);
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(1_709_164_800))
        );
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(
            retry_after(&HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT")),
            Some(Duration::ZERO)
        );
        let later = SystemTime::now() + Duration::from_secs(120);
        let secs = later.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let (days, rest) = (secs / 86_400, secs % 86_400);
        // Back from days to a civil date, to write the header a server would send.
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let names = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let header = format!(
            "Mon, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
            names[month as usize - 1],
            rest / 3600,
            rest / 60 % 60,
            rest % 60
        );
        let wait = retry_after(&HeaderValue::try_from(header.as_str()).unwrap()).expect(&header);
        assert!(
            wait > Duration::from_secs(110) && wait <= Duration::from_secs(120),
            "{header}: {wait:?}"
        );
    }
}
