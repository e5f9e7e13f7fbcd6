//! `wolf config check`, `wolf db migrate` and the exit statuses.

use crate::util::Dir;

#[test]
fn config_check_names_an_unknown_key() {
    let dir = Dir::new();
    std::fs::write(dir.join("bad.toml"), "[sampling]\nfsp = 2.0\n").unwrap();
    let run = dir.wolf(&["config", "check", "bad.toml"]).expect_code(2);
    assert!(run.stderr().contains("fsp"), "{}", run.stderr());
    std::fs::write(
        dir.join("bad.toml"),
        "[sampling]\nmin_frames = 9\nmax_frames = 3\n",
    )
    .unwrap();
    let run = dir.wolf(&["config", "check", "bad.toml"]).expect_code(2);
    assert!(
        run.stderr().contains("sampling.max_frames"),
        "{}",
        run.stderr()
    );
}

#[test]
fn the_example_configs_are_valid() {
    let dir = Dir::new();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            dir.wolf(&["config", "check", path.to_str().unwrap()])
                .expect_code(0);
        }
    }
}

#[test]
fn migrations_apply_once() {
    let dir = Dir::new();
    let first = dir.wolf(&["db", "migrate"]).expect_code(0).stdout();
    let known = wolf_pipeline::store::Store::known_migrations();
    assert!(known >= 4, "{known}");
    assert!(
        first.contains(&format!("applied {known} migration")),
        "{first}"
    );
    let again = dir.wolf(&["db", "migrate"]).expect_code(0).stdout();
    assert!(again.contains("applied 0 migration"), "{again}");
}

#[test]
fn an_unsupported_database_url_is_refused() {
    let dir = Dir::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wolf"))
        .args(["--db", "mysql://localhost/x", "dataset", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not supported"));
    drop(dir);
}
