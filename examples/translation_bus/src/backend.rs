//! The HTTP backends a translation server calls: LibreTranslate (`POST /translate`) and
//! Ollama (`POST /api/generate`, streamed NDJSON). Both run on worker threads, never inside a
//! bus handler, because they block.

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::protocol::TEXT_LEN_MAX;

/// Longest NDJSON line accepted from Ollama, in bytes. One chunk is a few tokens; a longer
/// line means the server is not speaking the protocol.
pub const NDJSON_LINE_MAX: usize = 64 * 1024;

/// Longest response body accepted from LibreTranslate, in bytes.
pub const RESPONSE_LEN_MAX: u64 = 4 * 1024 * 1024;

/// Why a backend call failed. The message is what the requesting client sees.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The server could not be reached or the connection broke.
    #[error("{service} at {url} is unreachable: {detail}")]
    Unreachable {
        /// `libretranslate` or `ollama`.
        service: &'static str,
        /// The URL called.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The server answered with an HTTP error status.
    #[error("{service} at {url} answered HTTP {status}: {detail}")]
    Status {
        /// `libretranslate` or `ollama`.
        service: &'static str,
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's error message, if it gave one.
        detail: String,
    },
    /// The server answered something that is not the expected protocol.
    #[error("{service} at {url} sent an invalid response: {detail}")]
    Protocol {
        /// `libretranslate` or `ollama`.
        service: &'static str,
        /// The URL called.
        url: String,
        /// What was wrong.
        detail: String,
    },
    /// The requester went away (the streaming callback asked to stop).
    #[error("cancelled")]
    Cancelled,
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(5).min(timeout)))
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

fn unreachable(service: &'static str, url: &str, error: impl std::fmt::Display) -> BackendError {
    BackendError::Unreachable {
        service,
        url: url.to_string(),
        detail: error.to_string(),
    }
}

fn protocol(service: &'static str, url: &str, detail: impl std::fmt::Display) -> BackendError {
    BackendError::Protocol {
        service,
        url: url.to_string(),
        detail: detail.to_string(),
    }
}

/// Reads an error body's `{"error": "..."}` message (both servers use that shape), or the
/// start of the raw body.
fn error_detail(body: &mut ureq::Body) -> String {
    let mut raw = Vec::new();
    let _ = body.as_reader().take(4096).read_to_end(&mut raw);
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
    }
    match serde_json::from_slice::<ErrorBody>(&raw) {
        Ok(body) => body.error,
        Err(_) => String::from_utf8_lossy(&raw)
            .trim()
            .chars()
            .take(200)
            .collect(),
    }
}

/// Joins a base URL and a path without doubling the slash.
fn endpoint(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// A LibreTranslate server.
#[derive(Debug, Clone)]
pub struct LibreTranslate {
    url: String,
    api_key: Option<String>,
    agent: ureq::Agent,
}

#[derive(Serialize)]
struct TranslateBody<'a> {
    q: &'a str,
    source: &'a str,
    target: &'a str,
    format: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<&'a str>,
}

#[derive(Deserialize)]
struct TranslateResponse {
    #[serde(rename = "translatedText")]
    translated_text: String,
}

impl LibreTranslate {
    /// A client for the server at `base_url` (for example `http://localhost:5000`); each call
    /// gives up after `timeout`.
    pub fn new(base_url: &str, api_key: Option<String>, timeout: Duration) -> LibreTranslate {
        LibreTranslate {
            url: endpoint(base_url, "/translate"),
            api_key,
            agent: agent(timeout),
        }
    }

    /// Translates `text` from `source` (or `auto`) to `target`.
    pub fn translate(
        &self,
        text: &str,
        source: &str,
        target: &str,
        format: &str,
    ) -> Result<String, BackendError> {
        const SERVICE: &str = "libretranslate";
        let body = TranslateBody {
            q: text,
            source,
            target,
            format,
            api_key: self.api_key.as_deref(),
        };
        let mut response = self
            .agent
            .post(&self.url)
            .send_json(&body)
            .map_err(|e| unreachable(SERVICE, &self.url, e))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(BackendError::Status {
                service: SERVICE,
                url: self.url.clone(),
                status,
                detail: error_detail(response.body_mut()),
            });
        }
        let parsed: TranslateResponse = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_LEN_MAX)
            .read_json()
            .map_err(|e| protocol(SERVICE, &self.url, e))?;
        if parsed.translated_text.len() > TEXT_LEN_MAX {
            return Err(protocol(
                SERVICE,
                &self.url,
                format!("translation longer than {TEXT_LEN_MAX} bytes"),
            ));
        }
        Ok(parsed.translated_text)
    }
}

