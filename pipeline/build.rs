// `sqlx::migrate!` embeds the migrations at compile time but does not notice a new
// file on its own (FACTS.md): rebuild when the folder changes.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
