//! `wolf model list|check` against a scripted OpenAI-compatible server and the default
//! GGUF LLM.

use wolf_pipeline::models::scripted::{Behaviour, Script, ScriptedServer};

use crate::util::{Dir, Run};

fn openai_config(dir: &Dir, base_url: &str, extra: &str) -> String {
    let text = format!(
        "[models.remote]\nbackend = \"openai\"\nbase_url = \"{base_url}\"\nmodel = \"m\"\nmax_retries = 1\nmax_backoff_s = 0.05\ntimeout_s = 2.0\n{extra}\n\
         [models.local]\nbackend = \"gguf\"\n"
    );
    std::fs::write(dir.join("models.toml"), text).unwrap();
    dir.join("models.toml").display().to_string()
}

#[test]
fn check_prints_the_reply_latency_and_tokens_of_an_openai_entry() {
    let dir = Dir::new();
    let server = ScriptedServer::start(Script::always(Behaviour::Text(
        "Hello from the script.".into(),
    )))
    .unwrap();
    let config = openai_config(&dir, server.base_url(), "");
    let run = dir
        .wolf(&["model", "check", "remote", "--config", &config])
        .expect_code(0);
    assert!(
        run.stdout().contains("Hello from the script."),
        "{}",
        run.stdout()
    );
    assert!(run.stdout().contains("1 attempt(s)"), "{}", run.stdout());
    assert_eq!(server.requests(), 1);

    let list = dir
        .wolf(&["model", "list", "--config", &config])
        .expect_code(0)
        .stdout();
    assert!(
        list.contains("remote") && list.contains("openai") && list.contains("local"),
        "{list}"
    );
}

#[test]
fn check_exits_non_zero_with_the_error_kind() {
    let dir = Dir::new();
    let server = ScriptedServer::start(Script::always(Behaviour::ServerError)).unwrap();
    let config = openai_config(&dir, server.base_url(), "");
    let run = dir
        .wolf(&["model", "check", "remote", "--config", &config])
        .expect_code(2);
    assert!(run.stderr().contains("server_error"), "{}", run.stderr());
    assert_eq!(server.requests(), 2, "one retry");
}

#[test]
fn check_never_prints_a_key_the_server_echoes() {
    const KEY: &str = "sk-first-hour-0123456789";
    let dir = Dir::new();
    let server = ScriptedServer::start(Script::always(Behaviour::EchoAuthorization(401))).unwrap();
    let config = openai_config(&dir, server.base_url(), "api_key_env = \"WOLF_TEST_KEY\"");
    let output = dir
        .command(&["model", "check", "remote", "--config", &config])
        .env("WOLF_TEST_KEY", KEY)
        .output()
        .unwrap();
    let run = Run { output }.expect_code(2);
    assert!(
        run.stderr().contains("Bearer <redacted>"),
        "{}",
        run.stderr()
    );
    assert!(
        !run.stderr().contains(KEY) && !run.stdout().contains(KEY),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_role_the_backend_cannot_serve_is_refused_by_name() {
    let dir = Dir::new();
    let config = openai_config(&dir, "http://127.0.0.1:9/v1", "");
    let image = dir.join("f.png");
    image::RgbImage::new(8, 8).save(&image).unwrap();
    let run = dir
        .wolf(&[
            "model",
            "check",
            "local",
            "--config",
            &config,
            "--image",
            image.to_str().unwrap(),
        ])
        .expect_code(2);
    assert!(
        run.stderr()
            .contains("model `local` (backend `gguf`) cannot serve as image captioner"),
        "{}",
        run.stderr()
    );
}

#[test]
fn the_default_gguf_entry_answers() {
    let dir = Dir::new();
    let run = dir
        .wolf(&["model", "check", "smollm2", "--max-tokens", "16"])
        .expect_code(0);
    assert!(run.stdout().contains("generated"), "{}", run.stdout());
    let reply = run.stdout().lines().next().unwrap_or("").to_owned();
    assert!(!reply.trim().is_empty(), "{}", run.stdout());
}

/// `model check NAME --video CLIP` sends what the video stage sends: the clip's frames
/// as sampled by the config, each after its "Frame i at t s:" line, then the method's
/// video prompt.
#[test]
fn check_video_sends_the_pipeline_s_frames_and_prompt() {
    let dir = Dir::new();
    dir.synthetic_dataset(1, 5);
    let clip = std::fs::read_dir(dir.join("world"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "mp4"))
        .unwrap();
    let server = ScriptedServer::start(Script::always(Behaviour::Text(
        "A red circle moves.".into(),
    )))
    .unwrap();
    let config = openai_config(&dir, server.base_url(), "[sampling]\ncount = 3\n");
    let run = dir
        .wolf(&[
            "model",
            "check",
            "remote",
            "--config",
            &config,
            "--video",
            clip.to_str().unwrap(),
        ])
        .expect_code(0);
    assert!(run.stdout().contains("3 frames of"), "{}", run.stdout());
    assert!(
        run.stdout().contains("A red circle moves."),
        "{}",
        run.stdout()
    );
    let received = server.received();
    let parts = received[0].body["messages"][0]["content"]
        .as_array()
        .unwrap()
        .clone();
    let kinds: Vec<&str> = parts.iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "text",
            "image_url",
            "text",
            "image_url",
            "text",
            "image_url",
            "text"
        ]
    );
    assert!(
        parts[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Frame 1 at ")
    );
    assert_eq!(
        parts[6]["text"],
        wolf_pipeline::wolf::prompts::VIDEO.text,
        "the method's video prompt"
    );
}