/// An Ollama server and the model to run on it.
#[derive(Debug, Clone)]
pub struct Ollama {
    url: String,
    model: String,
    agent: ureq::Agent,
}

#[derive(Serialize)]
struct GenerateBody<'a> {
    model: &'a str,
    prompt: &'a str,
    stream: bool,
}

#[derive(Deserialize)]
struct GenerateChunk {
    #[serde(default)]
    response: String,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    error: Option<String>,
}

/// What the streaming callback tells [`Ollama::generate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Stop: the result is no longer wanted.
    Stop,
}

impl Ollama {
    /// A client for the server at `base_url` (for example `http://localhost:11434`) running
    /// `model`; a whole generation gives up after `timeout`.
    pub fn new(base_url: &str, model: &str, timeout: Duration) -> Ollama {
        Ollama {
            url: endpoint(base_url, "/api/generate"),
            model: model.to_string(),
            agent: agent(timeout),
        }
    }

    /// The prompt that asks the model for a translation and nothing else.
    pub fn prompt(text: &str, source: &str, target: &str) -> String {
        let name = |code: &str| {
            tamtam_engine::core::registry::LANGUAGE_PORTS
                .iter()
                .find(|l| l.code.eq_ignore_ascii_case(code))
                .map_or_else(|| code.to_string(), |l| format!("{} ({})", l.name, l.code))
        };
        let from = if source.eq_ignore_ascii_case("auto") {
            String::new()
        } else {
            format!(" from {}", name(source))
        };
        format!(
            "Translate the following text{from} to {}. Answer with the translation only, \
             without quotes or explanations.\n\n{text}",
            name(target)
        )
    }

    /// Runs the model on `prompt`, calling `on_chunk` with each piece of the answer as it
    /// arrives (in order, empty pieces skipped). Returns the whole answer.
    pub fn generate(
        &self,
        prompt: &str,
        mut on_chunk: impl FnMut(&str) -> Flow,
    ) -> Result<String, BackendError> {
        const SERVICE: &str = "ollama";
        let body = GenerateBody {
            model: &self.model,
            prompt,
            stream: true,
        };
        let mut response = self
            .agent
            .post(&self.url)
            .send_json(&body)
            .map_err(|e| unreachable(SERVICE, &self.url, e))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(BackendError::Status {
                service: SERVICE,
                url: self.url.clone(),
                status,
                detail: error_detail(response.body_mut()),
            });
        }
        let mut reader = BufReader::new(response.body_mut().as_reader());
        let mut whole = String::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut reader)
                .take(NDJSON_LINE_MAX as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| unreachable(SERVICE, &self.url, e))?;
            if n == 0 {
                return Err(protocol(SERVICE, &self.url, "stream ended before done"));
            }
            if n > NDJSON_LINE_MAX {
                return Err(protocol(
                    SERVICE,
                    &self.url,
                    format!("line longer than {NDJSON_LINE_MAX} bytes"),
                ));
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let chunk: GenerateChunk =
                serde_json::from_slice(&line).map_err(|e| protocol(SERVICE, &self.url, e))?;
            if let Some(error) = chunk.error {
                return Err(BackendError::Status {
                    service: SERVICE,
                    url: self.url.clone(),
                    status,
                    detail: error,
                });
            }
            if !chunk.response.is_empty() {
                if whole.len() + chunk.response.len() > TEXT_LEN_MAX {
                    return Err(protocol(
                        SERVICE,
                        &self.url,
                        format!("answer longer than {TEXT_LEN_MAX} bytes"),
                    ));
                }
                whole.push_str(&chunk.response);
                if on_chunk(&chunk.response) == Flow::Stop {
                    return Err(BackendError::Cancelled);
                }
            }
            if chunk.done {
                return Ok(whole);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_joins_once() {
        assert_eq!(
            endpoint("http://h:1/", "/translate"),
            "http://h:1/translate"
        );
        assert_eq!(endpoint("http://h:1", "/translate"), "http://h:1/translate");
    }

    #[test]
    fn prompt_names_the_languages() {
        let p = Ollama::prompt("Hello", "en", "cs");
        assert!(p.contains("from English (en)"));
        assert!(p.contains("to Czech (cs)"));
        assert!(p.ends_with("Hello"));
        assert!(!Ollama::prompt("Hi", "auto", "xx").contains("from"));
    }
}
