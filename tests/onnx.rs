//! The `onnx` backend on real ONNX Runtime: the fixture captioners against the
//! reference implementation's recorded greedy outputs (token for token, both decoder
//! forms, batch sizes 1 and 4), the default embedder against sentence-transformers'
//! vectors, folder errors, dynamic batching, and `wolf model check`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use wolf_pipeline::media::RgbImage;
use wolf_pipeline::models::onnx::{
    DecoderForm, Layout, Search, SentenceEmbedder, SessionOptions, VisionCaptioner,
};
use wolf_pipeline::models::{
    ChatRequest, ImageRequest, ModelConfig, ModelSet, OnnxConfig, Sampling, VideoRequest,
};

use crate::util::Dir;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model_folder(name: &str) -> PathBuf {
    root().join("fixtures/models").join(name)
}

fn input(file: &str) -> RgbImage {
    image::open(root().join("fixtures/inputs").join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .to_rgb8()
}

fn references(name: &str) -> Value {
    let path = model_folder(name).join("reference_outputs.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_i64().unwrap())
        .collect()
}

/// One thread: the tests run side by side on two cores.
fn options() -> SessionOptions {
    SessionOptions {
        threads: 1,
        ..SessionOptions::default()
    }
}

/// The Rust backend reproduces transformers' greedy ids for every input alone and for
/// all four as one batch (rows that ended early padded), with `form`'s decoder.
fn check_parity(name: &str, form: DecoderForm) {
    let reference = references(name);
    let want = &reference["transformers"];
    let mut captioner =
        VisionCaptioner::load(&model_folder(name), options(), form, Search::default()).unwrap();
    assert_eq!(captioner.is_merged(), form == DecoderForm::Merged);
    let never = || false;
    for one in want["batch_1"].as_array().unwrap() {
        let file = one["input"].as_str().unwrap();
        let got = captioner.generate_ids(&[input(file)], &never).unwrap();
        assert_eq!(
            got,
            vec![ids(&one["ids"])],
            "{name} {form:?} batch 1: {file}"
        );
        let text = captioner.decode(&got[0]).unwrap();
        assert_eq!(text, one["text"].as_str().unwrap(), "{name}: {file}");
    }
    let batch = &want["batch_4"];
    let images: Vec<RgbImage> = batch["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| input(f.as_str().unwrap()))
        .collect();
    let got = captioner.generate_ids(&images, &never).unwrap();
    let expected: Vec<Vec<i64>> = batch["ids"].as_array().unwrap().iter().map(ids).collect();
    assert_eq!(got, expected, "{name} {form:?} batch 4");
    let captions = captioner.caption(&images, &never).unwrap();
    for (caption, text) in captions.iter().zip(batch["texts"].as_array().unwrap()) {
        assert_eq!(caption.text, text.as_str().unwrap());
    }
}

/// A copy of the frame captioner's folder whose `config.json` declares the
/// `prompt_prefix` its prompted references were recorded with (the references say
/// whether the committed folder declares it itself).
fn prompted_folder(dir: &Dir) -> PathBuf {
    let reference = references("frame-captioner");
    let prefix = reference["prompted"]["prompt_prefix"].clone();
    assert!(
        prefix.is_object(),
        "no prompted references for the frame captioner"
    );
    let folder = dir.join("frame-captioner");
    std::fs::create_dir(&folder).unwrap();
    for entry in std::fs::read_dir(model_folder("frame-captioner")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), folder.join(entry.file_name())).unwrap();
    }
    let path = folder.join("config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["prompt_prefix"] = prefix;
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    folder
}

/// With a prompt, a frame captioner that declares `prompt_prefix` reproduces
/// transformers' greedy ids given the prompt's ids as `decoder_input_ids`, for each
/// recorded prompt (the pipeline's frame and cascade prompts, `wolf model check`'s)
/// alone and for four inputs as one batch, and its caption is the text after the prompt.
fn check_prompted_parity(form: DecoderForm) {
    let reference = references("frame-captioner");
    let prompted = &reference["prompted"];
    let dir = Dir::new();
    let mut captioner =
        VisionCaptioner::load(&prompted_folder(&dir), options(), form, Search::default()).unwrap();
    assert!(captioner.reads_prompt());
    let never = || false;
    let cases = prompted["batch_1"].as_array().unwrap();
    assert!(cases.len() >= 8, "{} prompted cases", cases.len());
    for case in cases {
        let file = case["input"].as_str().unwrap();
        let prompt = case["prompt"].as_str().unwrap();
        let kind = case["kind"].as_str().unwrap();
        assert_eq!(
            captioner.prompt_ids(prompt).unwrap(),
            ids(&case["prompt_ids"]),
            "{kind}: prompt ids"
        );
        let image = input(file);
        let got = captioner
            .generate_ids_prompted(std::slice::from_ref(&image), prompt, &never)
            .unwrap();
        assert_eq!(got, vec![ids(&case["ids"])], "{form:?} {kind}: {file}");
        let caption = captioner
            .caption_prompted(std::slice::from_ref(&image), prompt, &never)
            .unwrap();
        assert_eq!(
            caption[0].text,
            case["text"].as_str().unwrap(),
            "{kind}: {file}"
        );
        assert_eq!(
            caption[0].prompt_tokens as usize,
            case["prompt_ids"].as_array().unwrap().len()
        );
    }
    let batch = &prompted["batch_4"];
    let images: Vec<RgbImage> = batch["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| input(f.as_str().unwrap()))
        .collect();
    let prompt = batch["prompt"].as_str().unwrap();
    let got = captioner
        .generate_ids_prompted(&images, prompt, &never)
        .unwrap();
    let expected: Vec<Vec<i64>> = batch["ids"].as_array().unwrap().iter().map(ids).collect();
    assert_eq!(got, expected, "{form:?} batch 4 with a prompt");
    let captions = captioner.caption_prompted(&images, prompt, &never).unwrap();
    for (caption, text) in captions.iter().zip(batch["texts"].as_array().unwrap()) {
        assert_eq!(caption.text, text.as_str().unwrap());
    }
    // Different prompts of as many tokens in one run (as the worker batches the
    // cascade's prompts): each row as transformers gives it alone.
    let mut by_length: BTreeMap<usize, Vec<&Value>> = BTreeMap::new();
    for case in cases {
        let length = case["prompt_ids"].as_array().unwrap().len();
        by_length.entry(length).or_default().push(case);
    }
    let mut different = 0;
    for group in by_length.values().filter(|g| g.len() > 1) {
        let images: Vec<RgbImage> = group
            .iter()
            .map(|c| input(c["input"].as_str().unwrap()))
            .collect();
        let prompts: Vec<&str> = group
            .iter()
            .map(|c| c["prompt"].as_str().unwrap())
            .collect();
        let got = captioner
            .generate_ids_each(&images, &prompts, &never)
            .unwrap();
        // Rows that ended early are padded with 0 after their end, as in `batch_4`.
        for (row, case) in got.iter().zip(group) {
            let want = ids(&case["ids"]);
            assert_eq!(
                row[..want.len()],
                want,
                "{form:?}: prompts {prompts:?} in one run"
            );
            assert!(row[want.len()..].iter().all(|&t| t == 0), "{row:?}");
        }
        let captions = captioner.caption_each(&images, &prompts, &never).unwrap();
        for (caption, case) in captions.iter().zip(group) {
            assert_eq!(caption.text, case["text"].as_str().unwrap());
        }
        if prompts.iter().any(|p| *p != prompts[0]) {
            different += 1;
        }
    }
    assert!(
        different > 0,
        "no two different reference prompts have as many tokens"
    );
}

#[test]
fn frame_captioner_reads_its_prompt_as_transformers_does_with_the_plain_decoder() {
    check_prompted_parity(DecoderForm::Plain);
}

#[test]
fn frame_captioner_reads_its_prompt_as_transformers_does_with_the_merged_decoder() {
    check_prompted_parity(DecoderForm::Merged);
}

/// A folder without `prompt_prefix` ignores prompts: the same ids with and without.
#[test]
fn a_captioner_that_does_not_declare_a_prefix_ignores_the_prompt() {
    let reference = references("storyboard-captioner");
    let one = &reference["transformers"]["batch_1"][0];
    let mut captioner = VisionCaptioner::load(
        &model_folder("storyboard-captioner"),
        options(),
        DecoderForm::Auto,
        Search::default(),
    )
    .unwrap();
    assert!(!captioner.reads_prompt());
    let image = input(one["input"].as_str().unwrap());
    let got = captioner
        .generate_ids_prompted(&[image], "Describe the image in details.", &|| false)
        .unwrap();
    assert_eq!(got, vec![ids(&one["ids"])]);
}

#[test]
fn storyboard_captioner_matches_transformers_with_the_plain_decoder() {
    check_parity("storyboard-captioner", DecoderForm::Plain);
}

#[test]
fn storyboard_captioner_matches_transformers_with_the_merged_decoder() {
    check_parity("storyboard-captioner", DecoderForm::Merged);
}

#[test]
fn frame_captioner_matches_transformers_with_the_plain_decoder() {
    check_parity("frame-captioner", DecoderForm::Plain);
}

#[test]
fn frame_captioner_matches_transformers_with_the_merged_decoder() {
    check_parity("frame-captioner", DecoderForm::Merged);
}

/// The numbers of every `[x1, y1, x2, y2]` box in a caption.
fn boxes(caption: &str) -> Vec<[u32; 4]> {
    caption
        .split('[')
        .skip(1)
        .map(|rest| {
            let inner = rest.split(']').next().unwrap();
            let v: Vec<u32> = inner.split(", ").map(|n| n.parse().unwrap()).collect();
            v.try_into()
                .unwrap_or_else(|v| panic!("not four numbers: {v:?} in {caption}"))
        })
        .collect()
}

#[test]
fn frame_captions_are_grounded_with_boxes_on_the_0_999_scale() {
    let inputs: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/inputs/inputs.json")).unwrap(),
    )
    .unwrap();
    let mut captioner = VisionCaptioner::load(
        &model_folder("frame-captioner"),
        options(),
        DecoderForm::Auto,
        Search::default(),
    )
    .unwrap();
    let images: Vec<RgbImage> = inputs["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| input(f["file"].as_str().unwrap()))
        .collect();
    for caption in captioner.caption(&images, &|| false).unwrap() {
        let found = boxes(&caption.text);
        assert!(!found.is_empty(), "{}", caption.text);
        for [x1, y1, x2, y2] in found {
            assert!(
                x1 < x2 && y1 < y2 && x2 <= 999 && y2 <= 999,
                "{}",
                caption.text
            );
        }
        assert!(caption.text.ends_with("background"), "{}", caption.text);
    }
}

#[test]
fn beam_search_agrees_across_decoder_forms_and_batch_sizes() {
    let reference = references("storyboard-captioner");
    let images: Vec<RgbImage> = reference["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| input(f.as_str().unwrap()))
        .collect();
    let search = Search {
        num_beams: Some(3),
        max_length: None,
    };
    let mut results = Vec::new();
    for form in [DecoderForm::Plain, DecoderForm::Merged] {
        let mut captioner = VisionCaptioner::load(
            &model_folder("storyboard-captioner"),
            options(),
            form,
            search,
        )
        .unwrap();
        let batched = captioner.generate_ids(&images, &|| false).unwrap();
        for (k, image) in images.iter().enumerate() {
            let alone = captioner
                .generate_ids(std::slice::from_ref(image), &|| false)
                .unwrap();
            assert_eq!(
                alone[0], batched[k],
                "{form:?}: input {k} alone and in a batch"
            );
        }
        // Every best sequence starts with the start token and ends with the end token.
        for ids in &batched {
            assert_eq!(ids[0], 1);
            assert_eq!(*ids.last().unwrap(), 2, "{ids:?}");
        }
        results.push(batched);
    }
    // The merged decoder's cache, reordered between beams, gives what recomputing
    // the whole prefix gives.
    assert_eq!(results[0], results[1]);
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| *p as f64 * *q as f64)
            .sum::<f64>()
    };
    dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
}

#[test]
fn default_embedder_matches_sentence_transformers() {
    let home = wolf_pipeline::home::Home::locate().expect("`.wolf/`: run `make setup`");
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/data/embedder_reference.json")).unwrap(),
    )
    .unwrap();
    let texts: Vec<String> = reference["sentences"]
        .as_array()
        .expect("`sentences` in the reference file")
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    let wanted: Vec<Vec<f32>> = reference["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    assert_eq!(texts.len(), wanted.len());
    let mut embedder = SentenceEmbedder::load(&home.default_embedder(), options()).unwrap();
    let batched = embedder.embed(&texts).unwrap();
    for (i, text) in texts.iter().enumerate() {
        let alone = embedder.embed(std::slice::from_ref(text)).unwrap();
        for (how, got) in [("alone", &alone[0]), ("batched", &batched[i])] {
            let c = cosine(got, &wanted[i]);
            assert!(c >= 0.9999, "{how}: cosine {c} for {text:?}");
        }
    }
    // Different sentences are told apart.
    assert!(cosine(&batched[0], &batched[1]) < 0.99);
}

#[test]
fn folders_that_do_not_match_name_what_is_missing() {
    let dir = Dir::new();
    let folder = dir.join("half");
    std::fs::create_dir(&folder).unwrap();
    let err = Layout::detect(&folder).unwrap_err().to_string();
    assert!(err.contains("encoder_model.onnx"), "{err}");
    std::fs::copy(
        model_folder("frame-captioner").join("encoder_model.onnx"),
        folder.join("encoder_model.onnx"),
    )
    .unwrap();
    let err = Layout::detect(&folder).unwrap_err().to_string();
    assert!(err.contains("decoder_model.onnx"), "{err}");

    // A decoder file that is not a decoder: the embedder graph has no `logits`.
    let home = wolf_pipeline::home::Home::locate().expect("`.wolf/`: run `make setup`");
    std::fs::copy(
        home.default_embedder().join("model.onnx"),
        folder.join("decoder_model.onnx"),
    )
    .unwrap();
    assert_eq!(
        Layout::detect(&folder).unwrap(),
        Layout::VisionEncoderDecoder
    );
    let err = VisionCaptioner::load(&folder, options(), DecoderForm::Auto, Search::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`logits`"), "{err}");
    assert!(
        err.contains("no preprocessor") || err.contains("decoder_model.onnx"),
        "{err}"
    );

    // A merged decoder asked for where there is none.
    let err = VisionCaptioner::load(&folder, options(), DecoderForm::Merged, Search::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("decoder_model_merged.onnx"), "{err}");
}

fn set_with(name: &str, config: OnnxConfig) -> ModelSet {
    ModelSet::new([(name.to_owned(), ModelConfig::Onnx(config))].into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_batched_and_each_gets_its_own_caption() {
    let reference = references("storyboard-captioner");
    let expected: Vec<(String, String)> = reference["transformers"]["batch_1"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["input"].as_str().unwrap().to_owned(),
                r["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut config = OnnxConfig::new(Some(model_folder("storyboard-captioner")));
    config.threads = 1;
    config.batch = 4;
    config.batch_wait_ms = 50;
    let models = set_with("boards", config);
    let captioner = models.image_captioner("boards").unwrap();
    // 12 requests at once, three of each input, in a shuffled order.
    let mut tasks = Vec::new();
    for k in 0..12 {
        let (file, text) = expected[(k * 7) % 4].clone();
        let captioner = Arc::clone(&captioner);
        tasks.push(tokio::spawn(async move {
            let request = ImageRequest {
                images: vec![input(&file)],
                ..ImageRequest::default()
            };
            let reply = captioner.caption_images(&request).await.unwrap();
            (reply.text, text)
        }));
    }
    for task in tasks {
        let (got, want) = task.await.unwrap();
        assert_eq!(got, want);
    }
    // The same model is not an embedder or an LLM, and says so.
    let err = models.embedder("boards").err().unwrap();
    assert!(err.message.contains("captioner"), "{err}");
}

/// Requests with different prompts that land in one batch each get the caption of
/// their own prompt (the worker runs one decoder prefix at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_requests_with_different_prompts_each_get_their_own_caption() {
    let reference = references("frame-captioner");
    let cases: Vec<(String, String, String)> = reference["prompted"]["batch_1"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["input"].as_str().unwrap().to_owned(),
                c["prompt"].as_str().unwrap().to_owned(),
                c["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let dir = Dir::new();
    let mut config = OnnxConfig::new(Some(prompted_folder(&dir)));
    config.threads = 1;
    config.batch = 8;
    config.batch_wait_ms = 50;
    let models = set_with("frames", config);
    let captioner = models.image_captioner("frames").unwrap();
    let mut tasks = Vec::new();
    for (file, prompt, text) in cases {
        let captioner = Arc::clone(&captioner);
        tasks.push(tokio::spawn(async move {
            let request = ImageRequest {
                images: vec![input(&file)],
                prompt,
                ..ImageRequest::default()
            };
            let reply = captioner.caption_images(&request).await.unwrap();
            (reply.text, text)
        }));
    }
    for task in tasks {
        let (got, want) = task.await.unwrap();
        assert_eq!(got, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_request_is_captioned_on_a_storyboard_of_its_frames() {
    let board = &references("storyboard-captioner")["transformers"]["batch_1"][0];
    let image = input(board["input"].as_str().unwrap());
    // Cut the 2x2 board back into its four frames.
    let (w, h) = (image.width() / 2, image.height() / 2);
    let frames: Vec<RgbImage> = (0..4)
        .map(|k| image::imageops::crop_imm(&image, (k % 2) * w, (k / 2) * h, w, h).to_image())
        .collect();
    let mut config = OnnxConfig::new(Some(model_folder("storyboard-captioner")));
    config.threads = 1;
    let models = set_with("boards", config);
    let request = VideoRequest {
        frames,
        times: vec![0.0, 1.0, 2.0, 3.0],
        ..VideoRequest::default()
    };
    let reply = models
        .video_captioner("boards")
        .unwrap()
        .caption_video(&request)
        .await
        .unwrap();
    assert_eq!(reply.text, board["text"].as_str().unwrap());
}

#[test]
fn model_check_prints_a_grounded_caption_for_a_synthetic_frame() {
    let dir = Dir::new();
    // Without --prompt, the pipeline's frame prompt, which this captioner reads.
    let reference = references("frame-captioner");
    assert_eq!(reference["prompted"]["declared_by_folder"], true);
    let frame = reference["prompted"]["batch_1"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "frame" && c["input"] == "frame_1.png")
        .unwrap();
    let image = root()
        .join("fixtures/inputs")
        .join(frame["input"].as_str().unwrap());
    let run = dir
        .wolf(&["model", "check", "frame-captioner", "--image", path(&image)])
        .expect_code(0);
    let first = run.stdout().lines().next().unwrap_or_default().to_owned();
    assert_eq!(first, frame["text"].as_str().unwrap(), "{}", run.stdout());
    assert!(!boxes(&first).is_empty(), "{first}");

    let run = dir
        .wolf(&[
            "model",
            "check",
            "minilm",
            "--text",
            "a red circle moves to the right",
            "--text",
            "a red ball rolls to the right",
        ])
        .expect_code(0);
    assert!(
        run.stdout().contains("384 values, norm 1.0000"),
        "{}",
        run.stdout()
    );
    assert!(run.stdout().contains("cosine 0."), "{}", run.stdout());

    // A captioner asked to chat fails with the reason.
    let run = dir
        .wolf(&["model", "check", "frame-captioner"])
        .expect_code(2);
    assert!(
        run.stderr().contains("cannot serve as chat LLM"),
        "{}",
        run.stderr()
    );
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn decoder_only_lm_matches_transformers_greedy_generate() {
    causal_lm_matches_its_references("tiny-lm");
}

/// The demo's fuser (trained by `tools/train_fuser.py`) on the fusion prompts its
/// references hold, token for token as transformers' greedy `generate`.
#[test]
fn the_fixture_fuser_matches_transformers_greedy_generate() {
    causal_lm_matches_its_references("fuser");
}

/// The demo's summarizer (the same script, the summary stage alone) likewise.
#[test]
fn the_fixture_summarizer_matches_transformers_greedy_generate() {
    causal_lm_matches_its_references("summarizer");
}

/// A reference chat's messages.
fn reference_messages(chat: &Value) -> Vec<wolf_pipeline::models::Message> {
    use wolf_pipeline::models::{Message, Speaker};
    chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| Message {
            role: match m["role"].as_str().unwrap() {
                "system" => Speaker::System,
                "user" => Speaker::User,
                _ => Speaker::Assistant,
            },
            content: m["content"].as_str().unwrap().to_owned(),
        })
        .collect()
}

/// A reference chat as a request, greedy, with the reference file's token limit.
fn reference_request(reference: &Value, chat: &Value) -> ChatRequest {
    let max_new = reference["generation"]["max_new_tokens"].as_u64().unwrap() as u32;
    ChatRequest {
        messages: reference_messages(chat),
        sampling: Sampling {
            max_tokens: max_new,
            ..Sampling::default()
        },
        grammar: None,
    }
}

fn causal_lm_matches_its_references(name: &str) {
    use wolf_pipeline::models::onnx::CausalLm;
    let reference = references(name);
    assert_eq!(
        Layout::detect(&model_folder(name)).unwrap(),
        Layout::CausalLm
    );
    let mut lm = CausalLm::load(&model_folder(name), options()).unwrap();
    for chat in reference["chats"].as_array().unwrap() {
        let request = reference_request(&reference, chat);
        assert_eq!(
            lm.prompt(&request.messages).unwrap(),
            chat["prompt"].as_str().unwrap()
        );
        let generation = lm.generate(&request, &|| false).unwrap();
        let new_ids = chat["new_ids"].as_array().unwrap();
        assert_eq!(generation.text, chat["text"].as_str().unwrap());
        assert_eq!(generation.usage.completion_tokens as usize, new_ids.len());
        assert_eq!(
            generation.usage.prompt_tokens as usize,
            chat["prompt_ids"].as_array().unwrap().len()
        );
    }
}

/// Batching of an ONNX LLM: a reference file's chats (prompts of different
/// lengths, padded on the left) answered as one batch give the texts transformers gave
/// each alone; a row cancelled mid-batch ends with `Cancelled` and the others go on.
#[test]
fn a_batch_of_chats_of_different_lengths_decodes_as_each_alone() {
    use wolf_pipeline::models::onnx::{CausalLm, OnnxError};
    for name in ["tiny-lm", "fuser", "summarizer"] {
        let reference = references(name);
        let mut lm = CausalLm::load(&model_folder(name), options()).unwrap();
        let chats = reference["chats"].as_array().unwrap();
        let requests: Vec<ChatRequest> = chats
            .iter()
            .map(|chat| reference_request(&reference, chat))
            .collect();
        let lengths: std::collections::BTreeSet<usize> = chats
            .iter()
            .map(|c| c["prompt_ids"].as_array().unwrap().len())
            .collect();
        assert!(
            lengths.len() > 1,
            "{name}: every prompt has the same length"
        );
        let borrowed: Vec<&ChatRequest> = requests.iter().collect();
        let results = lm.generate_batch(&borrowed, &|_| false).unwrap();
        for (chat, result) in chats.iter().zip(results) {
            assert_eq!(
                result.unwrap().text,
                chat["text"].as_str().unwrap(),
                "{name}"
            );
        }
        let results = lm.generate_batch(&borrowed, &|i| i == 1).unwrap();
        for (i, (chat, result)) in chats.iter().zip(results).enumerate() {
            if i == 1 {
                assert!(matches!(result, Err(OnnxError::Cancelled)), "{result:?}");
            } else {
                assert_eq!(
                    result.unwrap().text,
                    chat["text"].as_str().unwrap(),
                    "{name}"
                );
            }
        }
    }
}

/// Continuous batching: chats that join a running batch mid-generation (with prompts
/// longer and shorter than the batch's sequences), rows that leave it when they end,
/// and a row cancelled mid-generation: every other chat decodes as transformers does
/// alone.
#[test]
fn chats_that_join_and_leave_mid_generation_decode_as_each_alone() {
    use std::cell::Cell;
    use wolf_pipeline::models::onnx::{CausalLm, OnnxError, Running};
    for name in ["tiny-lm", "fuser", "summarizer"] {
        let reference = references(name);
        let mut lm = CausalLm::load(&model_folder(name), options()).unwrap();
        assert!(lm.can_join(), "{name}");
        let chats = reference["chats"].as_array().unwrap();
        let request = |chat: &Value| reference_request(&reference, chat);
        // (step, chat): each chat twice, joining at different points of the others'
        // generation.
        let n = chats.len();
        let joins: Vec<(usize, usize)> = (0..2 * n).map(|k| (k * k * 3, k % n)).collect();
        for cancel in [None, Some(1)] {
            let mut running = Running::default();
            let mut outcomes: Vec<Option<Result<String, OnnxError>>> =
                joins.iter().map(|_| None).collect();
            let cancelled = Cell::new(false);
            let mut step = 0;
            while step <= joins.last().unwrap().0 || !running.is_empty() {
                for (key, &(at, chat)) in joins.iter().enumerate() {
                    if at == step {
                        lm.admit(&mut running, key, &request(&chats[chat])).unwrap();
                    }
                }
                let is_cancelled = |key| Some(key) == cancel && cancelled.get();
                for (key, outcome) in lm.step(&mut running, &is_cancelled).unwrap() {
                    outcomes[key] = Some(outcome.map(|g| g.text));
                }
                step += 1;
                // The cancelled row has joined and generated a few tokens.
                cancelled.set(step > joins[1].0 + 3);
            }
            for (key, outcome) in outcomes.into_iter().enumerate() {
                let chat = &chats[joins[key].1];
                match outcome.unwrap() {
                    Err(OnnxError::Cancelled) if Some(key) == cancel => {}
                    Ok(text) if Some(key) != cancel => {
                        assert_eq!(text, chat["text"].as_str().unwrap(), "{name}: row {key}")
                    }
                    other => panic!("{name}: row {key}: {other:?}"),
                }
            }
        }
    }
}

/// The worker's continuous batching: chats sent a few milliseconds apart join the
/// batch that is running (at most `batch` rows), and each gets transformers' text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chats_that_arrive_while_a_batch_runs_each_get_their_own_text() {
    let reference = Arc::new(references("fuser"));
    let chats = reference["chats"].as_array().unwrap().clone();
    let mut config = OnnxConfig::new(Some(model_folder("fuser")));
    config.threads = 1;
    config.batch = 3;
    config.batch_wait_ms = 0;
    let models = set_with("fuser", config);
    let fuser = models.chat("fuser").unwrap();
    let mut tasks = Vec::new();
    for k in 0..8 {
        let chat = chats[k % chats.len()].clone();
        let (fuser, reference) = (Arc::clone(&fuser), Arc::clone(&reference));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(3 * k as u64)).await;
            let request = reference_request(&reference, &chat);
            let reply = fuser.chat(&request).await.unwrap();
            (reply.text, chat["text"].as_str().unwrap().to_owned())
        }));
    }
    for task in tasks {
        let (got, want) = task.await.unwrap();
        assert_eq!(got, want);
    }
}

/// `Sampling::no_loops`: the fixture fuser, given three objects that all move
/// diagonally, repeats "moves diagonally from the" three times under greedy decoding (the
/// guard's loop); asked for no loops, it never completes one, and until the first token
/// it passes over it writes the same text.
#[test]
fn no_loops_passes_over_the_tokens_that_would_complete_a_loop() {
    use wolf_pipeline::models::loops::{repeated_ngram, words_of};
    use wolf_pipeline::models::onnx::CausalLm;
    use wolf_pipeline::models::{Message, Speaker};
    let mut lm = CausalLm::load(&model_folder("fuser"), options()).unwrap();
    let request = |no_loops: bool| {
        ChatRequest {
        messages: vec![
            Message {
                role: Speaker::System,
                content: "You are a careful assistant that describes videos. Answer with the description only.".into(),
            },
            Message {
                role: Speaker::User,
                content: "Please summarize on the visual and narrative elements of the video in detail from descriptions from Image Model A (Image-level Caption: A green circle, a yellow square and a green square on a gray background.) and the Motion Caption (The green circle moves diagonally from the bottom left to the top right, the yellow square moves diagonally from the bottom right to the top left and the green square moves diagonally from the top left to the bottom right.) and descriptions from Video Model A (a green circle moves diagonally from the bottom left to the top right while a yellow square moves diagonally from the bottom right to the top left).".into(),
            },
        ],
        sampling: Sampling {
            max_tokens: 200,
            no_loops,
            ..Sampling::default()
        },
        grammar: None,
    }
    };
    let plain = lm.generate(&request(false), &|| false).unwrap().text;
    let looped = repeated_ngram(&words_of(&plain));
    assert!(looped.is_some(), "greedy decoding did not loop: {plain:?}");
    let free = lm.generate(&request(true), &|| false).unwrap().text;
    assert_eq!(repeated_ngram(&words_of(&free)), None, "{free:?}");
    let shared = plain
        .chars()
        .zip(free.chars())
        .take_while(|(a, b)| a == b)
        .count();
    assert!(shared > 0 && free != plain, "{plain:?} / {free:?}");
}
