//! Progress bars in a real terminal: `wolf caption` run in a pseudo-terminal (util-linux
//! `script`), its screen rendered from the bytes it wrote, and nothing stale left on it.

use crate::caption::{answered_world, caption};
use crate::util::Dir;

/// The final screen of a terminal `width` columns wide that was sent `bytes`: a crude
/// emulator of what the bars use (carriage return, line feed, a line that wraps at the
/// width, cursor up and down, clearing a line or the rest of the screen); other escape
/// sequences are dropped.
fn render(bytes: &[u8], width: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut screen: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                row += 1;
                if row == screen.len() {
                    screen.push(Vec::new());
                }
            }
            '\x08' => col = col.saturating_sub(1),
            '\x1b' => {
                if chars.peek() != Some(&'[') {
                    chars.next();
                    continue;
                }
                chars.next();
                let mut params = String::new();
                let mut end = ' ';
                for p in chars.by_ref() {
                    if p.is_ascii_alphabetic() || p == '@' || p == '~' {
                        end = p;
                        break;
                    }
                    params.push(p);
                }
                let n: usize = params
                    .trim_start_matches('?')
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .unwrap_or(1);
                let mode: usize = params.parse().unwrap_or(0);
                match end {
                    'A' => row = row.saturating_sub(n),
                    'B' => {
                        row += n;
                        while screen.len() <= row {
                            screen.push(Vec::new());
                        }
                    }
                    'C' => col += n,
                    'D' => col = col.saturating_sub(n),
                    'G' => col = n - 1,
                    'K' => {
                        let line = &mut screen[row];
                        match mode {
                            0 => line.truncate(col),
                            1 => line.iter_mut().take(col + 1).for_each(|c| *c = ' '),
                            _ => line.clear(),
                        }
                    }
                    'J' => {
                        screen[row].truncate(col);
                        screen.truncate(row + 1);
                    }
                    _ => {}
                }
            }
            c if c.is_control() => {}
            c => {
                // The cursor waits past the last column until a character comes.
                if col >= width {
                    row += 1;
                    col = 0;
                    if row == screen.len() {
                        screen.push(Vec::new());
                    }
                }
                let line = &mut screen[row];
                while line.len() < col {
                    line.push(' ');
                }
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    screen
        .into_iter()
        .map(|l| l.into_iter().collect::<String>().trim_end().to_owned())
        .collect()
}

#[test]
fn the_renderer_applies_carriage_returns_and_cursor_moves() {
    let screen = render(
        b"log\r\nvideos 1/2\r\nllm 3\r\x1b[1A\x1b[2Kvideos 2/2\r\n\x1b[2Kdone\r\n",
        80,
    );
    assert_eq!(screen, ["log", "videos 2/2", "done", ""]);
    // A line as wide as the terminal wraps only when the next character comes.
    let screen = render(b"abcd\refgh\r\n", 4);
    assert_eq!(screen, ["efgh", ""]);
    let screen = render(b"abcdefgh\x1b[1A\r\x1b[2Kxy", 4);
    assert_eq!(screen, ["xy", "efgh"]);
}

/// A counter with an unknown total drawn as a full bar (`frames 36/0`), a bar of
/// nothing (`0/0`) or a bar left behind after the run.
fn stale(line: &str) -> bool {
    let counts = line.split_whitespace().any(|word| {
        word.split_once('/').is_some_and(|(done, total)| {
            done.chars().all(|c| c.is_ascii_digit()) && !done.is_empty() && total == "0"
        })
    });
    counts || line.contains("[=") || line.contains("loading models")
}

/// Runs `wolf ARGS` in a pseudo-terminal `width` columns wide (util-linux `script`),
/// expecting status 0; returns what it wrote and the final screen, which must hold no
/// stale bar and must show that bars were drawn.
fn in_terminal(dir: &Dir, args: &str, width: usize) -> Vec<String> {
    let command = format!(
        "stty cols {width} rows 50; exec '{}' --db '{}' {args}",
        env!("CARGO_BIN_EXE_wolf"),
        dir.db(),
    );
    let out = std::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .current_dir(dir.path())
        .env("TERM", "xterm")
        .env_remove("WOLF_DB")
        .output()
        .expect("script (util-linux) runs");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{raw:?}");
    // The bars were drawn: the terminal got cursor moves or line clears.
    assert!(raw.contains("\x1b["), "no bars drawn: {raw:?}");
    let screen = render(&out.stdout, width);
    let bad: Vec<&String> = screen.iter().filter(|l| stale(l)).collect();
    assert!(
        bad.is_empty(),
        "stale lines {bad:?} on the screen:\n{}",
        screen.join("\n")
    );
    screen
}

#[test]
fn caption_in_a_terminal_leaves_logs_and_the_summary_and_no_stale_bars() {
    let dir = Dir::new();
    let (_server, config) = answered_world(&dir, 3, "c.toml");
    let screen = in_terminal(
        &dir,
        &format!("caption --dataset world --config '{config}' --run r"),
        200,
    );
    let text = screen.join("\n");
    // The log line and the summary are whole, each on a line of its own.
    assert!(
        screen
            .iter()
            .any(|l| l.contains("Worker started.") && !l.contains("videos")),
        "{text}"
    );
    let summary = screen
        .iter()
        .position(|l| l.starts_with("run `r`: 3 videos, 3 done now"))
        .unwrap_or_else(|| panic!("no summary line:\n{text}"));
    assert!(
        screen[summary..]
            .iter()
            .any(|l| l.contains("wolf score --run r")),
        "{text}"
    );
}

/// `wolf worker` draws the same bars and leaves only its summary.
#[test]
fn a_worker_in_a_terminal_leaves_its_summary_and_no_stale_bars() {
    let dir = Dir::new();
    let (_server, config) = answered_world(&dir, 3, "c.toml");
    caption(&dir, &config, "r", &["--enqueue-only"]).expect_code(0);
    let screen = in_terminal(&dir, "worker --exit-when-idle --name w1", 200);
    assert!(
        screen
            .iter()
            .any(|l| l.starts_with("worker `w1`: 3 videos done")),
        "{}",
        screen.join("\n")
    );
}
