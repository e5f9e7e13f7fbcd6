//! The preflight: before a command starts work, each model it will use is checked once,
//! so that a stopped server or a misspelt model name fails the command at once, with
//! the config key that names the model, instead of failing every item one by one.
//!
//! An `openai` entry's server must answer `GET {base_url}/models` and list the entry's
//! `model` ([`super::openai::OpenAiModel::check_served`]); an in-process entry (`gguf`,
//! `onnx`) must load. It loads into the [`ModelSet`] that the command then runs with,
//! so nothing loads twice.
//!
//! Threads: the checks run one after another on the caller's runtime; an in-process
//! model loads there as it would on first use.

use std::collections::HashSet;

use super::{ModelError, ModelSet, Role};

/// A model a command will use, with the key or flag that names it (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelUse {
    /// The entry's name.
    pub name: String,
    pub role: Role,
    /// Where the name was given, as the user wrote it: `[wolf] llm = "smollm2"`,
    /// `--judge smollm2`.
    pub key: String,
}

impl ModelUse {
    /// A use named by `by`: a config key (`[score] judge`, rendered `[score] judge =
    /// "NAME"`) or a flag (`--judge`, rendered `--judge NAME`).
    pub fn named(by: &str, name: &str, role: Role) -> Self {
        let key = if by.starts_with("--") {
            format!("{by} {name}")
        } else {
            format!("{by} = \"{name}\"")
        };
        Self {
            name: name.to_owned(),
            role,
            key,
        }
    }

    /// A use named in the list `by` (`[wolf] image_models`), rendered with the whole
    /// list.
    pub fn listed(by: &str, list: &[String], name: &str, role: Role) -> Self {
        let items: Vec<String> = list.iter().map(|n| format!("\"{n}\"")).collect();
        Self {
            name: name.to_owned(),
            role,
            key: format!("{by} = [{}]", items.join(", ")),
        }
    }
}

/// A model that failed its preflight.
#[derive(Debug, Clone, thiserror::Error)]
#[error("preflight: `{key}`")]
pub struct PreflightError {
    /// The entry's name.
    pub name: String,
    /// Where it was named ([`ModelUse::key`]).
    pub key: String,
    #[source]
    pub source: ModelError,
}

impl PreflightError {
    /// The model error's stable label.
    pub fn kind(&self) -> &'static str {
        self.source.kind()
    }
}

impl ModelSet {
    /// Checks every model of `uses` once (an entry used in two roles is built once and
    /// asked once), in order; the first failure ends it.
    pub async fn preflight(&self, uses: &[ModelUse]) -> Result<(), PreflightError> {
        let mut asked: HashSet<&str> = HashSet::new();
        let mut checked: HashSet<(&str, Role)> = HashSet::new();
        for model in uses {
            if !checked.insert((&model.name, model.role)) {
                continue;
            }
            let ask_server = asked.insert(&model.name);
            tracing::debug!(model = %model.name, key = %model.key, "Checking a model.");
            self.check(&model.name, model.role, ask_server)
                .await
                .map_err(|source| PreflightError {
                    name: model.name.clone(),
                    key: model.key.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}

#[cfg(all(test, feature = "openai"))]
mod tests {
    use super::*;
    use crate::models::scripted::{Behaviour, Script, ScriptedServer};
    use crate::models::{ErrorKind, ModelConfig};

    fn set(base_url: &str, model: &str) -> ModelSet {
        let entry: ModelConfig = toml::from_str(&format!(
            "backend = \"openai\"\nbase_url = \"{base_url}\"\nmodel = \"{model}\"\n"
        ))
        .unwrap();
        ModelSet::new([("llm".to_owned(), entry)].into())
    }

    fn uses() -> Vec<ModelUse> {
        vec![
            ModelUse::named("[wolf] llm", "llm", Role::Chat),
            ModelUse::named("[wolf] summary_llm", "llm", Role::Chat),
        ]
    }

    #[tokio::test]
    async fn a_listed_model_passes_and_is_asked_once() {
        let server =
            ScriptedServer::start(Script::always(Behaviour::Echo).with_models(["m"])).unwrap();
        set(server.base_url(), "m")
            .preflight(&uses())
            .await
            .unwrap();
        // The check is a GET, which the script's chat and embeddings count leaves alone.
        assert_eq!(server.requests(), 0);
    }

    #[tokio::test]
    async fn a_stopped_server_fails_with_the_key_that_names_the_model() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/v1");
        let started = std::time::Instant::now();
        let err = set(&url, "m").preflight(&uses()).await.unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(err.source.kind, ErrorKind::Connect, "{err}");
        assert_eq!(err.name, "llm");
        let text = err.to_string();
        assert!(text.contains(r#"`[wolf] llm = "llm"`"#), "{text}");
    }

    #[tokio::test]
    async fn a_model_the_server_does_not_list_is_named_with_those_it_does() {
        let server =
            ScriptedServer::start(Script::always(Behaviour::Echo).with_models(["a", "b"])).unwrap();
        let err = set(server.base_url(), "smollm2")
            .preflight(&uses())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "unknown_model", "{err}");
        let text = format!("{}: {}", err, err.source);
        assert!(
            text.contains("`smollm2`") && text.contains("`a`, `b`"),
            "{text}"
        );
    }

    #[test]
    fn keys_render_as_written() {
        assert_eq!(ModelUse::named("--judge", "j", Role::Chat).key, "--judge j");
        assert_eq!(
            ModelUse::named("[score] judge", "j", Role::Chat).key,
            r#"[score] judge = "j""#
        );
        let list = ["a".to_owned(), "b".to_owned()];
        assert_eq!(
            ModelUse::listed("[wolf] image_models", &list, "b", Role::ImageCaptioner).key,
            r#"[wolf] image_models = ["a", "b"]"#
        );
    }
}
