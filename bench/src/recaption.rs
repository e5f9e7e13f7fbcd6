//! The recaption loop (the VILA² issue): `wolf recaption round` in a child process of
//! its own against a scripted captioner in another, for
//! - items/s with a captioner of fixed latency against the ideal (items × latency /
//!   requests in flight), on 2,000 small images in one shard;
//! - peak memory over 10,000 and over 100,000 tiny images (one shard each), which
//!   should be flat: items are streamed, and a round keeps only what is in flight.
//!
//! The shards are made once under `work/recaption/` (each written under a temporary
//! name and renamed, so one that exists is whole) and kept for reruns; every round
//! starts from an empty output folder, so that nothing is skipped as already done.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{Row, ServerChild, grouped, run_logged};

/// The throughput benchmark's captioner latency, requests in flight and items.
const LATENCY_MS: u64 = 50;
const IN_FLIGHT: usize = 16;
const THROUGHPUT_ITEMS: usize = 2_000;
const THROUGHPUT_SIDE: u32 = 32;
/// The memory benchmark's two sizes, and their images' side.
const SMALL: usize = 10_000;
const LARGE: usize = 100_000;
const MEMORY_SIDE: u32 = 8;

pub(super) async fn recaption(exe: &Path, work: &Path) -> anyhow::Result<Vec<Row>> {
    let dir = work.join("recaption");
    std::fs::create_dir_all(&dir)?;
    tokio::task::block_in_place(|| Ok(vec![throughput(exe, &dir)?, memory(exe, &dir)?]))
}

/// A tar stream written by hand (ustar headers): the `tar` crate is not a dependency of
/// the binary, and a WebDataset shard needs nothing but plain file members.
struct TarWriter<W: Write> {
    out: W,
}

