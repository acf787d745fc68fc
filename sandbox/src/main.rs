//! The `f3-sandbox` binary.

fn main() {
    eprintln!("f3-sandbox: not yet available");
    std::process::exit(1);
}