impl<W: Write> TarWriter<W> {
    fn append(&mut self, name: &str, data: &[u8]) -> std::io::Result<()> {
        assert!(name.len() < 100, "a short member name; this is a bug");
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        header[100..108].copy_from_slice(b"0000644\0");
        header[108..116].copy_from_slice(b"0000000\0");
        header[116..124].copy_from_slice(b"0000000\0");
        header[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        header[136..148].copy_from_slice(b"00000000000\0");
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        // The checksum is summed with its own field as spaces.
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.out.write_all(&header)?;
        self.out.write_all(data)?;
        let padding = (512 - data.len() % 512) % 512;
        self.out.write_all(&[0u8; 512][..padding])
    }

    /// Writes the end-of-archive blocks.
    fn finish(mut self) -> std::io::Result<W> {
        self.out.write_all(&[0u8; 1024])?;
        Ok(self.out)
    }
}

/// A distinct `side`×`side` PNG for item `i`.
fn png(i: usize, side: u32) -> anyhow::Result<Vec<u8>> {
    let image = image::RgbImage::from_fn(side, side, |x, y| {
        image::Rgb([
            (i & 0xff) as u8,
            ((i >> 8) & 0xff) as u8,
            ((i >> 16) as u32 ^ (x * 7 + y * 13)) as u8,
        ])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png)?;
    Ok(bytes.into_inner())
}

/// A shard of `items` images of `side` pixels (`item-NNNNNN.png`, no captions) under
/// `dir/inputs/`, made unless it exists.
fn shard(dir: &Path, items: usize, side: u32) -> anyhow::Result<PathBuf> {
    let folder = dir.join("inputs");
    std::fs::create_dir_all(&folder)?;
    let path = folder.join(format!("items-{items}-{side}px.tar"));
    if path.is_file() {
        return Ok(path);
    }
    eprintln!("Making {} ({items} images) ...", path.display());
    let partial = folder.join(format!(".items-{items}-{side}px.tar.partial"));
    let mut tar = TarWriter {
        out: BufWriter::new(File::create(&partial)?),
    };
    for i in 0..items {
        tar.append(&format!("item-{i:06}.png"), &png(i, side)?)?;
    }
    tar.finish()?.into_inner()?.sync_all()?;
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

/// A config whose `[recaption]` captioner is the scripted server at `base_url`.
fn config(dir: &Path, name: &str, base_url: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "[models.scripted]\nbackend = \"openai\"\nbase_url = \"{base_url}\"\nmodel = \"scripted\"\nmax_concurrency = {IN_FLIGHT}\n\n[recaption]\ncaptioner = \"scripted\"\ntemplate = \"recaption_only\"\nconcurrency = {IN_FLIGHT}\n"
        ),
    )?;
    Ok(path)
}

/// What one `wolf recaption round` measured.
struct Measured {
    wall: Duration,
    peak_kib: i64,
}

/// Runs `wolf recaption round` over `input` into a fresh `out` (its log beside it);
/// fails unless every item succeeded.
fn round(
    exe: &Path,
    dir: &Path,
    input: &Path,
    config: &Path,
    out: &Path,
) -> anyhow::Result<Measured> {
    if out.exists() {
        std::fs::remove_dir_all(out)?;
    }
    let mut command = Command::new(exe);
    command
        .arg("--no-progress")
        .arg("--db")
        .arg(dir.join("recaption.db"))
        .args(["recaption", "round", "--input"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .arg("--config")
        .arg(config);
    let (wall, peak_kib) = run_logged(command, &out.with_extension("log"), "wolf recaption round")?;
    Ok(Measured { wall, peak_kib })
}

/// Items/s through a round against the ideal.
fn throughput(exe: &Path, dir: &Path) -> anyhow::Result<Row> {
    let input = shard(dir, THROUGHPUT_ITEMS, THROUGHPUT_SIDE)?;
    let server = ServerChild::scripted(LATENCY_MS, "fixed")?;
    let config = config(dir, "throughput.toml", &server.base_url)?;
    let measured = round(exe, dir, &input, &config, &dir.join("throughput"))?;
    drop(server);
    let wall = measured.wall.as_secs_f64();
    let items = THROUGHPUT_ITEMS as f64;
    let ideal = items * LATENCY_MS as f64 / 1e3 / IN_FLIGHT as f64;
    Ok(Row {
        benchmark: format!(
            "recaption round: items/s with a scripted captioner ({LATENCY_MS} ms, {IN_FLIGHT} in flight)"
        ),
        wolf: format!("{:.0} items/s ({wall:.2} s)", items / wall),
        anchor: format!("ideal {:.0} items/s", items / ideal),
        ratio: format!("{:.3}", ideal / wall),
        goal: "≥ 0.9".into(),
        note: format!(
            "`wolf recaption round` over {} {THROUGHPUT_SIDE}×{THROUGHPUT_SIDE} PNG items in one tar shard, template `recaption_only`, `concurrency = {IN_FLIGHT}` and the entry's `max_concurrency = {IN_FLIGHT}`; the whole child process (start, reading and checking images, round log, caption file, statistics) against items × latency / in flight; the captioner is `wolf scripted-server` in a process of its own; peak RSS {:.0} MiB",
            grouped(THROUGHPUT_ITEMS),
            measured.peak_kib as f64 / 1024.0
        ),
    })
}

/// Peak memory of a round over [`LARGE`] items against one over [`SMALL`].
fn memory(exe: &Path, dir: &Path) -> anyhow::Result<Row> {
    let small_input = shard(dir, SMALL, MEMORY_SIDE)?;
    let large_input = shard(dir, LARGE, MEMORY_SIDE)?;
    let server = ServerChild::scripted(0, "fixed")?;
    let config = config(dir, "memory.toml", &server.base_url)?;
    let small = round(exe, dir, &small_input, &config, &dir.join("memory-small"))?;
    let large = round(exe, dir, &large_input, &config, &dir.join("memory-large"))?;
    drop(server);
    let mib = |kib: i64| kib as f64 / 1024.0;
    Ok(Row {
        benchmark: format!(
            "recaption round: peak memory, {} vs {} items",
            grouped(LARGE),
            grouped(SMALL)
        ),
        wolf: format!(
            "{:.1} MiB vs {:.1} MiB",
            mib(large.peak_kib),
            mib(small.peak_kib)
        ),
        anchor: format!("{} items", grouped(SMALL)),
        ratio: format!("{:.2}", large.peak_kib as f64 / small.peak_kib as f64),
        goal: "≤ 1.1 (flat)".into(),
        note: format!(
            "peak RSS (`VmHWM`) of the whole `wolf recaption round` child over one tar shard of {MEMORY_SIDE}×{MEMORY_SIDE} PNGs, template `recaption_only`, a zero-latency scripted captioner, {IN_FLIGHT} in flight; {:.1} s and {:.1} s",
            large.wall.as_secs_f64(),
            small.wall.as_secs_f64()
        ),
    })
}
